"""An HTTP server for the eBPF tests that accepts the HTTP/1.1 upgrade to h2c
(RFC 7540 §3.2), with the `h2` library (Debian's python3-h2): what nginx does
not do.

    h2c_peer.py PORT     serve on 127.0.0.1:PORT, a thread per connection

A request with `Upgrade: h2c` gets a 101, then the server's SETTINGS and its
response on stream 1, in HTTP/2; every later stream is answered too. A
request without it gets an HTTP/1.1 answer. Each answer is 200 with the body
"hello PATH\\n" and the request's X-Request-ID echoed, or 404 for /missing.
"""
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events


def answer(path, request_id):
    status = "404" if path.startswith("/missing") else "200"
    headers = [(":status", status), ("content-type", "text/plain")]
    if request_id:
        headers.append(("x-request-id", request_id))
    return headers, f"hello {path}\n".encode()


def respond(conn, stream, path, request_id):
    headers, body = answer(path, request_id)
    conn.send_headers(stream, headers)
    conn.send_data(stream, body, end_stream=True)


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def serve_connection(sock):
    with sock:
        head, rest = read_head(sock)
        if head is None:
            return
        lines = head.split("\r\n")
        path = lines[0].split(" ")[1]
        fields = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        if fields.get("upgrade", "").lower() != "h2c":
            headers, body = answer(path, fields.get("x-request-id"))
            status = headers[0][1]
            sock.sendall(f"HTTP/1.1 {status} OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            return
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
        conn.initiate_upgrade_connection(fields.get("http2-settings"))
        respond(conn, 1, path, fields.get("x-request-id"))
        sock.sendall(conn.data_to_send())
        data = rest
        while True:
            for event in conn.receive_data(data) if data else []:
                if isinstance(event, h2.events.RequestReceived):
                    got = dict((k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                               for k, v in event.headers)
                    respond(conn, event.stream_id, got[":path"], got.get("x-request-id"))
                elif isinstance(event, h2.events.ConnectionTerminated):
                    sock.sendall(conn.data_to_send())
                    return
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
            data = sock.recv(65536)
            if not data:
                return


def main(port):
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main(int(sys.argv[1]))
