"""Phonetic-context statistics for decision-tree building (Kaldi's ``acc-tree-stats``).

For every frame of an alignment, the *event* is the phone context window (context width N, central
position P; phone 0 outside the utterance) plus the frame's pdf-class. Per distinct event we keep
the single-Gaussian sufficient statistics: frame count, sum and sum of squares of the features.
The central phone's context is set to 0 when the central phone is context independent
(``--ci-phones``), as acc-tree-stats does, so silence statistics are not fragmented.

Our on-disk form is an ``.npz`` file (``treeacc.npz``), not Kaldi's binary tree-accs format.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pykd.io.atomic import atomic_path

log = logging.getLogger(__name__)

KEY_PDF_CLASS = -1  # Kaldi's kPdfClass event key


@dataclass
class TidInfo:
    """Per transition-id facts of a ``kaldi_hmm_gmm.TransitionModel`` (index 0 unused)."""

    phone: np.ndarray  # int32
    hmm_state: np.ndarray  # int32
    pdf: np.ndarray  # int32 (the transition-id's pdf: self-loop or forward pdf)
    pdf_class: np.ndarray  # int32 (self-loop or forward pdf-class from the topology)
    trans_index: np.ndarray  # int32, index of the transition within its HMM state
    is_final: np.ndarray  # bool, the transition leaves the phone (goes to the final state)
    is_self_loop: np.ndarray  # bool
    tstate: np.ndarray  # int32, transition-state

    @property
    def num_tids(self) -> int:
        return len(self.phone) - 1


def tid_info(trans_model, topo) -> TidInfo:
    """Tabulate phone, HMM state, pdf, pdf-class, transition index of every transition-id."""
    n = trans_model.num_transition_ids
    state2id = list(trans_model.state2id)
    tuples = [t.__getstate__() for t in trans_model.tuples]  # (phone, hmm_state, fpdf, slpdf)
    out = {
        k: np.full(n + 1, -1, dtype=np.int32)
        for k in ("phone", "hmm_state", "pdf", "pdf_class", "trans_index")
    }
    is_final = np.zeros(n + 1, dtype=bool)
    is_loop = np.zeros(n + 1, dtype=bool)
    tstate = np.zeros(n + 1, dtype=np.int32)
    topo_cache: dict[int, list] = {}
    for ts0, (phone, hmm_state, fpdf, slpdf) in enumerate(tuples):
        ts = ts0 + 1
        if phone not in topo_cache:
            topo_cache[phone] = topo.topology_for_phone(phone)
        states = topo_cache[phone]
        st = states[hmm_state]
        final_state = len(states) - 1
        for j, (dest, _prob) in enumerate(st.transitions):
            tid = state2id[ts] + j
            loop = dest == hmm_state
            out["phone"][tid] = phone
            out["hmm_state"][tid] = hmm_state
            out["pdf"][tid] = slpdf if loop else fpdf
            out["pdf_class"][tid] = st.self_loop_pdf_class if loop else st.forward_pdf_class
            out["trans_index"][tid] = j
            is_final[tid] = dest == final_state
            is_loop[tid] = loop
            tstate[tid] = ts
    return TidInfo(is_final=is_final, is_self_loop=is_loop, tstate=tstate, **out)


def split_to_phones(ali: np.ndarray, info: TidInfo, utt: str = "?") -> list[tuple[int, int, int]]:
    """Split an alignment into phone instances ``(phone, start, end)`` (end exclusive).

    Works for reordered alignments (Kaldi's default: in each HMM state the forward transition
    comes first, then the state's self-loops, so a phone ends with its transition to the final
    state followed by self-loops of that state, the "tail") and for non-reordered ones (the
    final transition is the phone's last frame). A phone change always starts a new phone.
    """
    ali = np.asarray(ali, dtype=np.int64)
    num = len(ali)
    if num == 0:
        return []
    if ali.min() < 1 or ali.max() > info.num_tids:
        raise ValueError(f"utterance {utt}: transition-id out of range 1..{info.num_tids}")
    phones = info.phone[ali]
    final = info.is_final[ali]
    ts = info.tstate[ali]
    # c[t]: a self-loop on the transition-state of frame t-1
    c = np.zeros(num, dtype=bool)
    c[1:] = info.is_self_loop[ali[1:]] & (ts[1:] == ts[:-1])
    last_break = np.maximum.accumulate(np.where(~c, np.arange(num), 0))
    tail = c & final[last_break]
    done = final | tail  # the phone instance is complete after this frame...
    start = np.zeros(num, dtype=bool)
    start[0] = True
    start[1:] = (done[:-1] & ~tail[1:]) | (phones[1:] != phones[:-1])
    if not done[-1]:
        log.warning("utterance %s: alignment does not end at the end of a phone", utt)
    starts = np.flatnonzero(start)
    stops = np.r_[starts[1:], num]
    return [(int(phones[s]), int(s), int(e)) for s, e in zip(starts, stops, strict=True)]


@dataclass
class TreeStats:
    """Gaussian statistics per event; ``events[:, 0]`` is the pdf-class, then N context phones."""

    context_width: int
    central_position: int
    events: np.ndarray  # (n, 1 + N) int32
    counts: np.ndarray  # (n,) float64
    sums: np.ndarray  # (n, D) float64
    sumsq: np.ndarray  # (n, D) float64

    @property
    def dim(self) -> int:
        return self.sums.shape[1]

    def column(self, key: int) -> int:
        """Column of ``events`` holding event key ``key`` (-1 = pdf-class, 0..N-1 = position)."""
        if key == KEY_PDF_CLASS:
            return 0
        if not 0 <= key < self.context_width:
            raise ValueError(f"event key {key} outside context width {self.context_width}")
        return key + 1

    def stacked(self) -> np.ndarray:
        """``[count, sums, sumsq]`` per event as one (n, 1 + 2D) array."""
        return np.concatenate([self.counts[:, None], self.sums, self.sumsq], axis=1)

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                context=np.array([self.context_width, self.central_position]),
                events=self.events,
                counts=self.counts,
                sums=self.sums,
                sumsq=self.sumsq,
            )

    @classmethod
    def load(cls, path: str | Path) -> TreeStats:
        with np.load(path) as z:
            n, p = (int(v) for v in z["context"])
            return cls(n, p, z["events"], z["counts"], z["sums"], z["sumsq"])


def _reduce(events: np.ndarray, stacked: np.ndarray, n: int, p: int) -> TreeStats:
    """Sum rows of ``stacked`` with identical event rows."""
    dim = (stacked.shape[1] - 1) // 2
    if len(events) == 0:
        z = np.zeros((0, dim))
        return TreeStats(n, p, np.zeros((0, n + 1), np.int32), np.zeros(0), z, z.copy())
    uniq, inv = np.unique(events, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    order = np.argsort(inv, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(inv[order]) != 0])
    summed = np.add.reduceat(stacked[order], bounds, axis=0)
    return TreeStats(
        n, p, uniq.astype(np.int32), summed[:, 0], summed[:, 1 : 1 + dim], summed[:, 1 + dim :]
    )


def merge_tree_stats(parts: Iterable[TreeStats]) -> TreeStats:
    """Sum several TreeStats (e.g. one per job), like ``sum-tree-stats``."""
    parts = [p for p in parts]
    if not parts:
        raise ValueError("no tree statistics to merge")
    n, p = parts[0].context_width, parts[0].central_position
    if any((q.context_width, q.central_position) != (n, p) for q in parts):
        raise ValueError("tree statistics with different context width / central position")
    events = np.concatenate([q.events for q in parts])
    stacked = np.concatenate([q.stacked() for q in parts])
    return _reduce(events, stacked, n, p)


def utterance_events(
    ali: np.ndarray,
    info: TidInfo,
    context_width: int = 3,
    central_position: int = 1,
    ci_phones: Iterable[int] = (),
    utt: str = "?",
) -> np.ndarray:
    """Per-frame events (T, 1 + N): pdf-class then the phone context window."""
    segs = split_to_phones(ali, info, utt)
    seq = np.array([s[0] for s in segs], dtype=np.int32)
    nph = len(seq)
    padded = np.concatenate(
        [np.zeros(central_position, np.int32), seq, np.zeros(context_width, np.int32)]
    )
    # window[i, j] = phone at position j of the window centred on phone instance i
    window = np.stack([padded[j : j + nph] for j in range(context_width)], axis=1)
    ci = np.isin(seq, np.fromiter(ci_phones, dtype=np.int32))
    if ci.any():
        keep = window[ci, central_position].copy()
        window[ci] = 0
        window[ci, central_position] = keep
    lengths = np.array([e - s for _, s, e in segs])
    per_frame = np.repeat(window, lengths, axis=0)
    pdf_class = info.pdf_class[np.asarray(ali, dtype=np.int64)]
    return np.concatenate([pdf_class[:, None], per_frame], axis=1).astype(np.int32)


def accumulate_tree_stats(
    info: TidInfo,
    alignments: Mapping[str, np.ndarray],
    feats: Iterable[tuple[str, np.ndarray]],
    context_width: int = 3,
    central_position: int = 1,
    ci_phones: Iterable[int] = (),
) -> TreeStats:
    """Accumulate tree statistics over utterances (features must match alignment lengths).

    Utterances without an alignment, or with a length mismatch, are skipped with a warning.
    """
    ci = sorted(set(ci_phones))
    ev_parts: list[np.ndarray] = []
    st_parts: list[np.ndarray] = []
    done = missing = bad = 0
    for utt, mat in feats:
        ali = alignments.get(utt)
        if ali is None:
            missing += 1
            continue
        if len(ali) != len(mat):
            log.warning(
                "utterance %s: alignment has %d frames, features %d", utt, len(ali), len(mat)
            )
            bad += 1
            continue
        ev = utterance_events(ali, info, context_width, central_position, ci, utt)
        x = np.asarray(mat, dtype=np.float64)
        stacked = np.concatenate([np.ones((len(x), 1)), x, x * x], axis=1)
        part = _reduce(ev, stacked, context_width, central_position)
        ev_parts.append(part.events)
        st_parts.append(part.stacked())
        done += 1
    if missing or bad:
        log.warning(
            "tree stats: %d utterances without alignment, %d length mismatches", missing, bad
        )
    if not done:
        raise ValueError("tree stats: no utterance had both features and an alignment")
    log.info("tree stats: accumulated %d utterances", done)
    return _reduce(
        np.concatenate(ev_parts), np.concatenate(st_parts), context_width, central_position
    )
