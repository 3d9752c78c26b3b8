#!/usr/bin/env python3
"""grpcio implementation of grpcpool.test.v1.Echo (testkit/proto/echo.proto) for interop tests.

A non-tonic HTTP/2 stack (gRPC C-core) behind the same service the Rust tests use, plus the
standard grpc.health.v1 service. Binds 127.0.0.1 only.

    echo_server.py [--port 0] [--max-concurrent-streams N] [--delay-ms MS]
                   [--max-connection-age-ms MS] [--max-connection-age-grace-ms MS]
                   [--permissive-pings] [--require-token TOKEN] [--proto PATH]

Keepalive: by default grpcio's STOCK ping policy, as real servers run it. A client PING counts
as a strike when it comes sooner than 5 minutes after the previous one
(grpc.http2.min_ping_interval_without_data_ms), or 2 hours while the connection has no call
(grpc.keepalive_permit_without_calls=0); the server sending headers or data clears the
strikes and the clock. Strike 3 (grpc.http2.max_ping_strikes=2) is answered with
GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings") and the connection is closed: on an idle
connection that is the 4th ping (grpcio 1.85, measured with raw PING frames).
--permissive-pings accepts any ping at any time instead, for tests about something else that
need frequent pings on idle connections; their caller says why.

--require-token TOKEN: every method, grpc.health.v1 included, fails with UNAUTHENTICATED
unless the call's metadata has `authorization: Bearer TOKEN` (as servers whose
authentication covers every method do).

stdout (line-buffered), for the test that spawned it:
    LISTENING <port>          once serving
    HEALTH <STATUS>           after each change of the health status
Signals: SIGUSR1 -> health NOT_SERVING, SIGUSR2 -> SERVING, SIGTERM/SIGINT -> stop.
The _pb2 modules are generated at start with grpc_tools.protoc into a temporary directory.
"""
import argparse
import os
import pathlib
import signal
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_tools import protoc

SERVICE = "grpcpool.test.v1.Echo"
DEFAULT_PROTO = pathlib.Path(__file__).resolve().parents[2] / "testkit" / "proto" / "echo.proto"


def load_modules(proto: pathlib.Path, out_dir: str):
    """Generates echo_pb2 / echo_pb2_grpc from `proto` into `out_dir` and imports them."""
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto.parent}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(proto),
    ]
    if protoc.main(args) != 0:
        sys.exit(f"echo_server: protoc failed on {proto}")
    sys.path.insert(0, out_dir)
    import echo_pb2  # noqa: E402  (generated above)
    import echo_pb2_grpc  # noqa: E402

    return echo_pb2, echo_pb2_grpc


def make_servicer(pb2, pb2_grpc, default_delay_ms: int):
    def pause(delay_ms: int, context) -> None:
        ms = delay_ms or default_delay_ms
        if ms:
            # Ends early when the client cancels or the deadline passes.
            end = time.monotonic() + ms / 1000.0
            while context.is_active():
                left = end - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(left, 0.01))

    seen = {}
    seen_lock = threading.Lock()

    def maybe_fail(req, context) -> None:
        if not req.fail_code:
            return
        if req.fail_attempts:
            # Only the first `fail_attempts` calls with this message fail (retry tests).
            with seen_lock:
                seen[req.message] = seen.get(req.message, 0) + 1
                if seen[req.message] > req.fail_attempts:
                    return
        if req.pushback_ms:
            context.set_trailing_metadata((("grpc-retry-pushback-ms", req.pushback_ms),))
        if req.message.startswith("headers-then-fail"):
            # Response headers first, then the error: the call is committed (gRFC A6).
            context.send_initial_metadata((("x-sent", "headers"),))
        context.abort(grpc.StatusCode(_code(req.fail_code)), f"fail_code {req.fail_code} requested")

    def previous_attempts(context) -> str:
        for key, value in context.invocation_metadata():
            if key == "grpc-previous-rpc-attempts":
                return value
        return ""

    class Echo(pb2_grpc.EchoServicer):
        def Unary(self, request, context):
            pause(request.delay_ms, context)
            maybe_fail(request, context)
            # `count` carries the grpc-previous-rpc-attempts the server saw (0: none).
            previous = previous_attempts(context)
            count = int(previous) if previous.isdigit() else 0
            return pb2.EchoReply(message=request.message, peer=context.peer(), count=count)

        def Lookup(self, request, context):
            return self.Unary(request, context)

        def ServerStream(self, request, context):
            for i in range(request.count):
                if i and request.interval_ms:
                    pause(request.interval_ms, context)
                if not context.is_active():
                    return
                yield pb2.EchoReply(message=request.message, peer=context.peer(), count=i + 1)

        def ClientStream(self, request_iterator, context):
            n, last = 0, ""
            for req in request_iterator:
                n += 1
                last = req.message
            return pb2.EchoReply(message=last, peer=context.peer(), count=n)

        def Bidi(self, request_iterator, context):
            for n, req in enumerate(request_iterator, start=1):
                pause(req.delay_ms, context)
                maybe_fail(req, context)
                yield pb2.EchoReply(message=req.message, peer=context.peer(), count=n)

    return Echo()


