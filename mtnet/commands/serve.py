"""mtnet serve REPOSITORY [--http-port 8000] [--grpc-port 8001]: run a Triton model repository written by
`mtnet export --formats triton` with a real tritonserver (from the `serve` side environment: `mtnet envs install serve`)
until Ctrl-C; stopping leaves no server or Python-stub process behind."""

from __future__ import annotations

import argparse
import signal


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("repository", help="model repository folder (mtnet export --formats triton)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--log", default=None, help="server log file (default: in a temporary folder)")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from ..serve.server import TritonServer

    server = TritonServer(args.repository, http_port=args.http_port, grpc_port=args.grpc_port,
                          metrics_port=args.metrics_port, log_path=args.log)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the server as Ctrl-C does
    with server:
        print(f"serving {args.repository}: HTTP {server.http_url}, gRPC {server.grpc_url} (model 'cascade'); Ctrl-C stops")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    print("server stopped")
    return 0
