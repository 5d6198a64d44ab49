"""Load test of the served cascade: concurrent clients against a local Triton server for a fixed time.

    python benchmarks/serve_load.py REPOSITORY [--clients 4] [--seconds 60] [--protocol http|grpc]
                                    [--images-per-request 1] [--out benchmarks/results/serve_load.json]

Starts ``mtnet serve``'s server (``mtnet.serve.server.TritonServer``) on the repository written by
``mtnet export --formats triton``; each client (a thread with its own ``tritonclient``) sends real val
images of the repository's data set (encoded bytes, as an application would) back to back for
``--seconds``. Reports requests and images per second, p50 / p90 / p99 latency and failed requests
(an error answer or a wrong-shaped one); stops the server and checks that no process of it is left.
Writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np

from mtnet.fileio import atomic_write
from mtnet.serve.server import TritonServer, free_port

REPO = Path(__file__).resolve().parents[1]


def _client(protocol: str, server: TritonServer):
    if protocol == "grpc":
        import tritonclient.grpc as module

        return module, module.InferenceServerClient(server.grpc_url)
    import tritonclient.http as module

    return module, module.InferenceServerClient(server.http_url)


def _worker(protocol: str, server: TritonServer, payloads: list[np.ndarray], stop_at: float, seed: int,
            latencies: list[float], failures: list[str]) -> None:
    module, client = _client(protocol, server)
    rng = np.random.default_rng(seed)
    try:
        while time.perf_counter() < stop_at:
            data = payloads[int(rng.integers(len(payloads)))]
            inp = module.InferInput("IMAGES", [len(data)], "BYTES")
            inp.set_data_from_numpy(data)
            t0 = time.perf_counter()
            try:
                result = client.infer("cascade", [inp])
                boxes, index = result.as_numpy("BOXES"), result.as_numpy("IMAGE_INDEX")
                if boxes.ndim != 2 or boxes.shape[1] != 4 or len(index) != len(boxes):
                    raise ValueError(f"malformed answer: BOXES {boxes.shape}, IMAGE_INDEX {index.shape}")
                latencies.append(time.perf_counter() - t0)
            except Exception as e:  # every failure is counted and reported, the load goes on
                failures.append(f"{type(e).__name__}: {e}"[:200])
    finally:
        client.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("repository", help="model repository (mtnet export --formats triton)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--protocol", choices=("http", "grpc"), default="http")
    p.add_argument("--images-per-request", type=int, default=1)
    p.add_argument("--data", default=None, help="image folder (default: the val split of the classifier's data)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "serve_load.json"))
    args = p.parse_args()

    repo = Path(args.repository)
    doc = json.loads((repo / "cascade.json").read_text())
    folder = Path(args.data) if args.data else Path(doc["training_data"]) / "val"
    files = sorted(folder.glob("*.jpg"))[:200]
    if not files:
        raise SystemExit(f"{folder}: no .jpg images")
    k = args.images_per_request
    payloads = [np.array([f.read_bytes() for f in files[i : i + k]], dtype=object) for i in range(0, len(files) - k + 1, k)]
    latencies: list[float] = []
    failures: list[str] = []
    server = TritonServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port())
    with server:
        pid = server.proc.pid
        module, warm = _client(args.protocol, server)
        for data in payloads[:5]:  # first requests load lazily initialised kernels: not part of the load
            inp = module.InferInput("IMAGES", [len(data)], "BYTES")
            inp.set_data_from_numpy(data)
            warm.infer("cascade", [inp])
        warm.close()
        stop_at = time.perf_counter() + args.seconds
        threads = [threading.Thread(target=_worker, args=(args.protocol, server, payloads, stop_at, i, latencies, failures))
                   for i in range(args.clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
    left = [int(x) for x in os.popen(f"pgrep -g {pid}").read().split()]
    ms = sorted(1e3 * x for x in latencies)
    q = lambda f: ms[min(len(ms) - 1, int(f * len(ms)))] if ms else float("nan")  # noqa: E731
    result = {
        "repository": str(repo), "protocol": args.protocol, "clients": args.clients, "seconds": elapsed,
        "images_per_request": k, "requests_ok": len(ms), "requests_failed": len(failures),
        "failures": sorted(set(failures))[:20], "throughput_rps": len(ms) / elapsed, "images_per_s": k * len(ms) / elapsed,
        "latency_ms": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "mean": statistics.fmean(ms) if ms else float("nan"),
                       "max": ms[-1] if ms else float("nan")},
        "processes_left_after_stop": left, "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "instances_per_model": doc["options"]["instances"],
    }
    out = Path(args.out)
    atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2)))
    lat = result["latency_ms"]
    print(f"{args.clients} {args.protocol} clients x {elapsed:.0f} s: {result['throughput_rps']:.1f} req/s "
          f"({result['images_per_s']:.1f} images/s), p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, "
          f"failed {len(failures)}, processes left {len(left)}")
    print(f"written {out}")


if __name__ == "__main__":
    main()