class RequireToken(grpc.ServerInterceptor):
    """Rejects every call, known method or not, without `authorization: Bearer <token>`."""

    def __init__(self, token: str):
        self.expected = f"Bearer {token}"

    def intercept_service(self, continuation, handler_call_details):
        metadata = dict(handler_call_details.invocation_metadata or ())
        if metadata.get("authorization") == self.expected:
            return continuation(handler_call_details)
        why = "wrong authorization" if "authorization" in metadata else "no authorization"

        def deny(_request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{why} for {handler_call_details.method}")

        # The refusal has the method's shape: a unary-request handler would first wait for a
        # request message, a streaming one gets its answer at once. An unknown method gets
        # the unary shape (its client sends one message).
        handler = continuation(handler_call_details)
        if handler is None or not (handler.request_streaming or handler.response_streaming):
            return grpc.unary_unary_rpc_method_handler(deny)
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(deny)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(deny)
        return grpc.unary_stream_rpc_method_handler(deny)


def _code(value: int):
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code.value
    return grpc.StatusCode.UNKNOWN.value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-concurrent-streams", type=int, default=0, help="0 = grpcio default (unlimited)")
    ap.add_argument("--delay-ms", type=int, default=0, help="handler delay when a request asks for none")
    ap.add_argument("--max-connection-age-ms", type=int, default=0, help="0 = no limit")
    ap.add_argument("--max-connection-age-grace-ms", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=512, help="handler threads")
    ap.add_argument(
        "--permissive-pings",
        action="store_true",
        help="accept client pings at any rate, also without calls (default: grpcio's stock policy)",
    )
    ap.add_argument(
        "--require-token", metavar="TOKEN", help="every method requires `authorization: Bearer TOKEN`"
    )
    ap.add_argument("--proto", type=pathlib.Path, default=DEFAULT_PROTO)
    args = ap.parse_args()

    sys.stdout.reconfigure(line_buffering=True)
    # Generated, imported, and deleted at once (a SIGKILLed server leaves nothing behind).
    with tempfile.TemporaryDirectory(prefix="grpc-pool-echo-") as gen_dir:
        pb2, pb2_grpc = load_modules(args.proto, gen_dir)

    options = [("grpc.so_reuseport", 0)]
    if args.max_concurrent_streams > 0:
        options.append(("grpc.max_concurrent_streams", args.max_concurrent_streams))
    if args.max_connection_age_ms > 0:
        options.append(("grpc.max_connection_age_ms", args.max_connection_age_ms))
        options.append(("grpc.max_connection_age_grace_ms", args.max_connection_age_grace_ms))
    if args.permissive_pings:
        # Pings however often they come, with or without calls (0 strikes = never GOAWAY).
        options += [
            ("grpc.http2.min_ping_interval_without_data_ms", 10),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.keepalive_permit_without_calls", 1),
        ]
    if args.require_token is not None and not args.require_token:
        sys.exit("echo_server: --require-token must not be empty")
    interceptors = [RequireToken(args.require_token)] if args.require_token else []

    executor = futures.ThreadPoolExecutor(max_workers=args.workers)
    server = grpc.server(executor, options=options, interceptors=interceptors)
    pb2_grpc.add_EchoServicer_to_server(make_servicer(pb2, pb2_grpc, args.delay_ms), server)
    health_servicer = health.HealthServicer(
        experimental_non_blocking=True,
        experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=4),
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    def set_status(status) -> None:
        for name in ("", SERVICE):
            health_servicer.set(name, status)
        print(f"HEALTH {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")

    stop = threading.Event()
    pending = []  # status changes requested by signal handlers, applied by the main loop
    signal.signal(signal.SIGUSR1, lambda *_: pending.append(health_pb2.HealthCheckResponse.NOT_SERVING))
    signal.signal(signal.SIGUSR2, lambda *_: pending.append(health_pb2.HealthCheckResponse.SERVING))
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    set_status(health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    if port == 0:
        sys.exit(f"echo_server: cannot bind 127.0.0.1:{args.port}")
    server.start()

    print(f"LISTENING {port}")

    while not stop.is_set():
        while pending:
            set_status(pending.pop(0))
        stop.wait(0.02)
    server.stop(grace=1.0).wait()
    os._exit(0)  # do not wait for handler threads of cancelled calls


if __name__ == "__main__":
    main()
