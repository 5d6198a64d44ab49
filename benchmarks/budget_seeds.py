"""Seed spread at an equal CPU budget: YOLO11n-pose and mtnet variants, several seeds each, one core per run.

    python benchmarks/budget_seeds.py --budget-min 10 --seeds 0,1,2 --cores 0,1 --data data/ss_ablation \\
        --yolo yolo11n-pose --mtnet new_person_pose_nomosaic_p128 [--mtnet ...] [--out ...]

Why: at 10 CPU minutes two seeds of one recipe differ by up to 0.04 keypoint AP50, as much as the gap between
the models; a comparison needs means over seeds. Every run is its own process pinned to one core of ``--cores``
(``taskset``-equivalent affinity, 1 torch/OMP thread), started as soon as a core is free, in interleaved
order (seed 0 of every model first) so both sides meet the same machine load. YOLO runs go through
``peers_budget.py`` (needs ``pip install -e ".[peers]"``), mtnet runs through ``pyramid_ablation.py --seed``
(its variants, e.g. the person-only ones that match YOLO11n-pose's task set); each run has its own work folder
under ``--work``. Scores: mtnet's COCO evaluators on the same val json. Prints per-run rows and per-model
mean / std / min / max, and writes both to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from peers_budget import cpu_name
from result_rows import write_json

HERE = Path(__file__).resolve().parent
METRICS = ("kpt_AP50", "kpt_AP", "bbox_AP50", "bbox_AP", "epochs")


@dataclass(frozen=True)
class Job:
    model: str  # "yolo11n-pose" or an mtnet ablation variant key
    kind: str  # "ultralytics" or "mtnet"
    seed: int

    @property
    def name(self) -> str:
        return f"{self.model}_seed{self.seed}"


def command(job: Job, args: argparse.Namespace, work: Path) -> tuple[list[str], Path]:
    """The child process's command line and the JSON it leaves its result in."""
    common = ["--budget-min", f"{args.budget_min:g}"]
    if job.kind == "ultralytics":
        out = work / "peers_budget.json"
        return [sys.executable, str(HERE / "peers_budget.py"), *common, "--runs", job.model, "--seed", str(job.seed),
                "--data", str(args.data), "--imgsz", str(args.imgsz), "--work", str(work), "--out", str(out)], out
    out = work / "rows.json"
    return [sys.executable, str(HERE / "pyramid_ablation.py"), *common, "--epochs", "200", "--only", job.model,
            "--seed", str(job.seed), "--data-root", str(args.data), "--runs", str(work / "runs"),
            "--out", str(out)], out.with_suffix("") / f"{job.name}.json"


def read_result(job: Job, path: Path) -> dict:
    """The run's metrics from its child's JSON (peers_budget: its one run; pyramid_ablation: the row)."""
    data = json.loads(path.read_text())
    row = data["runs"][0] if job.kind == "ultralytics" else data
    return {"model": job.model, "kind": job.kind, "seed": job.seed, **{m: row.get(m) for m in METRICS}}


def run_jobs(jobs: list[Job], args: argparse.Namespace, on_result: Callable[[list[dict]], None]) -> list[dict]:
    """Run every job on the first free core of ``args.cores``; a failed run is reported and left out.
    ``on_result(results so far)`` runs after each finished job, so a cut-off sweep keeps what it measured."""
    pending, running, results = list(jobs), {}, []
    free = list(args.cores)
    while pending or running:
        while pending and free:
            job, core = pending.pop(0), free.pop(0)
            work = args.work / job.name
            work.mkdir(parents=True, exist_ok=True)
            cmd, out = command(job, args, work)
            env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                       CUDA_VISIBLE_DEVICES="")  # a CPU budget, also on a machine with GPUs
            log = (work / "log.txt").open("w")
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=HERE.parent,
                                    preexec_fn=lambda c=core: os.sched_setaffinity(0, {c}))
            running[core] = (job, proc, out, log, time.perf_counter())
            print(f"started {job.name} on core {core}", flush=True)
        time.sleep(2)
        for core, (job, proc, out, log, start) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[core]
            free.append(core)
            minutes = (time.perf_counter() - start) / 60
            if proc.returncode == 0 and out.exists():
                results.append({**read_result(job, out), "core": core, "wall_min": round(minutes, 2)})
                print(f"done {job.name} ({minutes:.1f} min): {json.dumps(results[-1])}", flush=True)
                on_result(results)
            else:
                print(f"FAILED {job.name} (exit {proc.returncode}), see {args.work / job.name / 'log.txt'}", flush=True)
    return results


