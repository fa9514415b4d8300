#!/usr/bin/env python3
"""A stand-in Kubernetes API server for tests: pods only, plain HTTP, in memory.

It speaks enough of the real list/watch protocol for kube-runtime's watcher
(and client-go informers):

  GET /version
  GET /api/v1/pods, GET /api/v1/namespaces/{ns}/pods
      list: a PodList with metadata.resourceVersion; `limit`/`continue` page
      through the pods sorted by namespace/name; `resourceVersion` and
      `resourceVersionMatch` are accepted and the current state is served.
      watch=true|1: newline-delimited WatchEvents, chunked, from
      `resourceVersion` on, then live until `timeoutSeconds` (default 1800):
        - resourceVersion > 0: the events after it (ADDED, MODIFIED, DELETED),
          or one ERROR event (410 Expired) when it is older than the
          retained history;
        - resourceVersion unset or "0": ADDED for every current pod first;
        - sendInitialEvents=true: the same, then a BOOKMARK annotated
          `k8s.io/initial-events-end` (the streaming-list strategy);
        - allowWatchBookmarks=true: a BOOKMARK every --bookmark-seconds.
      fieldSelector: `=`, `==`, `!=` on spec.nodeName, metadata.name,
      metadata.namespace, status.phase, status.podIP. labelSelector:
      `k=v`, `k==v`, `k!=v`, `k`, `!k`. A pod that starts or stops matching
      the selectors is sent to a watch as ADDED or DELETED, as the real
      server does.

So both initial-list strategies work: kube-runtime's default `ListWatch`
(paged list, then watch from the list's resourceVersion) and
`StreamingList` (watch with sendInitialEvents=true).

Control interface for tests, on the same port:

  POST   /control/pods            body: a pod; stored as ADDED, or MODIFIED
                                  when namespace/name exists. Missing uid,
                                  namespace ("default"), creationTimestamp
                                  are filled. Answers the stored pod.
  DELETE /control/pods/{ns}/{name}            -> DELETED
  DELETE /control/pods/{ns}/{name}?silent=1   the pod goes without an event,
         as if deleted while the clients were disconnected: the history is
         dropped (older resourceVersions get 410) and open watches end, so a
         watcher has to list again.

Usage: k8s_api_standin.py [--port N] [--token T] [--bookmark-seconds S]
Prints `listening on 127.0.0.1:PORT` on stdout when ready (--port 0, the
default, picks a free port). With --token, requests to /api and /version
need `Authorization: Bearer T`. Each request line is logged to stderr.
"""

import argparse
import base64
import copy
import json
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Store:
    """Pods, the resourceVersion counter and the event history."""

    def __init__(self):
        self.cond = threading.Condition()
        self.rv = 1
        self.pods = {}  # (namespace, name) -> pod
        self.events = []  # (rv, type, pod, previous pod or None)
        self.oldest_rv = 1  # a watch may resume from here on
        self.generation = 0  # bumped to end the open watches

    def put(self, pod):
        meta = pod.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        key = (meta["namespace"], meta["name"])
        pod["apiVersion"], pod["kind"] = "v1", "Pod"
        with self.cond:
            previous = self.pods.get(key)
            if previous is not None:
                meta.setdefault("uid", previous["metadata"]["uid"])
                meta.setdefault("creationTimestamp", previous["metadata"]["creationTimestamp"])
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now())
            self.rv += 1
            meta["resourceVersion"] = str(self.rv)
            self.pods[key] = pod
            kind = "ADDED" if previous is None else "MODIFIED"
            self.events.append((self.rv, kind, pod, previous))
            self.cond.notify_all()
            return pod

    def delete(self, namespace, name, silent):
        with self.cond:
            pod = self.pods.pop((namespace, name), None)
            if pod is None:
                return None
            self.rv += 1
            pod = copy.deepcopy(pod)
            pod["metadata"]["resourceVersion"] = str(self.rv)
            if silent:
                self.events.clear()
                self.oldest_rv = self.rv
                self.generation += 1
            else:
                self.events.append((self.rv, "DELETED", pod, None))
            self.cond.notify_all()
            return pod


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code, reason, message):
    return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class BadRequest(Exception):
    pass


FIELDS = {
    "spec.nodeName": lambda p: p.get("spec", {}).get("nodeName", ""),
    "metadata.name": lambda p: p["metadata"]["name"],
    "metadata.namespace": lambda p: p["metadata"]["namespace"],
    "status.phase": lambda p: p.get("status", {}).get("phase", ""),
    "status.podIP": lambda p: p.get("status", {}).get("podIP", ""),
}


def parse_selector(text, kind):
    """A list of (key, op, value) from a field or equality label selector."""
    terms = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        for op in ("!=", "==", "="):
            if op in term:
                key, value = term.split(op, 1)
                terms.append((key.strip(), "!=" if op == "!=" else "=", value.strip()))
                break
        else:
            if kind == "field" or any(c in term for c in "() "):
                raise BadRequest(f"unsupported {kind} selector term: {term!r}")
            terms.append((term.lstrip("!"), "!" if term.startswith("!") else "exists", ""))
    if kind == "field":
        for key, _, _ in terms:
            if key not in FIELDS:
                raise BadRequest(f'field label not supported: "{key}"')
    return terms


