"""Mixed precision on GPUs: bf16 autocast where supported, else fp16 with a ``GradScaler``; CPU stays fp32.

Why fp32 on CPU: bf16 autocast is slower than fp32 on AVX2 CPUs without AMX, and keeping CPU runs fp32
keeps them bit-reproducible.
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import UserError

MODES = ("auto", "bf16", "fp16", "off")


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.amp`` on ``device`` (None = full fp32)."""
    if mode not in MODES:
        raise UserError(f"train.amp: expected one of {', '.join(MODES)}, got {mode!r}")
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode == "bf16" and not torch.cuda.is_bf16_supported():
        raise UserError("train.amp=bf16: this GPU has no bf16 support; use train.amp=fp16")
    return torch.bfloat16 if mode == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast context for the forward pass and loss (a no-op context when ``dtype`` is None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler | None:
    """fp16 needs loss scaling (its exponent range underflows small gradients); bf16 and fp32 do not."""
    return torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
