"""Class-balanced loss weights from the effective number of samples (Cui et al., CVPR 2019).

With ``n_c`` training instances of class c, the effective number is ``E_c = (1 - beta^n_c) / (1 - beta)``
and the weight ``w_c ∝ 1 / E_c``, normalised so the weights average 1 (the loss scale stays the same).
beta -> 0 gives equal weights, beta -> 1 inverse frequency. A class with no instances gets weight 1.
"""

from __future__ import annotations

import numpy as np

from .sample import DataError


def effective_number_weights(counts: np.ndarray | list[int], beta: float = 0.999) -> np.ndarray:
    counts = np.asarray(counts, np.float64)
    if not 0.0 <= beta < 1.0:
        raise DataError(f"class_balance_beta must be in [0, 1), got {beta}")
    if counts.size == 0:
        return np.zeros(0, np.float64)
    effective = (1.0 - np.power(beta, counts)) / (1.0 - beta) if beta > 0 else np.ones_like(counts)
    weights = np.where(counts > 0, 1.0 / np.maximum(effective, 1e-12), 0.0)
    present = counts > 0
    if present.any():
        weights[present] *= present.sum() / weights[present].sum()
    weights[~present] = 1.0
    return weights


def det_class_counts(source, num_classes: int) -> np.ndarray:
    """Instances per contiguous det label, read from annotations only (no image decoding)."""
    counts = np.zeros(num_classes, np.int64)
    for i in range(len(source)):
        labels = source.annotations(i)[1]
        counts += np.bincount(labels, minlength=num_classes)[:num_classes]
    return counts
