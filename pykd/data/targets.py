"""Alignments (transition-ids) -> pdf-id frame targets, and feature/target length checks."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np

from pykd.kaldi.model_io import read_alignments, read_transition_model, tid_to_pdf


def pdf_map(model: str | os.PathLike) -> np.ndarray:
    """transition-id -> pdf-id array of a Kaldi ``final.mdl`` (index 0 is -1)."""
    return tid_to_pdf(read_transition_model(model))


def num_pdfs(model: str | os.PathLike) -> int:
    """Number of pdfs of a Kaldi model (the network output dimension)."""
    return int(read_transition_model(model).num_pdfs)


def ali_to_pdf(ali: np.ndarray, tid2pdf: np.ndarray) -> np.ndarray:
    """Kaldi ``ali-to-pdf`` for one utterance: transition-ids -> pdf-ids (int32)."""
    ali = np.asarray(ali, dtype=np.int64)
    if ali.size and (ali.min() < 1 or ali.max() >= len(tid2pdf)):
        raise ValueError(
            f"transition-id out of range [1, {len(tid2pdf) - 1}]: min {ali.min()} max {ali.max()}"
        )
    return tid2pdf[ali].astype(np.int32)


def load_pdf_alignments(
    ali_paths: Iterable[str | os.PathLike], model: str | os.PathLike, compact: bool = False
) -> dict[str, np.ndarray]:
    """Read ``ali.N.gz`` files (or rspecifiers) and map them to pdf-ids with ``model``.

    ``compact``: int16 pdf-ids when the model has < 32768 pdfs (2 bytes per frame held for
    training: 58 MB for AMI's 29M frames), else int32 as Kaldi's.
    """
    tid2pdf = pdf_map(model)
    dtype = np.int16 if compact and len(tid2pdf) and tid2pdf.max() < 2**15 else np.int32
    res: dict[str, np.ndarray] = {}
    for path in ali_paths:
        for utt, ali in read_alignments(path).items():
            if utt in res:
                raise ValueError(f"{path}: utterance {utt} appears in more than one alignment file")
            res[utt] = ali_to_pdf(ali, tid2pdf).astype(dtype, copy=False)
    return res


def match_lengths(
    feats: np.ndarray, targets: np.ndarray, tolerance: int = 2
) -> tuple[np.ndarray, np.ndarray] | None:
    """Trim ``feats`` and ``targets`` to the shorter length if they differ by <= ``tolerance``.

    Returns None when the difference is larger (the caller skips and counts the utterance).
    """
    diff = abs(len(feats) - len(targets))
    if diff > tolerance:
        return None
    n = min(len(feats), len(targets))
    return feats[:n], targets[:n]


def check_targets(pdf_alis: Mapping[str, np.ndarray], n_pdfs: int) -> None:
    """Raise if any pdf-id is outside ``[0, n_pdfs)`` (e.g. alignments of another model)."""
    for utt, pdfs in pdf_alis.items():
        if pdfs.size and (pdfs.min() < 0 or pdfs.max() >= n_pdfs):
            raise ValueError(f"utterance {utt}: pdf-id outside [0, {n_pdfs})")
