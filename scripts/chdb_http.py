#!/usr/bin/env python3
"""A ClickHouse HTTP endpoint backed by chdb (the current ClickHouse engine,
in-process), for the tests: tapline's clickhouse sink talks to it exactly as
to a server, so its DDL and rows are checked against current ClickHouse too.

    python3 scripts/chdb_http.py PORT DATA_DIR

Takes the query from the `query` parameter (and the body as its data) or from
the body; answers 200 with the result, or 500 with ClickHouse's error text.
"""
import gzip
import os
import sys
import tempfile
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

from chdb import session

port, data_dir = int(sys.argv[1]), sys.argv[2]
db = session.Session(data_dir)
lock = Lock()  # one chdb session: one statement at a time


class Handler(BaseHTTPRequestHandler):
    def _run(self, body):
        params = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        if self.headers.get("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        if "query" in params and " FORMAT RowBinary" in params["query"][0]:
            # Binary rows cannot travel in a query string: read them from a file.
            with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
                f.write(body)
            query = params["query"][0].replace(" FORMAT RowBinary", " FROM INFILE '%s' FORMAT RowBinary" % f.name, 1)
        else:
            text = body.decode("utf-8")
            query = params["query"][0] + "\n" + text if "query" in params else text
        if params.get("input_format_skip_unknown_fields") == ["1"]:
            query = query.replace(" FORMAT JSONEachRow", " SETTINGS input_format_skip_unknown_fields = 1 FORMAT JSONEachRow", 1)
        if query.strip() == "" and self.command == "GET":
            return self._answer(200, "Ok.\n")
        try:
            with lock:
                result = db.query(query, "TabSeparated")
            if " FROM INFILE '" in query:
                os.unlink(f.name)
            self._answer(200, result.bytes().decode("utf-8") if hasattr(result, "bytes") else str(result))
        except Exception as e:  # chdb raises with ClickHouse's "Code: N. DB::Exception: …"
            self._answer(500, str(e).strip() + "\n")

    def _answer(self, status, text):
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._run(b"")

    def do_POST(self):
        self._run(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
