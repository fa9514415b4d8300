#!/usr/bin/env python3
"""An app instrumented with the OpenTelemetry Python SDK, for the stitching tests.

    otel_app.py PORT DOWNSTREAM_PORT OTLP_HTTP_ENDPOINT EXPORT_DELAY_MS

Each GET is one SERVER span, the root of its trace (no traceparent comes in),
recording the X-Request-ID it was sent as `http.request.header.x-request-id`.
It hands the call downstream to a thread pool (where syscall ids cannot follow
it): a CLIENT span there, whose traceparent goes with the request to
http://127.0.0.1:DOWNSTREAM_PORT/stock<path>. It answers with the downstream
status. Spans go to OTLP_HTTP_ENDPOINT/v1/traces in batches every
EXPORT_DELAY_MS (seconds after the calls); SIGTERM flushes them.
"""
import concurrent.futures
import http.client
import http.server
import os
import signal
import socket
import sys

from opentelemetry import context, propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

port, downstream, endpoint, delay_ms = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
resource = Resource.create({"service.name": "shop", "process.pid": os.getpid(), "host.name": socket.gethostname()})
provider = TracerProvider(resource=resource)
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"), schedule_delay_millis=delay_ms, max_export_batch_size=2048, max_queue_size=65536))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("otel_app")
pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)


def call_downstream(parent, path):
    """In a pool thread: the call, in a CLIENT span under the request's span."""
    with tracer.start_as_current_span(f"GET /stock{path}", context=parent, kind=trace.SpanKind.CLIENT) as span:
        headers = {"Connection": "close"}
        propagate.inject(headers)
        connection = http.client.HTTPConnection("127.0.0.1", downstream, timeout=10)
        connection.request("GET", f"/stock{path}", headers=headers)
        response = connection.getresponse()
        response.read()
        connection.close()
        span.set_attribute("http.response.status_code", response.status)
        return response.status


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the gateway keeps its connections to us alive

    def do_GET(self):
        request_id = self.headers.get("X-Request-ID")
        attributes = {"http.request.header.x-request-id": [request_id]} if request_id else {}
        with tracer.start_as_current_span(f"GET {self.path}", kind=trace.SpanKind.SERVER, attributes=attributes):
            status = pool.submit(call_downstream, context.get_current(), self.path).result()
            body = f"stock answered {status}\n".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


def stop(*_):
    provider.shutdown()  # the spans still batched go out first
    os._exit(0)


signal.signal(signal.SIGTERM, stop)
http.server.ThreadingHTTPServer.request_queue_size = 128  # the gateway opens many connections at once
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
server.serve_forever()
