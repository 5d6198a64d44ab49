"""Training throughput (images/s) of the real trainer: 1 vs N processes (torchrun; gloo on CPU, NCCL on GPUs),
and on GPUs with AMP + channels-last (optionally torch.compile).

    python benchmarks/train_throughput.py [--device cpu|cuda] [--nprocs 1 2] [--batch 16] [--imgsz 128]
                                          [--steps 12] [--warmup 3] [--out benchmarks/results/train_throughput.json]
    python benchmarks/train_throughput.py --device cuda --nprocs 1 --variants fp32 amp amp_cl amp_cl_compile

Each measurement runs ``Trainer.fit`` for ``warmup + steps`` optimizer steps on the seeded synthetic set
(all three tasks, per-process batch ``--batch``; N processes train on N x batch images per step) and reads
the per-step wall time from ``steps.csv``; images/s = images per step / median step time after the warmup
steps (data loading included, as in training). On CPU each of N processes gets cores/N threads.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

VARIANTS = {  # name -> overrides (GPU only: CPU always runs fp32, NCHW)
    "fp32": ["train.amp=off", "train.channels_last=false"],
    "amp": ["train.amp=auto", "train.channels_last=false"],
    "amp_cl": ["train.amp=auto", "train.channels_last=true"],
    "amp_cl_compile": ["train.amp=auto", "train.channels_last=true", "train.compile=true"],
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--variants", nargs="+", default=None, help=f"GPU variants {list(VARIANTS)} (default: all but compile)")
    p.add_argument("--batch", type=int, default=16, help="images per process per step")
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--width", type=float, default=0.35)
    p.add_argument("--workers", type=int, default=0, help="data loader processes per training process")
    p.add_argument("--steps", type=int, default=12, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    p.add_argument("--data", default="/tmp/mtnet_bench/throughput_data")
    p.add_argument("--out", default="benchmarks/results/train_throughput.json")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: run one measurement, write JSON here
    p.add_argument("--overrides", nargs="*", default=[], help=argparse.SUPPRESS)
    return p.parse_args()


def worker(args: argparse.Namespace) -> None:
    """One measurement (under torchrun when N > 1): train, then rank 0 writes images/s."""
    from mtnet.config import load_config
    from mtnet.engine import distributed
    from mtnet.engine.trainer import Trainer

    runs = tempfile.mkdtemp(prefix="mtnet-throughput-")
    s = args.imgsz
    cfg = load_config("quickstart", [
        "name=tp", f"output_dir={runs}", f"data.root={args.data}_{s}", f"data.imgsz={s}",
        f"data.synthetic.image_size={s}", "data.synthetic.num_train=256", "data.synthetic.num_val=8",
        f"model.width={args.width}", f"train.batch_size={args.batch}", f"train.device={args.device}",
        *([f"data.workers={args.workers}", "data.cache=false"] if args.workers else []),  # the RAM cache is per process
        f"train.stop_after_steps={args.warmup + args.steps}", *args.overrides,
    ])
    trainer = Trainer(cfg, progress=False)
    trainer.fit()
    if trainer.dist.is_main:
        with open(trainer.run_dir / "steps.csv", newline="") as f:
            times = [float(r["step_s"]) for r in csv.DictReader(f)][args.warmup:]
        median = statistics.median(times)
        Path(args.worker).write_text(json.dumps({
            "images_per_step": trainer.effective_batch, "median_step_s": median,
            "images_per_s": trainer.effective_batch / median, "amp": str(trainer.amp),
            "channels_last": trainer.channels_last, "world_size": trainer.dist.world_size}))
    distributed.cleanup()


def measure(args: argparse.Namespace, nproc: int, overrides: list[str]) -> dict:
    fd, result = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    me = [str(Path(__file__).resolve()), "--worker", result, "--device", args.device, "--batch", str(args.batch),
          "--imgsz", str(args.imgsz), "--width", str(args.width), "--workers", str(args.workers), "--steps", str(args.steps),
          "--warmup", str(args.warmup), "--data", args.data, "--overrides", *overrides]
    env = dict(os.environ)
    if args.device == "cpu":
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd = launcher + me if nproc > 1 else [sys.executable] + me
    subprocess.run(cmd, check=True, env=env)
    return json.loads(Path(result).read_text())


def machine(device: str) -> str:
    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    cpuinfo = Path("/proc/cpuinfo")
    names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
             if ln.startswith("model name")] if cpuinfo.is_file() else []
    return f"{names[0] if names else platform.machine()}, {os.cpu_count()} cores"


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(args)
        return
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device on this machine")
    variants = (args.variants or ["fp32", "amp", "amp_cl"]) if args.device == "cuda" else ["fp32"]
    rows = []
    for name in variants:
        for n in args.nprocs:
            r = measure(args, n, VARIANTS[name] if args.device == "cuda" else [])
            rows.append({"variant": name, "processes": n, **r})
            print(f"{name} x{n}: {r['images_per_s']:.1f} images/s", flush=True)
    base = {r["variant"]: r["images_per_s"] for r in rows if r["processes"] == min(args.nprocs)}
    print(f"\nTraining throughput on {machine(args.device)} ({args.device}); {args.imgsz} px, width {args.width}, "
          f"batch {args.batch} per process, {args.workers} loader workers, median of {args.steps} steps")
    print(f"{'variant':<16}{'processes':>10}{'images/step':>12}{'s/step':>8}{'images/s':>10}{'speed-up':>10}")
    for r in rows:
        print(f"{r['variant']:<16}{r['processes']:>10}{r['images_per_step']:>12}{r['median_step_s']:>8.2f}"
              f"{r['images_per_s']:>10.1f}{r['images_per_s'] / base[r['variant']]:>9.2f}x")
    out = Path(args.out if args.device == "cpu" else Path(args.out).with_name("train_throughput_cuda.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "worker", "overrides")}
    out.write_text(json.dumps({"machine": machine(args.device), "settings": settings, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
