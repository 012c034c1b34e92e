"""pdf counts (Kaldi ``ali-to-pdf | analyze-counts``) and log-priors for hybrid decoding.

Kaldi's ``analyze-counts`` adds 0.5 to every count before writing (checked against
``kaldi-ref/nnet/ali_train_pdf.counts``: the log prints 2966 frames for pdf 0, the file 2966.5,
and an unseen pdf gets 0.5), so an unseen pdf never has a zero prior. :func:`pdf_counts` does
the same by default (``add=0.5``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable

import numpy as np

from pykd.io.atomic import atomic_write

BINARY_HEADER = b"\0B"
ANALYZE_COUNTS_ADD = 0.5


def pdf_counts(
    pdf_alis: Iterable[np.ndarray], n_pdfs: int, add: float = ANALYZE_COUNTS_ADD
) -> np.ndarray:
    """Frame count per pdf over pdf-id sequences, plus ``add`` (Kaldi analyze-counts: 0.5)."""
    counts = np.zeros(n_pdfs, dtype=np.float64)
    for pdfs in pdf_alis:
        pdfs = np.asarray(pdfs, dtype=np.int64)
        if pdfs.size and (pdfs.min() < 0 or pdfs.max() >= n_pdfs):
            raise ValueError(f"pdf-id outside [0, {n_pdfs}) (counts-dim too small?)")
        counts += np.bincount(pdfs, minlength=n_pdfs)
    return counts + add


def log_priors(counts: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    """Log of the relative frequencies, each floored at ``floor`` and renormalised to sum 1.

    (Kaldi nnet1's PdfPrior instead sets priors below its floor to a huge value, removing those
    pdfs from the search; with analyze-counts' +0.5 no prior is zero, so flooring rarely acts.)
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"counts must be a non-empty vector, got shape {counts.shape}")
    if (counts < 0).any() or not np.isfinite(counts).all():
        raise ValueError("counts must be finite and non-negative")
    total = counts.sum()
    if total <= 0:
        raise ValueError("counts sum to zero")
    priors = np.maximum(counts / total, floor)
    priors /= priors.sum()
    return np.log(priors)


def format_counts_text(counts: np.ndarray) -> str:
    """Kaldi text ``Vector<double>``: `` [ c0 c1 ... ]`` + newline, numbers as C++ ``%g``."""
    return " [ " + "".join(f"{float(c):g} " for c in counts) + "]\n"


def counts_bytes(counts: np.ndarray, binary: bool = False) -> bytes:
    """Bytes of a counts file as ``analyze-counts --binary=...`` writes it."""
    counts = np.asarray(counts, dtype=np.float64)
    if not binary:
        return format_counts_text(counts).encode()
    return (
        BINARY_HEADER + b"DV " + struct.pack("<bi", 4, counts.size) + counts.astype("<f8").tobytes()
    )


def write_counts(path: str | os.PathLike, counts: np.ndarray, binary: bool = False) -> None:
    """Write a counts vector (text or binary Kaldi ``Vector<double>``) atomically."""
    with atomic_write(path, "wb") as handle:
        handle.write(counts_bytes(counts, binary))


def read_counts(path: str | os.PathLike) -> np.ndarray:
    """Read a Kaldi counts vector (text ``[ ... ]`` or binary ``DV``/``FV``) as float64."""
    data = open(path, "rb").read()
    if data.startswith(BINARY_HEADER):
        kind = data[2:5]
        size_marker, dim = struct.unpack("<bi", data[5:10])
        if kind not in (b"DV ", b"FV ") or size_marker != 4:
            raise ValueError(f"{path}: not a binary Kaldi vector")
        dtype = "<f8" if kind == b"DV " else "<f4"
        vec = np.frombuffer(data, dtype=dtype, count=dim, offset=10)
        return vec.astype(np.float64)
    text = data.decode().strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError(f"{path}: expected a text vector '[ ... ]'")
    return np.array(text[1:-1].split(), dtype=np.float64)


class PriorCountsError(ValueError):
    """Prior counts that do not fit the network (the message names the file)."""


def read_log_priors(path: str | os.PathLike, num_pdfs: int) -> np.ndarray:
    """:func:`log_priors` of the counts in ``path``, which must hold one count per pdf of a
    network with ``num_pdfs`` outputs."""
    counts = read_counts(path)
    if counts.size != num_pdfs:
        raise PriorCountsError(f"{path} has {counts.size} counts, the model {num_pdfs} pdfs")
    return log_priors(counts)
