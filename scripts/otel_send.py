#!/usr/bin/env python3
"""Send spans, metrics and logs with the real OpenTelemetry Python SDK.

usage: otel_send.py grpc|http ENDPOINT [--gzip]
  grpc: ENDPOINT is host:port; http: ENDPOINT is http://host:port (paths /v1/* are added).

Prints one JSON object with the ids the SDK chose, for the caller to compare
with what the receiver produced. Exits non-zero if any export failed.
"""
import json
import logging
import sys

from opentelemetry.metrics import Observation
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

protocol, endpoint = sys.argv[1], sys.argv[2]
gzip = "--gzip" in sys.argv[3:]

if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc import _log_exporter as logs_mod
    from opentelemetry.exporter.otlp.proto.grpc import metric_exporter as metrics_mod
    from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as traces_mod
    from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression

    compression = Compression.Gzip if gzip else Compression.NoCompression
    span_exporter = traces_mod.OTLPSpanExporter(endpoint=endpoint, insecure=True, compression=compression, timeout=10)
    metric_exporter = metrics_mod.OTLPMetricExporter(endpoint=endpoint, insecure=True, compression=compression, timeout=10)
    log_exporter = logs_mod.OTLPLogExporter(endpoint=endpoint, insecure=True, compression=compression, timeout=10)
else:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http import _log_exporter as logs_mod
    from opentelemetry.exporter.otlp.proto.http import metric_exporter as metrics_mod
    from opentelemetry.exporter.otlp.proto.http import trace_exporter as traces_mod

    compression = Compression.Gzip if gzip else Compression.NoCompression
    span_exporter = traces_mod.OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", compression=compression, timeout=10)
    metric_exporter = metrics_mod.OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics", compression=compression, timeout=10)
    log_exporter = logs_mod.OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", compression=compression, timeout=10)

failures = []


class Checked:
    """Wraps an exporter to remember whether each export succeeded."""

    def __init__(self, inner, name):
        self.inner, self.name = inner, name

    def __getattr__(self, attr):
        return getattr(self.inner, attr)

    def export(self, *args, **kwargs):
        result = self.inner.export(*args, **kwargs)
        if result.name != "SUCCESS":
            failures.append(f"{self.name}: {result}")
        return result


resource = Resource.create({"service.name": "checkout", "deployment.environment": "test", "service.instance.id": f"checkout-{protocol}"})

# Traces: a server span with a client child that fails, an event and a link.
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(SimpleSpanProcessor(Checked(span_exporter, "traces")))
tracer = tracer_provider.get_tracer("shop.checkout", "1.4.2")
with tracer.start_as_current_span("GET /orders/{id}", kind=SpanKind.SERVER, attributes={"http.request.method": "GET", "http.route": "/orders/{id}", "http.response.status_code": 502, "retry": True, "ratio": 0.25, "tags": ["a", "b"]}) as parent:
    with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT, links=[Link(parent.get_span_context(), {"link.reason": "same request"})]) as child:
        child.add_event("retry", {"attempt": 2})
        child.set_status(Status(StatusCode.ERROR, "connection reset"))
        # Logs: one record inside the child span, so it carries its ids.
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(Checked(log_exporter, "logs")))
        logger = logging.getLogger("shop.payments")
        logger.propagate = False
        logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))
        logger.warning("payment declined", extra={"order.id": 1042, "card.brand": "visa"})
        child_context = child.get_span_context()
    parent_context = parent.get_span_context()
tracer_provider.shutdown()
logger_provider.shutdown()

# Metrics: a counter, an up-down counter, a histogram and an observable gauge.
reader = PeriodicExportingMetricReader(Checked(metric_exporter, "metrics"), export_interval_millis=3_600_000)
meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
meter = meter_provider.get_meter("shop.metrics", "0.9")
meter.create_counter("orders.placed", unit="1").add(3, {"region": "eu"})
meter.create_up_down_counter("carts.open").add(-2, {"region": "eu"})
latency = meter.create_histogram("order.latency", unit="ms")
for value in (4, 40, 400):
    latency.record(value, {"region": "eu"})
meter.create_observable_gauge("queue.depth", callbacks=[lambda options: [Observation(7, {"queue": "emails"})]])
meter_provider.force_flush()
meter_provider.shutdown()

print(json.dumps({
    "trace_id": format(parent_context.trace_id, "032x"),
    "parent_span_id": format(parent_context.span_id, "016x"),
    "child_span_id": format(child_context.span_id, "016x"),
    "failures": failures,
}))
sys.exit(1 if failures else 0)