def rescore(report: dict, work: Path) -> dict:
    """The mtnet runs of an earlier sweep scored again from their checkpoints with the installed decoder, each on
    the val split it was trained with (the person-only variants: their own box ground truth)."""
    import mtnet

    for row in report["runs"]:
        if row["kind"] != "mtnet":
            continue
        name = f"{row['model']}_seed{row['seed']}"
        run = work / name / "runs" / name
        metrics = mtnet.evaluate(run / "best.pt" if (run / "best.pt").exists() else run / "last.pt", split="val",
                                 progress=False)
        row |= {m: metrics[m] for m in METRICS if m in metrics}
        print(f"rescored {name}: {json.dumps({m: row.get(m) for m in METRICS})}", flush=True)
    return {**report, "summary": summarize(report["runs"]),
            "rescored": datetime.datetime.now().isoformat(timespec="seconds")}


def summarize(results: list[dict]) -> dict[str, dict]:
    """Per model: n, and mean / std / min / max of every metric over its seeds."""
    summary: dict[str, dict] = {}
    for model in dict.fromkeys(r["model"] for r in results):
        rows = [r for r in results if r["model"] == model]
        entry: dict = {"n": len(rows), "seeds": [r["seed"] for r in rows]}
        for m in METRICS:
            values = [r[m] for r in rows if r.get(m) is not None]
            if values:
                entry[m] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                            "min": min(values), "max": max(values)}
        summary[model] = entry
    return summary


def markdown(summary: dict[str, dict]) -> str:
    lines = ["| model | seeds | " + " | ".join(f"{m} mean ± std (min–max)" for m in METRICS) + " |",
             "|---|---:|" + "---|" * len(METRICS)]
    for model, s in summary.items():
        cells = [f"{s[m]['mean']:.3f} ± {s[m]['std']:.3f} ({s[m]['min']:.3f}–{s[m]['max']:.3f})" if m in s else "–"
                 for m in METRICS]
        lines.append(f"| {model} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget-min", type=float, default=10.0, help="training minutes per run, one core each")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, the same for every model")
    p.add_argument("--cores", default=None, help="comma-separated CPU cores to use (default: all this process may use)")
    p.add_argument("--data", type=Path, default=Path("data/ss_ablation"), help="COCO-layout data folder")
    p.add_argument("--imgsz", type=int, default=256)
    p.add_argument("--yolo", action="append", default=[], help="ultralytics model (repeatable), e.g. yolo11n-pose")
    p.add_argument("--mtnet", action="append", default=[], help="pyramid_ablation.py variant key (repeatable)")
    p.add_argument("--work", type=Path, default=Path("runs/budget_seeds"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/budget_seeds.json"))
    p.add_argument("--rescore", action="store_true",
                   help="train nothing: score the mtnet checkpoints of the sweep in --out / --work again (after a "
                        "decoder change); the YOLO rows stay as measured")
    args = p.parse_args(argv)
    args.cores = [int(c) for c in args.cores.split(",")] if args.cores else sorted(os.sched_getaffinity(0))
    args.data, args.work = args.data.resolve(), args.work.resolve()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not (args.data / "annotations").is_dir():
        p.error(f"--data {args.data}: no annotations/ folder (a COCO-layout set, e.g. from `mtnet synth`)")
    if args.rescore:
        report = rescore(json.loads(args.out.read_text()), args.work)
        write_json(args.out, report)
        print(markdown(report["summary"]))
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    models = [(m, "ultralytics") for m in args.yolo] + [(m, "mtnet") for m in args.mtnet]
    if not models:
        p.error("name at least one --yolo or --mtnet model")
    jobs = [Job(m, kind, s) for s in seeds for m, kind in models]  # interleaved: every model's seed 0 first
    start = time.perf_counter()

    def write_report(results: list[dict]) -> None:
        report = {"budget": f"{args.budget_min:g} min of one dedicated CPU core (1 thread) per run",
                  "budget_min": args.budget_min, "imgsz": args.imgsz, "data": str(args.data), "cores": args.cores,
                  "machine": f"{platform.platform()}; {cpu_name()}; {os.cpu_count()} cores visible",
                  "date": datetime.datetime.now().isoformat(timespec="seconds"),
                  "wall_min": round((time.perf_counter() - start) / 60, 2), "jobs": len(jobs),
                  "runs": results, "summary": summarize(results)}
        write_json(args.out, report)

    results = run_jobs(jobs, args, write_report)
    write_report(results)
    print(markdown(summarize(results)))
    return 0 if len(results) == len(jobs) else 1


if __name__ == "__main__":
    sys.exit(main())
