"""Representative-set selection for PTQ: every detection class, segmentation class and task present.

Activation ranges are calibrated only on what the set shows, so a class or task missing from it gets
clipped ranges on the paths it drives (e.g. a seg class never seen -> its logit channel saturates).
Selection is greedy set cover, rarest item first, over a random pool, then filled up at random.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtnet.data.coco import CocoSource
from mtnet.data.preprocess import letterbox, to_unit_range
from mtnet.tasks import get_task, list_tasks


@dataclass
class Coverage:
    """What the chosen images contain; ``missing`` lists items present in the pool but not chosen (empty)."""

    indices: list[int]
    tasks: dict[str, int] = field(default_factory=dict)  # task -> chosen images showing it
    classes: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> class -> chosen images with it
    missing: list[str] = field(default_factory=list)


def _items(source: CocoSource, index: int, tasks: list[str]) -> set[str]:
    """What image ``index`` shows, as ``kind:name`` items each of ``tasks`` declares."""
    sample = source.load(index)
    return set().union(*(get_task(n).calibration_items(sample, source.meta) for n in tasks))


def select_representative(source: CocoSource, num: int, *, seed: int = 0, pool_factor: int = 4,
                          tasks: list[str] | None = None) -> Coverage:
    """Pick ``num`` image indices of ``source`` covering every class and task seen in a random pool; ``tasks``:
    the model's tasks (default: every registered task)."""
    tasks = list_tasks() if tasks is None else list(tasks)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(source))
    pool = [int(i) for i in order[: min(len(source), max(num * pool_factor, num))]]
    contents = {i: _items(source, i, tasks) for i in pool}
    counts: dict[str, int] = {}
    for items in contents.values():
        for it in items:
            counts[it] = counts.get(it, 0) + 1
    chosen: list[int] = []
    covered: set[str] = set()
    for item in sorted(counts, key=lambda k: (counts[k], k)):  # rarest first
        if item in covered or len(chosen) >= num:
            continue
        # the image with this item that covers the most still-uncovered items
        best = max((i for i in pool if item in contents[i] and i not in chosen),
                   key=lambda i: len(contents[i] - covered))
        chosen.append(best)
        covered |= contents[best]
    rest = [i for i in pool if i not in chosen]
    chosen += rest[: num - len(chosen)]
    cov = Coverage(indices=chosen)
    for i in chosen:
        for it in contents[i]:
            kind, name = it.split(":", 1)
            target = cov.tasks if kind == "task" else cov.classes.setdefault(kind, {})
            target[name] = target.get(name, 0) + 1
    cov.missing = sorted(set(counts) - covered - {it for i in chosen for it in contents[i]})
    return cov


def calibration_images(source: CocoSource, indices: list[int], imgsz: int) -> np.ndarray:
    """Letterboxed RGB images as float32 NHWC in [0, 1] (onnx2tf applies MEAN/STD itself)."""
    return to_unit_range(np.stack([letterbox(source.load(i).image, imgsz)[0] for i in indices]))
