"""Fine-grained labels for a cascade: a COCO instances json whose categories are the fine labels, plus a
fine -> coarse category map.

Why this layout: the detector trains on coarse classes it can see at its input resolution, the crop
classifier on the fine labels of the coarse classes that have sub-types. Both label sets come from one
COCO file and one small map, so any COCO tool still reads the data set:

* ``annotations/instances_fine_<split>.json``: a standard COCO instances file, categories = fine labels;
* ``annotations/fine_to_coarse.json``: ``{"<fine category id>": <coarse category id>, ...}`` covering every
  fine category. A coarse class whose only fine category has its own id is not split (person -> person).

The synthetic ``subtypes`` recipe writes exactly this (next to its coarse ``instances_<split>.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sample import DataError

BACKGROUND = "background"  # the classifier's extra class: a detection that is none of the fine labels


@dataclass(frozen=True)
class FineLabels:
    """The fine label space: category ids and names, their coarse category, and what the classifier predicts."""

    fine_ids: list[int]  # every fine category id, sorted
    fine_names: list[str]  # names of ``fine_ids``
    to_coarse: dict[int, int]  # fine category id -> coarse category id

    @property
    def split_coarse(self) -> list[int]:
        """Coarse category ids with sub-types: the classes whose detections the classifier re-labels."""
        groups: dict[int, list[int]] = {}
        for f, c in self.to_coarse.items():
            groups.setdefault(c, []).append(f)
        return sorted(c for c, fs in groups.items() if len(fs) > 1 or fs[0] != c)

    @property
    def classifier_ids(self) -> list[int]:
        """Fine ids the classifier predicts (sub-types of the split classes), in label order; label
        ``len(classifier_ids)`` is ``BACKGROUND``."""
        split = set(self.split_coarse)
        return [f for f in self.fine_ids if self.to_coarse[f] in split]

    @property
    def classifier_names(self) -> list[str]:
        names = dict(zip(self.fine_ids, self.fine_names, strict=True))
        return [names[f] for f in self.classifier_ids] + [BACKGROUND]

    def to_dict(self) -> dict[str, Any]:
        return {"fine_ids": self.fine_ids, "fine_names": self.fine_names,
                "to_coarse": {str(k): v for k, v in self.to_coarse.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FineLabels:
        return cls(list(data["fine_ids"]), list(data["fine_names"]), {int(k): int(v) for k, v in data["to_coarse"].items()})


def fine_paths(root: str | Path, split: str) -> tuple[Path, Path]:
    """The default fine instances json and fine -> coarse map of a data folder."""
    ann = Path(root) / "annotations"
    return ann / f"instances_fine_{split}.json", ann / "fine_to_coarse.json"


def read_fine_labels(instances: str | Path, mapping: str | Path, coarse_ids: list[int] | None = None) -> FineLabels:
    """Read the fine categories of ``instances`` and the ``mapping`` json; every fine category must map to a
    coarse one (and, given ``coarse_ids``, to a class the detector knows)."""
    instances, mapping = Path(instances), Path(mapping)
    for p in (instances, mapping):
        if not p.is_file():
            raise DataError(f"{p}: fine-label file not found (see mtnet/data/fine.py for the layout)")
    try:
        cats = json.loads(instances.read_text())["categories"]
        raw = json.loads(mapping.read_text())
        to_coarse = {int(k): int(v) for k, v in raw.items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(f"{instances} / {mapping}: not a COCO json with categories and an id -> id map ({e})") from e
    cats = sorted(cats, key=lambda c: c["id"])
    missing = [c["id"] for c in cats if c["id"] not in to_coarse]
    if missing:
        raise DataError(f"{mapping}: fine categories {missing} of {instances.name} have no coarse category")
    if coarse_ids is not None:
        unknown = sorted({to_coarse[c["id"]] for c in cats} - set(coarse_ids))
        if unknown:
            raise DataError(f"{mapping}: coarse categories {unknown} are not classes of the detector ({coarse_ids})")
    return FineLabels([c["id"] for c in cats], [c["name"] for c in cats], {c["id"]: to_coarse[c["id"]] for c in cats})
