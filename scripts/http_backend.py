#!/usr/bin/env python3
"""A small HTTP/1.1 server for the eBPF tests (keep-alive, chosen statuses, TLS).

    http_backend.py PORT [--tls CERT KEY] [--threaded]

GET /status/NNN answers NNN; GET /work/MICROS spends that much CPU time
first (a backend that does real work, for scripts/bench-ebpf.sh); any other
path answers 200 "hello <path>". The request's X-Request-ID is echoed.
--threaded serves each connection on its own thread (a proxy keeping
several upstream connections alive needs it).
"""
import http.server
import ssl
import sys
import time


def spin(rounds):
    """CPU work without system calls (reading a CPU clock in the loop would be one per turn)."""
    x = 1
    for _ in range(rounds):
        x = (x * 31 + 7) % 1000003
    return x


def spins_per_us():
    start = time.thread_time()
    spin(200_000)
    return 200_000 / max(1e-6, (time.thread_time() - start) * 1e6)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: several requests per connection
    spins_per_us = 1.0  # measured by main()
    # Headers and body go out in two writes: without TCP_NODELAY the second
    # waits for the peer's delayed ACK (40 ms a request on loopback).
    disable_nagle_algorithm = True

    def do_GET(self):
        status = 200
        if self.path.startswith("/status/"):
            status = int(self.path.rsplit("/", 1)[1])
        elif self.path.startswith("/work/"):
            spin(int(int(self.path.rsplit("/", 1)[1]) * self.spins_per_us))
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
    Handler.spins_per_us = spins_per_us()
    http.server.HTTPServer.request_queue_size = 128  # bursts of connections wait, not retry
    server_class = http.server.ThreadingHTTPServer if "--threaded" in sys.argv else http.server.HTTPServer
    server = server_class(("127.0.0.1", port), Handler)
    if "--tls" in sys.argv:
        cert, key = sys.argv[sys.argv.index("--tls") + 1 : sys.argv.index("--tls") + 3]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
