"""A gRPC server and client for the eBPF tests, with grpcio and no generated code
(messages are raw bytes).

    grpc_peer.py serve PORT            serve shop.Catalog on 127.0.0.1:PORT
    grpc_peer.py call PORT METHOD...   call each method on one channel, in order, and print
                                       "METHOD CODE MESSAGES MICROSECONDS DETAILS" per call
    grpc_peer.py pause PORT METHOD...  as `call`, then print "paused", wait for a line on
                                       stdin and call them all again on the same channel
                                       (one connection, open before and after the pause)

shop.Catalog/GetItem answers b"item 7"; shop.Catalog/ListItems streams ITEMS messages of
ITEM_SIZE bytes, PAUSE seconds apart; shop.Catalog/Missing fails with NOT_FOUND.
MESSAGES is how many response messages the client received; MICROSECONDS is the call's
wall time as the client measured it, from the call to its status (a stream consumed whole).
"""
import sys
import time
from concurrent import futures

import grpc

ITEMS = 3
ITEM_SIZE = 200
PAUSE = 0.05

# The client must know which methods answer with a stream.
SERVER_STREAMING = {"/shop.Catalog/ListItems"}


def get_item(request, context):
    return b"item 7"


def list_items(request, context):
    for n in range(ITEMS):
        if n > 0:
            time.sleep(PAUSE)
        yield f"item {n}".encode().ljust(ITEM_SIZE, b".")


def missing(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no item 7")


def serve(port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handlers = {
        "GetItem": grpc.unary_unary_rpc_method_handler(get_item),
        "ListItems": grpc.unary_stream_rpc_method_handler(list_items),
        "Missing": grpc.unary_unary_rpc_method_handler(missing),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("shop.Catalog", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def call(port, methods, pause=False):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call_each(channel, methods)
        if pause:
            print("paused", flush=True)
            sys.stdin.readline()
            call_each(channel, methods)


def call_each(channel, methods):
    for method in methods:
        received = 0
        started = time.monotonic()
        try:
            if method in SERVER_STREAMING:
                for _ in channel.unary_stream(method)(b"\x08\x07", timeout=10):
                    received += 1
            else:
                channel.unary_unary(method)(b"\x08\x07", timeout=10)
                received = 1
            code, details = "OK", ""
        except grpc.RpcError as error:
            code, details = error.code().name, error.details()
        micros = int((time.monotonic() - started) * 1e6)
        print(method, code, received, micros, details, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        call(int(sys.argv[2]), sys.argv[3:], pause=sys.argv[1] == "pause")
