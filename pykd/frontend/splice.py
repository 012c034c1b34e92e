"""Frame splicing (context windows) with Kaldi's edge handling.

``splice-feats --left-context=L --right-context=R`` maps frame ``t`` of a ``(T, D)`` matrix to
the concatenation of frames ``t-L .. t+R``; indices outside ``[0, T)`` are clamped, i.e. the
first / last frame is repeated.
"""

from __future__ import annotations

import numpy as np


def context_offsets(left: int, right: int) -> np.ndarray:
    """Frame offsets ``-left .. right`` of one spliced row."""
    if left < 0 or right < 0:
        raise ValueError(f"context must be >= 0, got left={left} right={right}")
    return np.arange(-left, right + 1, dtype=np.int64)


def pad_edges(feats: np.ndarray, left: int, right: int) -> np.ndarray:
    """``feats`` with its first frame repeated ``left`` times before and last ``right`` after."""
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ValueError(f"expected a non-empty (T, D) matrix, got shape {feats.shape}")
    return np.pad(feats, ((left, right), (0, 0)), mode="edge")


def splice_padded(padded: np.ndarray, centers: np.ndarray, left: int, right: int) -> np.ndarray:
    """Spliced rows for ``centers`` (row indices into ``padded``, which holds edge padding).

    Row ``i`` of the result is ``padded[centers[i] - left .. centers[i] + right]`` flattened.
    """
    idx = np.asarray(centers, dtype=np.int64)[:, None] + context_offsets(left, right)[None, :]
    return padded[idx].reshape(len(idx), -1)


def splice(feats: np.ndarray, left: int = 5, right: int = 5) -> np.ndarray:
    """Kaldi ``splice-feats``: ``(T, D)`` -> ``(T, D * (left + 1 + right))``."""
    feats = np.asarray(feats)
    padded = pad_edges(feats, left, right)
    return splice_padded(padded, np.arange(feats.shape[0]) + left, left, right)
