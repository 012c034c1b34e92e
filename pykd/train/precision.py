"""Mixed precision for frame-level training: the matrix products in bfloat16, the weights, the
optimiser and the loss in float32 (``torch.autocast``).

bfloat16 pays where the hardware multiplies it natively: CPUs with AMX tiles or AVX-512 BF16
(Intel Sapphire Rapids and later: the 5 x 1024 teacher trains ~3x faster per step on 2 cores)
and CUDA devices that support it. Elsewhere autocast emulates it and is slower, so ``auto`` keeps
float32 there. Decoding, priors and the CV loss always run in float32.
"""

from __future__ import annotations

import contextlib

import torch

from pykd.train.options import PRECISIONS


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        cpu = torch.cpu
        return bool(cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported())
    return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast type for ``precision`` on ``device`` (None: plain float32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} ({', '.join(PRECISIONS)})")
    if precision == "float32" or (precision == "auto" and not native_bf16(device)):
        return None
    return torch.bfloat16


def autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``, or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
