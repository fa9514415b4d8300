#!/usr/bin/env python3
"""Build a Prometheus remote write 2.0 request with Google's protobuf runtime.

usage: remote_write_v2.py OUT_FILE

The message types are declared here from the 2.0 specification's field
numbers (io.prometheus.write.v2), independently of tapline's own declarations,
and the request is written uncompressed (the caller applies snappy).
Prints the request as JSON, for the caller to compare with what it decoded.
"""
import json
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

F = descriptor_pb2.FieldDescriptorProto
file = descriptor_pb2.FileDescriptorProto(name="rw2_test.proto", package="io.prometheus.write.v2", syntax="proto3")


def message(name, fields, oneofs=()):
    m = file.message_type.add(name=name)
    for oneof in oneofs:
        m.oneof_decl.add(name=oneof)
    for number, field_name, kind, label, type_name, oneof in fields:
        f = m.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            f.type_name = ".io.prometheus.write.v2." + type_name
        if oneof is not None:
            f.oneof_index = oneof
    return m


ONE, MANY = F.LABEL_OPTIONAL, F.LABEL_REPEATED
message("Request", [(4, "symbols", F.TYPE_STRING, MANY, None, None), (5, "timeseries", F.TYPE_MESSAGE, MANY, "TimeSeries", None)])
message("TimeSeries", [
    (1, "labels_refs", F.TYPE_UINT32, MANY, None, None),
    (2, "samples", F.TYPE_MESSAGE, MANY, "Sample", None),
    (3, "histograms", F.TYPE_MESSAGE, MANY, "Histogram", None),
    (4, "exemplars", F.TYPE_MESSAGE, MANY, "Exemplar", None),
    (5, "metadata", F.TYPE_MESSAGE, ONE, "Metadata", None),
    (6, "created_timestamp", F.TYPE_INT64, ONE, None, None),
])
message("Exemplar", [(1, "labels_refs", F.TYPE_UINT32, MANY, None, None), (2, "value", F.TYPE_DOUBLE, ONE, None, None), (3, "timestamp", F.TYPE_INT64, ONE, None, None)])
message("Sample", [(1, "value", F.TYPE_DOUBLE, ONE, None, None), (2, "timestamp", F.TYPE_INT64, ONE, None, None)])
message("Metadata", [(1, "type", F.TYPE_INT32, ONE, None, None), (3, "help_ref", F.TYPE_UINT32, ONE, None, None), (4, "unit_ref", F.TYPE_UINT32, ONE, None, None)])
message("BucketSpan", [(1, "offset", F.TYPE_SINT32, ONE, None, None), (2, "length", F.TYPE_UINT32, ONE, None, None)])
message("Histogram", [
    (1, "count_int", F.TYPE_UINT64, ONE, None, 0),
    (2, "count_float", F.TYPE_DOUBLE, ONE, None, 0),
    (3, "sum", F.TYPE_DOUBLE, ONE, None, None),
    (4, "schema", F.TYPE_SINT32, ONE, None, None),
    (5, "zero_threshold", F.TYPE_DOUBLE, ONE, None, None),
    (6, "zero_count_int", F.TYPE_UINT64, ONE, None, 1),
    (7, "zero_count_float", F.TYPE_DOUBLE, ONE, None, 1),
    (8, "negative_spans", F.TYPE_MESSAGE, MANY, "BucketSpan", None),
    (9, "negative_deltas", F.TYPE_SINT64, MANY, None, None),
    (10, "negative_counts", F.TYPE_DOUBLE, MANY, None, None),
    (11, "positive_spans", F.TYPE_MESSAGE, MANY, "BucketSpan", None),
    (12, "positive_deltas", F.TYPE_SINT64, MANY, None, None),
    (13, "positive_counts", F.TYPE_DOUBLE, MANY, None, None),
    (14, "reset_hint", F.TYPE_INT32, ONE, None, None),
    (15, "timestamp", F.TYPE_INT64, ONE, None, None),
    (16, "custom_values", F.TYPE_DOUBLE, MANY, None, None),
], oneofs=("count", "zero_count"))

pool = descriptor_pool.DescriptorPool()
pool.Add(file)
Request = message_factory.GetMessageClass(pool.FindMessageTypeByName("io.prometheus.write.v2.Request"))

# Symbols: the empty string first, as the spec asks; labels point into them.
symbols = ["", "__name__", "http_requests_total", "code", "200", "job", "kong", "kong_latency_ms",
           "trace_id", "4bf92f3577b34da6a3ce929d0e0e4736", "Requests by code", "request_latency", "seconds", "temperature"]
ref = {s: i for i, s in enumerate(symbols)}
T = 1732613000000
request = Request(symbols=symbols)
# A counter, with an exemplar and its metadata.
series = request.timeseries.add(labels_refs=[ref["__name__"], ref["http_requests_total"], ref["code"], ref["200"], ref["job"], ref["kong"]])
series.samples.add(value=1027, timestamp=T)
series.samples.add(value=1031, timestamp=T + 15000)
series.exemplars.add(labels_refs=[ref["trace_id"], ref["4bf92f3577b34da6a3ce929d0e0e4736"]], value=1, timestamp=T + 15000)
series.metadata.type = 1
series.metadata.help_ref = ref["Requests by code"]
series.created_timestamp = T - 60000
# A gauge.
gauge = request.timeseries.add(labels_refs=[ref["__name__"], ref["temperature"], ref["job"], ref["kong"]])
gauge.samples.add(value=-3.5, timestamp=T)
gauge.metadata.type = 2
# A native histogram (schema 0: base 2) with integer deltas and a negative bucket.
native = request.timeseries.add(labels_refs=[ref["__name__"], ref["kong_latency_ms"], ref["job"], ref["kong"]])
h = native.histograms.add(count_int=12, sum=50.0, schema=0, zero_threshold=0.001, zero_count_int=1, timestamp=T)
h.positive_spans.add(offset=1, length=2)
h.positive_spans.add(offset=1, length=1)
h.positive_deltas.extend([3, 1, -2])
h.negative_spans.add(offset=0, length=1)
h.negative_deltas.extend([2])
native.metadata.type = 3
# A float histogram with custom bounds (schema -53).
custom = request.timeseries.add(labels_refs=[ref["__name__"], ref["request_latency"], ref["job"], ref["kong"]])
c = custom.histograms.add(count_float=5.0, sum=2.5, schema=-53, timestamp=T)
c.custom_values.extend([0.1, 1.0])
c.positive_spans.add(offset=0, length=3)
c.positive_counts.extend([1.0, 3.0, 1.0])
custom.metadata.type = 3
custom.metadata.unit_ref = ref["seconds"]

open(sys.argv[1], "wb").write(request.SerializeToString())
print(json.dumps(json_format.MessageToDict(request)))
