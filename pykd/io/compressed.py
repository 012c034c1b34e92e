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

import os
from struct import error as struct_error

import kaldiio
import kaldiio.matio
import kaldiio.utils
import numpy as np
from kaldiio import compression_header

__all__ = ["ArchiveReadError", "kaldiio"]

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


# --------------------------------------------------------------------------- named read errors
# kaldiio raises bare parser errors (a UnicodeDecodeError, "Invalid line", an empty read) for a
# truncated or overwritten archive; these wrappers name the script, utterance and location.


class ArchiveReadError(ValueError):
    """A matrix of an archive could not be read (truncated or corrupt archive, bad scp line)."""


_READ_ERRORS = (ValueError, OSError, EOFError, struct_error)  # (UnicodeDecodeError: a ValueError)
_load_mat = kaldiio.matio.load_mat
_load_scp_sequential = kaldiio.matio.load_scp_sequential
_lazy_getitem = kaldiio.utils.LazyLoader.__getitem__


def _named_load_mat(ark_name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    try:
        return _load_mat(ark_name, *args, **kwargs)
    except ArchiveReadError:
        raise
    except _READ_ERRORS as err:
        raise ArchiveReadError(
            f"cannot read {ark_name} (truncated or corrupt archive?): {err}"
        ) from err


def _named_load_scp_sequential(fname, endian="<", separator=None, segments=None):  # noqa: ANN001, ANN202
    """kaldiio's sequential scp reader, naming the scp, utterance and location of a bad entry."""
    if (
        segments is not None
        or not isinstance(fname, str | os.PathLike)
        or not os.path.isfile(fname)
    ):
        yield from _load_scp_sequential(fname, endian, separator, segments)
        return
    open_files: dict = {}
    try:
        with open(fname, encoding="utf-8") as scp:
            for lineno, line in enumerate(scp, 1):
                if not line.strip():
                    continue
                fields = line.rstrip("\n").split(separator, 1)
                if len(fields) != 2:
                    raise ArchiveReadError(
                        f"{fname} line {lineno}: expected '<key> <location>', got {line.strip()!r}"
                    )
                key, loc = fields[0], fields[1].strip()
                try:
                    mat = _load_mat(loc, endian, fd_dict=open_files)
                except _READ_ERRORS as err:
                    raise ArchiveReadError(
                        f"{fname}: utterance '{key}': cannot read {loc} "
                        f"(truncated or corrupt archive?): {err}"
                    ) from err
                yield key, mat
    finally:
        for fd in open_files.values():
            fd.close()


def _named_lazy_getitem(self, key):  # noqa: ANN001, ANN202
    try:
        return _lazy_getitem(self, key)
    except ArchiveReadError as err:
        raise ArchiveReadError(f"utterance '{key}': {err}") from err


kaldiio.matio.load_mat = _named_load_mat
kaldiio.load_mat = _named_load_mat
kaldiio.matio.load_scp_sequential = _named_load_scp_sequential
kaldiio.load_scp_sequential = _named_load_scp_sequential
kaldiio.utils.LazyLoader.__getitem__ = _named_lazy_getitem
