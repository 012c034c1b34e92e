"""kaldiio with Kaldi's own arithmetic for compressed matrices: import kaldiio from here.

Kaldi's compressed matrices (``CM``: 8 bits per value with per-column percentiles, what
``copy-feats --compress=true`` and the feature scripts write; ``CM2``: 16 bits; ``CM3``: 8 bits)
are decoded by kaldiio with float arithmetic in another order than Kaldi's, which gives values
up to ~2e-5 away from what Kaldi's binaries read (measured on fbank/MFCC archives: about half
of the values differ in the last bits), and so, e.g., CMVN stats that differ from
``compute-cmvn-stats`` on the same archive. This module replaces kaldiio's two conversion
functions with Kaldi's operation order (``Uint16ToFloat``, ``Uint8ToFloat`` and ``CharToFloat``
of Kaldi's compressed-matrix code: single-precision products, the last step of ``CharToFloat``
in double), so pykd reads exactly the floats Kaldi reads. No library offers Kaldi-exact
decompression, so it is written here. Every pykd module gets kaldiio through
``from pykd.io.compressed import kaldiio``.
"""

from __future__ import annotations

import kaldiio
import numpy as np
from kaldiio import compression_header

__all__ = ["kaldiio"]

_ONE_OVER_65535 = np.float32(1.52590218966964e-05)  # Kaldi's float constant for 1/65535
_ONE_OVER_255 = np.float32(1.0) / np.float32(255.0)


def _uint_to_float(self: compression_header.GlobalHeader, array: np.ndarray) -> np.ndarray:
    """min_value + range * (1/c) * value, in float, left to right (Kaldi's Uint16/8ToFloat)."""
    step = np.float32(self.range) * (_ONE_OVER_65535 if self.c == 65535.0 else _ONE_OVER_255)
    return np.float32(self.min_value) + step * np.asarray(array, dtype=np.float32)


def _char_to_float(self: compression_header.PerColHeader, array: np.ndarray) -> np.ndarray:
    """Kaldi's CharToFloat: a float product, scaled and offset in double, rounded to float."""
    value = np.asarray(array)
    p0, p25, p75, p100 = (
        np.asarray(p, dtype=np.float32) for p in (self.p0, self.p25, self.p75, self.p100)
    )
    v = value.astype(np.float32)

    def piece(base: np.ndarray, width: np.ndarray, offset: float, scale: float) -> np.ndarray:
        product = (width * (v - np.float32(offset))).astype(np.float64)
        return (base.astype(np.float64) + product * scale).astype(np.float32)

    low = piece(p0, p25 - p0, 0.0, 1 / 64.0)
    mid = piece(p25, p75 - p25, 64.0, 1 / 128.0)
    high = piece(p75, p100 - p75, 192.0, 1 / 63.0)
    return np.where(value <= 64, low, np.where(value <= 192, mid, high))


compression_header.GlobalHeader.uint_to_float = _uint_to_float
compression_header.PerColHeader.char_to_float = _char_to_float
