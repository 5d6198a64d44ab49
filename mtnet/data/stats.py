"""``mtnet data stats``: class counts, box sizes and aspects, keypoint visibility, seg class frequencies.

Numbers come from annotations only (no image decoding) except the segmentation frequencies, which
read up to ``seg_images`` masks. The result is a JSON-able dict (it also holds the class-balanced loss
weights of ``class_balance.py``), a printed table and PNG plots.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .class_balance import effective_number_weights
from .sample import IGNORE_INDEX

SIZE_BINS = (0, 16, 32, 64, 96, 128, 256, 512, 100000)  # sqrt(box area) in pixels; 32 / 96 are COCO's S/M/L
ASPECT_BINS = (-np.inf, -2, -1, -0.5, 0, 0.5, 1, 2, np.inf)  # log2(w / h)


def compute_stats(source, *, seg_images: int = 200, beta: float = 0.999) -> dict:
    meta = source.meta
    c = len(meta.det_classes)
    instances = np.zeros(c, np.int64)
    images_with = np.zeros(c, np.int64)
    sizes, aspects = [], []
    k = meta.num_keypoints
    vis_counts = np.zeros((k, 3), np.int64)
    empty = 0
    for i in range(len(source)):
        boxes, labels, kpts = source.annotations(i)
        if not len(labels):
            empty += 1
            continue
        instances += np.bincount(labels, minlength=c)[:c]
        images_with += np.bincount(np.unique(labels), minlength=c)[:c]
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        sizes.append(np.sqrt(np.clip(w * h, 0, None)))
        aspects.append(np.log2(np.clip(w, 1e-3, None) / np.clip(h, 1e-3, None)))
        if k and kpts.shape[1] == k:
            person = labels == meta.keypoint_class
            for v in range(3):
                vis_counts[:, v] += (kpts[person, :, 2] == v).sum(0)
    sizes_a = np.concatenate(sizes) if sizes else np.zeros(0)
    aspects_a = np.concatenate(aspects) if aspects else np.zeros(0)
    out = {
        "num_images": len(source), "images_without_boxes": empty,
        "det_classes": meta.det_classes, "instances": instances.tolist(), "images_with_class": images_with.tolist(),
        "class_balanced_weights": effective_number_weights(instances, beta).round(4).tolist(), "beta": beta,
        "box_size_bins": list(SIZE_BINS), "box_size_hist": np.histogram(sizes_a, SIZE_BINS)[0].tolist(),
        "box_small_medium_large": [int((sizes_a < 32).sum()), int(((sizes_a >= 32) & (sizes_a < 96)).sum()),
                                   int((sizes_a >= 96).sum())],
        "aspect_bins": [float(b) for b in ASPECT_BINS], "aspect_hist": np.histogram(aspects_a, ASPECT_BINS)[0].tolist(),
        "keypoint_names": meta.keypoint_names,
        "keypoint_visibility": (vis_counts / np.maximum(vis_counts.sum(1, keepdims=True), 1)).round(4).tolist(),
    }
    if meta.seg_classes and seg_images > 0:
        n = len(meta.seg_classes)
        pixels = np.zeros(n, np.int64)
        ignored = labelled_images = 0
        for i in np.linspace(0, len(source) - 1, min(seg_images, len(source))).round().astype(int):
            s = source.load(int(i))
            if s.mask is None or not s.has_seg:
                continue
            labelled_images += 1
            counts = np.bincount(s.mask.ravel(), minlength=256)
            pixels += counts[:n]
            ignored += int(counts[IGNORE_INDEX])
        total = max(1, int(pixels.sum()) + ignored)
        out.update(seg_classes=meta.seg_classes, seg_images_read=labelled_images,
                   seg_pixel_frequency=(pixels / total).round(6).tolist(), seg_ignored_fraction=round(ignored / total, 6))
    return out


def format_table(stats: dict) -> str:
    lines = [f"{'class':24s} {'instances':>10s} {'images':>8s} {'cb weight':>10s}"]
    for name, n, im, w in zip(stats["det_classes"], stats["instances"], stats["images_with_class"],
                              stats["class_balanced_weights"], strict=True):
        lines.append(f"{name[:24]:24s} {n:10d} {im:8d} {w:10.3f}")
    s, m, lg = stats["box_small_medium_large"]
    lines.append(f"images {stats['num_images']} (without boxes {stats['images_without_boxes']}); "
                 f"boxes small/medium/large (COCO sqrt-area 32/96) {s}/{m}/{lg}")
    if stats["keypoint_names"]:
        lines.append(f"{'keypoint':24s} {'v=2':>8s} {'v=1':>8s} {'v=0':>8s}")
        for name, (v0, v1, v2) in zip(stats["keypoint_names"], stats["keypoint_visibility"], strict=True):
            lines.append(f"{name[:24]:24s} {v2:8.3f} {v1:8.3f} {v0:8.3f}")
    if "seg_classes" in stats:
        lines.append(f"{'seg class':24s} {'pixels':>8s}   (from {stats['seg_images_read']} masks; "
                     f"ignored {stats['seg_ignored_fraction']:.3f})")
        for name, f in zip(stats["seg_classes"], stats["seg_pixel_frequency"], strict=True):
            lines.append(f"{name[:24]:24s} {f:8.4f}")
    return "\n".join(lines)


def write_plots(stats: dict, out_dir: Path) -> list[Path]:
    """class_counts.png, boxes.png, keypoint_visibility.png (pose), seg_frequency.png (seg)."""
    from ..plotting import subplots

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def bar(ax, names, values, title):
        ax.bar(range(len(values)), values)
        ax.set_xticks(range(len(values)), names, rotation=90, fontsize=7)
        ax.set_title(title)

    fig, ax = subplots(figsize=(max(6, 0.3 * len(stats["det_classes"])), 4))
    bar(ax, stats["det_classes"], stats["instances"], "instances per class")
    written.append(_save(fig, out_dir / "class_counts.png"))
    fig, (a1, a2) = subplots(1, 2, figsize=(10, 4))
    bar(a1, [f"<{b}" for b in SIZE_BINS[1:-1]] + [f">={SIZE_BINS[-2]}"], stats["box_size_hist"], "box sqrt(area), px")
    bar(a2, ["<-2", "-2..-1", "-1..-0.5", "-0.5..0", "0..0.5", "0.5..1", "1..2", ">2"], stats["aspect_hist"],
        "box log2(w/h)")
    written.append(_save(fig, out_dir / "boxes.png"))
    if stats["keypoint_names"]:
        fig, ax = subplots(figsize=(8, 4))
        vis = np.asarray(stats["keypoint_visibility"])
        x = np.arange(len(vis))
        for v, label in ((2, "visible"), (1, "occluded"), (0, "unlabelled")):
            ax.bar(x + (v - 1) * 0.27, vis[:, v], width=0.27, label=label)
        ax.set_xticks(x, stats["keypoint_names"], rotation=90, fontsize=7)
        ax.legend()
        ax.set_title("keypoint visibility rate")
        written.append(_save(fig, out_dir / "keypoint_visibility.png"))
    if "seg_classes" in stats:
        fig, ax = subplots(figsize=(max(6, 0.3 * len(stats["seg_classes"])), 4))
        bar(ax, stats["seg_classes"], stats["seg_pixel_frequency"], "segmentation pixel frequency")
        written.append(_save(fig, out_dir / "seg_frequency.png"))
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=1))
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)

    return path