def matches(pod, namespace, fields, labels):
    if namespace and pod["metadata"]["namespace"] != namespace:
        return False
    for key, op, value in fields:
        if (FIELDS[key](pod) == value) != (op == "="):
            return False
    pod_labels = pod["metadata"].get("labels") or {}
    for key, op, value in labels:
        if op == "exists" and key not in pod_labels or op == "!" and key in pod_labels:
            return False
        if op in ("=", "!=") and (pod_labels.get(key) == value) != (op == "="):
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "k8s-api-standin"

    def log_message(self, fmt, *args):
        sys.stderr.write("k8s-api-standin: %s\n" % (fmt % args))

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        token = self.server.token
        if token is None or self.headers.get("Authorization") == f"Bearer {token}":
            return True
        self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
        return False

    def do_GET(self):
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = [p for p in url.path.split("/") if p]
        if not self.authorized():
            return
        if parts == ["version"]:
            return self.send_json(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-standin",
                                        "platform": "linux/amd64"})
        if parts == ["api", "v1", "pods"]:
            namespace = None
        elif len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
            namespace = parts[3]
        else:
            return self.send_json(404, status(404, "NotFound", f"the server could not find {url.path}"))
        try:
            fields = parse_selector(query.get("fieldSelector", ""), "field")
            labels = parse_selector(query.get("labelSelector", ""), "label")
            select = lambda pod: pod is not None and matches(pod, namespace, fields, labels)  # noqa: E731
            if query.get("watch") in ("true", "1"):
                self.watch(query, select)
            else:
                self.list(query, select)
        except BadRequest as e:
            self.send_json(400, status(400, "BadRequest", str(e)))

    def list(self, query, select):
        store = self.server.store
        try:
            cont = json.loads(base64.b64decode(query["continue"])) if query.get("continue") else None
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise BadRequest("invalid limit or continue")
        with store.cond:
            # Later pages keep the first page's resourceVersion, like the real
            # server; a watch from it replays whatever changed in between.
            rv = cont["rv"] if cont else str(store.rv)
            after = tuple(cont["after"]) if cont else None
            keys = sorted(k for k, pod in store.pods.items() if select(pod) and (after is None or k > after))
            page = keys[:limit] if limit else keys
            items = [store.pods[k] for k in page]
            body = {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": rv}, "items": items}
        if limit and len(keys) > limit:
            token = json.dumps({"rv": rv, "after": list(page[-1])}).encode()
            body["metadata"]["continue"] = base64.b64encode(token).decode()
            body["metadata"]["remainingItemCount"] = len(keys) - limit
        self.send_json(200, body)

    def watch(self, query, select):
        store = self.server.store
        deadline = time.monotonic() + int(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") == "true"
        initial = query.get("sendInitialEvents") == "true"
        since = query.get("resourceVersion", "")
        try:
            since = int(since or 0)
        except ValueError:
            raise BadRequest(f"invalid resourceVersion {since!r}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with store.cond:
            generation = store.generation
            if since == 0 or initial:
                sent = store.rv
                first = [("ADDED", pod) for _, pod in sorted(store.pods.items()) if select(pod)]
                if initial:
                    first.append(("BOOKMARK", bookmark(sent, initial_end=True)))
            elif since < store.oldest_rv:
                first = [("ERROR", status(410, "Expired", f"too old resource version: {since} ({store.oldest_rv})"))]
                deadline = 0
                sent = since
            else:
                first, sent = [], since
        try:
            self.send_events(first)
            next_bookmark = time.monotonic() + self.server.bookmark_seconds
            while time.monotonic() < deadline:
                with store.cond:
                    store.cond.wait_for(lambda: store.rv > sent or store.generation != generation,
                                        timeout=max(0.0, min(deadline, next_bookmark) - time.monotonic()))
                    if store.generation != generation:
                        break
                    events = [(rv, watch_type(kind, select(pod), select(previous)), pod)
                              for rv, kind, pod, previous in store.events if rv > sent]
                    sent = store.rv
                self.send_events((kind, pod) for _, kind, pod in events if kind)
                if time.monotonic() >= next_bookmark:
                    if bookmarks:
                        self.send_events([("BOOKMARK", bookmark(sent))])
                    next_bookmark = time.monotonic() + self.server.bookmark_seconds
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def send_events(self, events):
        for kind, obj in events:
            line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        self.wfile.flush()

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_POST(self):
        if urlsplit(self.path).path != "/control/pods":
            return self.send_json(404, status(404, "NotFound", self.path))
        try:
            pod = self.read_body()
            pod["metadata"]["name"]
        except (ValueError, KeyError, TypeError):
            return self.send_json(400, status(400, "BadRequest", "body must be a pod with metadata.name"))
        self.send_json(200, self.server.store.put(pod))

    def do_DELETE(self):
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        if len(parts) != 4 or parts[:2] != ["control", "pods"]:
            return self.send_json(404, status(404, "NotFound", self.path))
        silent = parse_qs(url.query).get("silent", [""])[-1] in ("1", "true")
        pod = self.server.store.delete(parts[2], parts[3], silent)
        if pod is None:
            return self.send_json(404, status(404, "NotFound", f'pods "{parts[3]}" not found'))
        self.send_json(200, pod)


def watch_type(kind, now_selected, was_selected):
    """What a watch with selectors sees of a change; None for nothing."""
    if kind == "DELETED":
        return kind if now_selected else None
    if kind == "MODIFIED" and not was_selected:
        return "ADDED" if now_selected else None
    if kind == "MODIFIED" and not now_selected:
        return "DELETED"
    return kind if now_selected else None


def bookmark(rv, initial_end=False):
    meta = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", help="require this bearer token")
    parser.add_argument("--bookmark-seconds", type=float, default=5.0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.store = Store()
    server.token = args.token
    server.bookmark_seconds = args.bookmark_seconds
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
