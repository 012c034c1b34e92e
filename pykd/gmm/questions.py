"""Phonetic questions for tree building (Kaldi's ``cluster-phones`` + ``compile-questions``).

Automatic questions: the statistics of each phone set (lang ``phones/sets.int``; one set = the
word-position variants of a base phone) are pooled, and the sets are clustered top-down by binary
2-means splits under the single-Gaussian likelihood; every node of the resulting binary tree is a
question (a set of phones). The lang's ``extra_questions.int`` are appended. Questions about the
pdf-class key are ``{0}, {0,1}, ..., {0..M-2}`` for M = the largest number of pdf-classes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from pykd.gmm.tree_stats import KEY_PDF_CLASS, TreeStats
from pykd.io.atomic import atomic_write_text

log = logging.getLogger(__name__)

Question = tuple[int, ...]


def read_int_sets(path: str | Path) -> list[list[int]]:
    """Read a file of integer lines (sets.int, extra_questions.int, questions.int)."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append([int(x) for x in line.split()])
        except ValueError as err:
            raise ValueError(f"{path}:{n}: expected integers: {line!r}") from err
    return out


def write_int_sets(path: str | Path, sets: Iterable[Sequence[int]]) -> None:
    atomic_write_text(path, "".join(" ".join(map(str, s)) + "\n" for s in sets))


def gauss_objf(stacked: np.ndarray, var_floor: float = 0.01) -> np.ndarray:
    """Log-likelihood of data under its own ML diagonal Gaussian, per row of ``[n, x, x2]``.

    Same objective as Kaldi's GaussClusterable (variance floored); 0 for empty rows.
    """
    stacked = np.atleast_2d(stacked)
    dim = (stacked.shape[1] - 1) // 2
    n = stacked[:, 0]
    safe = np.where(n > 0, n, 1.0)
    mean = stacked[:, 1 : 1 + dim] / safe[:, None]
    var = np.maximum(stacked[:, 1 + dim :] / safe[:, None] - mean * mean, var_floor)
    logdet = np.log(var).sum(axis=1)
    return np.where(n > 0, -0.5 * n * (logdet + dim * (1.0 + np.log(2 * np.pi))), 0.0)


def _two_means(stats: np.ndarray, var_floor: float, iters: int = 10) -> np.ndarray:
    """Split rows into two groups maximising the summed Gaussian objective; returns a bool mask."""
    k = len(stats)
    if k == 2:
        return np.array([True, False])
    # initialise with the pair whose merge costs most
    objf = gauss_objf(stats, var_floor)
    pair = stats[:, None, :] + stats[None, :, :]
    cost = (
        objf[:, None] + objf[None, :] - gauss_objf(pair.reshape(k * k, -1), var_floor).reshape(k, k)
    )
    i, j = np.unravel_index(np.argmax(cost), cost.shape)
    centres = np.stack([stats[i], stats[j]])
    mask = None
    for _ in range(iters):
        # gain of adding each row to each centre (objf of union minus objf of centre)
        add = np.stack(
            [
                gauss_objf(stats + centres[c], var_floor) - gauss_objf(centres[c], var_floor)
                for c in (0, 1)
            ],
            axis=1,
        )
        new = add[:, 0] >= add[:, 1]
        if new.all() or not new.any():  # degenerate: keep the two seeds apart
            new = np.zeros(k, dtype=bool)
            new[i] = True
        if mask is not None and np.array_equal(new, mask):
            break
        mask = new
        centres = np.stack([stats[mask].sum(axis=0), stats[~mask].sum(axis=0)])
    return mask


def cluster_phones(
    stats: TreeStats,
    phone_sets: Sequence[Sequence[int]],
    pdf_classes: Sequence[int] = (1,),
    var_floor: float = 0.01,
) -> list[list[int]]:
    """Automatic phone questions by top-down clustering of the phone sets' pooled statistics.

    Only frames whose pdf-class is in ``pdf_classes`` (Kaldi's ``--pdf-class-list``, default the
    middle state 1) count. Sets without statistics are returned as questions of their own.
    """
    centre = stats.column(stats.central_position)
    pc = np.isin(stats.events[:, 0], np.asarray(pdf_classes))
    stacked = stats.stacked()
    set_stats, seen_sets, unseen = [], [], []
    for s in phone_sets:
        rows = pc & np.isin(stats.events[:, centre], np.asarray(s))
        if stats.counts[rows].sum() > 0:
            set_stats.append(stacked[rows].sum(axis=0))
            seen_sets.append(sorted(s))
        else:
            unseen.append(sorted(s))
    if unseen:
        log.warning("cluster-phones: %d phone sets have no statistics: %s", len(unseen), unseen)
    questions: list[list[int]] = []

    def recurse(idx: np.ndarray) -> None:
        questions.append(sorted(p for i in idx for p in seen_sets[i]))
        if len(idx) < 2:
            return
        mask = _two_means(np.stack([set_stats[i] for i in idx]), var_floor)
        recurse(idx[mask])
        recurse(idx[~mask])

    if seen_sets:
        recurse(np.arange(len(seen_sets)))
    questions.extend(unseen)
    return questions


def compile_questions(
    phone_questions: Iterable[Sequence[int]],
    context_width: int,
    max_num_pdf_classes: int,
) -> dict[int, list[Question]]:
    """Questions per event key: the phone questions for every context position, pdf-class ones.

    Duplicates are removed (first occurrence kept).
    """
    uniq: list[Question] = []
    seen: set[Question] = set()
    for q in phone_questions:
        t = tuple(sorted(set(int(p) for p in q)))
        if t and t not in seen:
            seen.add(t)
            uniq.append(t)
    out: dict[int, list[Question]] = {k: list(uniq) for k in range(context_width)}
    out[KEY_PDF_CLASS] = [tuple(range(i)) for i in range(1, max_num_pdf_classes)]
    return out
