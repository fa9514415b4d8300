"""A gRPC server and client for the eBPF tests, with grpcio and no generated code
(messages are raw bytes).

    grpc_peer.py serve PORT            serve shop.Catalog on 127.0.0.1:PORT
    grpc_peer.py call PORT METHOD...   call each method on one channel, print "METHOD CODE DETAILS"

shop.Catalog/GetItem answers b"item 7"; shop.Catalog/Missing fails with NOT_FOUND.
"""
import sys
from concurrent import futures

import grpc


def get_item(request, context):
    return b"item 7"


def missing(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no item 7")


def serve(port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handlers = {
        "GetItem": grpc.unary_unary_rpc_method_handler(get_item),
        "Missing": grpc.unary_unary_rpc_method_handler(missing),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("shop.Catalog", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def call(port, methods):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        for method in methods:
            try:
                channel.unary_unary(method)(b"\x08\x07", timeout=10)
                print(method, "OK", "", flush=True)
            except grpc.RpcError as error:
                print(method, error.code().name, error.details(), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        call(int(sys.argv[2]), sys.argv[3:])
