"""One JSON file per finished row, written atomically as soon as the row ends: a long sweep can be split over
processes (``--only``), and a rerun skips the rows already present (``force`` redoes them)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from mtnet.fileio import atomic_write


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2)))


def run_rows(out: Path, keys: Iterable[str], run: Callable[[str], dict], summary: Callable[[dict], dict],
             force: bool = False) -> dict[str, dict]:
    """Run each missing row of ``keys`` into ``<out stem>/<key>.json`` (printing ``summary(row)``), then return
    every row present in that folder, by key."""
    row_dir = out.with_suffix("")
    row_dir.mkdir(parents=True, exist_ok=True)
    for key in keys:
        row_file = row_dir / f"{key}.json"
        if row_file.exists() and not force:
            continue
        row = run(key)
        write_json(row_file, row)
        print(f"{key}: {json.dumps(summary(row))}", flush=True)
    return {f.stem: json.loads(f.read_text()) for f in sorted(row_dir.glob("*.json"))}
