#!/usr/bin/env python3
"""A small HTTP/1.1 server for the eBPF tests (keep-alive, chosen statuses, TLS).

    http_backend.py PORT [--tls CERT KEY]

GET /status/NNN answers NNN; any other path answers 200 "hello <path>".
The request's X-Request-ID is echoed.
"""
import http.server
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: several requests per connection

    def do_GET(self):
        status = 200
        if self.path.startswith("/status/"):
            status = int(self.path.rsplit("/", 1)[1])
        body = f"hello {self.path}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        request_id = self.headers.get("X-Request-ID")
        if request_id:
            self.send_header("X-Request-ID", request_id)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1])
    http.server.HTTPServer.request_queue_size = 128  # bursts of connections wait, not retry
    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    if "--tls" in sys.argv:
        cert, key = sys.argv[sys.argv.index("--tls") + 1 : sys.argv.index("--tls") + 3]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
