#!/usr/bin/env python3
"""Call one OTLP gRPC method with raw bytes as the message (grpcio, no stubs).

usage: grpc_call.py HOST:PORT SIGNAL BODY_FILE [--gzip] [--metadata KEY=VALUE]
  SIGNAL: traces | metrics | logs

Prints {"code": ..., "details": ..., "retry_delay_secs": ..., "response_bytes": ...}:
what the server answered, including the RetryInfo delay when there is one.
"""
import json
import sys

import grpc
from google.rpc import error_details_pb2, status_pb2

SERVICES = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}

target, signal, body_file = sys.argv[1], sys.argv[2], sys.argv[3]
options = sys.argv[4:]
compression = grpc.Compression.Gzip if "--gzip" in options else grpc.Compression.NoCompression
metadata = [tuple(options[i + 1].split("=", 1)) for i, o in enumerate(options) if o == "--metadata"]
body = open(body_file, "rb").read()

# Messages up to 256 MiB may be sent: the server's limit is what is tested.
channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 256 << 20)])
call = channel.unary_unary(SERVICES[signal], request_serializer=lambda b: b, response_deserializer=lambda b: b)
result = {"code": "OK", "details": "", "retry_delay_secs": None, "response_bytes": None}
try:
    response = call(body, timeout=30, compression=compression, metadata=metadata or None)
    result["response_bytes"] = len(response)
except grpc.RpcError as error:
    result["code"] = error.code().name
    result["details"] = error.details()
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.type_url.endswith("google.rpc.RetryInfo"):
                    info = error_details_pb2.RetryInfo.FromString(detail.value)
                    result["retry_delay_secs"] = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
print(json.dumps(result))
