"""Kaldi lattices as frame-synchronous, topologically levelled state graphs (numpy arrays).

A :class:`LatticeGraph` is what the sequence objectives (:mod:`pykd.seq.objectives`) run on.
Every arc either emits one frame (it carries a transition-id, ``tid > 0``) or is an epsilon arc
(``tid == 0``) that stays within its frame. Building one from a lattice:

* ``Lattice`` (state level): arc ``(dst, tid, word, graph, ac)`` becomes one graph arc;
  ``tid == 0`` is epsilon.
* ``CompactLattice`` (word level): an arc with ``k`` transition-ids becomes a chain of ``k``
  frame arcs through new states, the arc's graph cost on the first; an arc without
  transition-ids (word only) becomes one epsilon arc. A final weight with a transition-id
  string expands the same way into a chain ending in a new final state.
* Acoustic costs are dropped (the objectives recompute them from the network), unless
  ``old_acoustic_scale`` is non-zero: then ``old_acoustic_scale * ac`` is added to the graph
  cost (Kaldi nnet1's ``--old-acoustic-scale``, whose default 0 also discards them).
* States that are not on a complete path (unreachable, or with no way to a final state) are
  removed, as their arcs have zero posterior.

States are renumbered in *levels*: level ``d`` holds the states whose longest path from the
start has ``d`` arcs (level 0 is the start state alone). Every arc goes from a lower level to a
higher one, so a forward recursion can compute all states of level ``d`` at once from arcs
that end there (``fwd_offsets``) and a backward recursion all states of level ``d`` from arcs
that leave them (``bwd_perm`` / ``bwd_offsets``): the Python loop runs over levels (about
``T`` of them, more with epsilon arcs), never over arcs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pykd.kaldi.lattice_io import CompactLattice, Lattice, read_lattices


class LatticeGraphError(ValueError):
    """A lattice cannot be used for sequence training (the message names the utterance)."""


@dataclass
class LatticeGraph:
    """Frame-synchronous state graph of one lattice; arcs sorted by (level of ``dst``, ``dst``).

    ``frame`` is the frame an emitting arc consumes (for an epsilon arc: the frame index of its
    states, ``T`` after the last frame); ``graph_cost`` is the arc's (Kaldi) graph cost, to be
    scaled by ``lm_scale``; ``pdf`` / ``phone`` are -1 on epsilon arcs (``phone`` is all -1 when
    no phone map was given).
    ``final_states`` / ``final_cost`` are the final states and their graph costs.
    """

    utt: str
    num_frames: int
    num_states: int
    src: np.ndarray
    dst: np.ndarray
    frame: np.ndarray
    tid: np.ndarray
    pdf: np.ndarray
    phone: np.ndarray
    graph_cost: np.ndarray
    start: int
    final_states: np.ndarray
    final_cost: np.ndarray
    state_offsets: np.ndarray  # level d = states state_offsets[d] : state_offsets[d + 1]
    fwd_offsets: np.ndarray  # level d = arcs fwd_offsets[d] : fwd_offsets[d + 1] (dst in level d)
    bwd_perm: np.ndarray  # arc indices sorted by (level of src, src)
    bwd_offsets: np.ndarray  # level d = arcs bwd_perm[bwd_offsets[d] : bwd_offsets[d + 1]]
    tid_to_pdf: np.ndarray = field(repr=False)
    tid_to_phone: np.ndarray | None = field(default=None, repr=False)
    _torch_cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_arcs(self) -> int:
        return int(self.src.shape[0])

    @property
    def num_levels(self) -> int:
        return int(self.state_offsets.shape[0] - 1)

    @property
    def emitting(self) -> np.ndarray:
        """Boolean mask of the arcs that carry a transition-id (consume a frame)."""
        return self.tid > 0


def _expand(lat: Lattice | CompactLattice, old_acoustic_scale: float) -> tuple:
    """Arc lists ``(src, dst, tid, cost)`` and ``{final_state: cost}`` of the state graph."""
    src: list[int] = []
    dst: list[int] = []
    tid: list[int] = []
    cost: list[float] = []
    finals: dict[int, float] = {}
    n = lat.num_states
    if isinstance(lat, Lattice):
        for s, arcs in enumerate(lat.arcs):
            for d, t, _w, g, a in arcs:
                src.append(s)
                dst.append(d)
                tid.append(t)
                cost.append(g + old_acoustic_scale * a if old_acoustic_scale else g)
        for s, (g, a) in lat.finals.items():
            finals[s] = g + old_acoustic_scale * a if old_acoustic_scale else g
        return src, dst, tid, cost, finals, n

    def chain(s: int, d: int | None, tids: Sequence[int], c: float) -> int:
        """Arcs s -> ... -> d for ``tids`` (a new end state when ``d`` is None); returns it."""
        nonlocal n
        if not tids:
            if d is None:
                return s
            src.append(s)
            dst.append(d)
            tid.append(0)
            cost.append(c)
            return d
        prev = s
        for i, t in enumerate(tids):
            if i == len(tids) - 1 and d is not None:
                nxt = d
            else:
                nxt = n
                n += 1
            src.append(prev)
            dst.append(nxt)
            tid.append(t)
            cost.append(c if i == 0 else 0.0)
            prev = nxt
        return prev

    for s, arcs in enumerate(lat.arcs):
        for d, _w, g, a, tids in arcs:
            chain(s, d, tids, g + old_acoustic_scale * a if old_acoustic_scale else g)
    for s, (g, a, tids) in lat.finals.items():
        c = g + old_acoustic_scale * a if old_acoustic_scale else g
        end = chain(s, None, tids, c)  # the cost goes on the chain's first arc, if any
        finals[end] = 0.0 if tids else c
    return src, dst, tid, cost, finals, n


def _reach(n: int, heads: list[int], nexts: list[list[int]]) -> np.ndarray:
    seen = np.zeros(n, dtype=bool)
    seen[heads] = True
    todo = deque(heads)
    while todo:
        s = todo.popleft()
        for d in nexts[s]:
            if not seen[d]:
                seen[d] = True
                todo.append(d)
    return seen


def lattice_to_graph(
    lat: Lattice | CompactLattice,
    tid_to_pdf: np.ndarray,
    tid_to_phone: np.ndarray | None = None,
    *,
    utt: str = "<unknown>",
    num_frames: int | None = None,
    old_acoustic_scale: float = 0.0,
) -> LatticeGraph:
    """Build the :class:`LatticeGraph` of one lattice.

    ``tid_to_pdf`` / ``tid_to_phone``: arrays indexed by transition-id (as
    :func:`pykd.kaldi.model_io.tid_to_pdf` / ``tid_to_phone`` return). ``num_frames``, when
    given, must equal the lattice's number of frames. Raises :class:`LatticeGraphError` (naming
    ``utt``) for an empty or cyclic lattice, paths of different lengths, a frame-count mismatch
    or transition-ids the model does not have.
    """
    tid_to_pdf = np.asarray(tid_to_pdf)
    where = f"utterance {utt}"
    if lat.num_states == 0 or not lat.finals:
        raise LatticeGraphError(f"{where}: empty lattice (no states or no final state)")
    src_l, dst_l, tid_l, cost_l, finals_d, n = _expand(lat, old_acoustic_scale)
    src = np.asarray(src_l, dtype=np.int64)
    dst = np.asarray(dst_l, dtype=np.int64)
    tid = np.asarray(tid_l, dtype=np.int64)
    cost = np.asarray(cost_l, dtype=np.float64)
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
        raise LatticeGraphError(f"{where}: arc to a state that does not exist")
    if not 0 <= lat.start < n:
        raise LatticeGraphError(f"{where}: empty lattice (no start state)")
    bad_tid = (tid < 0) | (tid >= tid_to_pdf.shape[0])
    emit = tid > 0
    bad_tid[emit & ~bad_tid] = tid_to_pdf[tid[emit & ~bad_tid]] < 0
    if bad_tid.any():
        raise LatticeGraphError(
            f"{where}: transition-id {int(tid[bad_tid][0])} is not in the model "
            f"(1 .. {tid_to_pdf.shape[0] - 1}): lattice/model mismatch?"
        )

    # Trim to the states on complete paths (reachable from the start, reaching a final state).
    outs: list[list[int]] = [[] for _ in range(n)]
    ins: list[list[int]] = [[] for _ in range(n)]
    for s, d in zip(src_l, dst_l, strict=True):
        outs[s].append(d)
        ins[d].append(s)
    fin_states = [s for s, c in finals_d.items() if np.isfinite(c)]
    live = _reach(n, [lat.start], outs) & _reach(n, fin_states, ins)
    if not live[lat.start]:
        raise LatticeGraphError(f"{where}: empty lattice (no path from the start to a final state)")
    keep = live[src] & live[dst]
    src, dst, tid, cost, emit = src[keep], dst[keep], tid[keep], cost[keep], emit[keep]

    # Layered topological sort (Kahn): level = longest path from the start, in arcs. The frame
    # of a state is the number of emitting arcs before it; every path must agree on it.
    order = np.argsort(src, kind="stable")
    indptr = np.concatenate(([0], np.cumsum(np.bincount(src, minlength=n))))
    indeg = np.bincount(dst, minlength=n)
    if indeg[lat.start]:
        raise LatticeGraphError(f"{where}: lattice is cyclic (an arc enters the start state)")
    level = np.full(n, -1, dtype=np.int64)
    times = np.full(n, -1, dtype=np.int64)
    t_lo = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    t_hi = np.full(n, -1, dtype=np.int64)
    times[lat.start] = 0
    frontier = np.array([lat.start], dtype=np.int64)
    depth = 0
    while frontier.size:
        level[frontier] = depth
        lens = indptr[frontier + 1] - indptr[frontier]
        total = int(lens.sum())
        if not total:
            break
        first = np.repeat(indptr[frontier] - (np.cumsum(lens) - lens), lens)
        arcs = order[first + np.arange(total)]
        tgt = dst[arcs]
        t_new = times[src[arcs]] + emit[arcs]
        np.minimum.at(t_lo, tgt, t_new)
        np.maximum.at(t_hi, tgt, t_new)
        bad = t_lo[tgt] != t_hi[tgt]
        if bad.any():
            s_bad = tgt[bad][0]
            raise LatticeGraphError(
                f"{where}: lattice paths do not all have the same number of frames "
                f"(a state is reached after {t_lo[s_bad]} and after {t_hi[s_bad]} frames)"
            )
        times[tgt] = t_new
        np.subtract.at(indeg, tgt, 1)
        uniq = np.unique(tgt)
        frontier = uniq[indeg[uniq] == 0]
        depth += 1
    if np.any(level[live] < 0):
        raise LatticeGraphError(f"{where}: lattice is cyclic")

    fin = np.array(sorted(s for s in fin_states if live[s]), dtype=np.int64)
    fin_times = times[fin]
    if np.any(fin_times != fin_times[0]):
        raise LatticeGraphError(
            f"{where}: lattice paths do not all have the same number of frames "
            f"({int(fin_times.min())} .. {int(fin_times.max())})"
        )
    T = int(fin_times[0])
    if num_frames is not None and T != num_frames:
        raise LatticeGraphError(
            f"{where}: lattice has {T} frames, expected {num_frames} (features/loglikes)"
        )
    if T == 0:
        raise LatticeGraphError(f"{where}: empty lattice (no frames)")

    # Renumber the live states by (level, old id): levels become contiguous ranges.
    live_ids = np.flatnonzero(live)
    new_order = live_ids[np.lexsort((live_ids, level[live_ids]))]
    new_id = np.full(n, -1, dtype=np.int64)
    new_id[new_order] = np.arange(new_order.size)
    num_levels = int(level[live_ids].max()) + 1
    state_offsets = np.searchsorted(level[new_order], np.arange(num_levels + 1)).astype(np.int64)
    frame = times[src]
    src, dst = new_id[src], new_id[dst]
    lvl_new = level[new_order]
    perm = np.lexsort((dst, lvl_new[dst]))
    src, dst, tid, cost, frame = src[perm], dst[perm], tid[perm], cost[perm], frame[perm]
    fwd_offsets = np.searchsorted(lvl_new[dst], np.arange(num_levels + 1)).astype(np.int64)
    bwd_perm = np.lexsort((src, lvl_new[src])).astype(np.int64)
    bwd_offsets = np.searchsorted(lvl_new[src][bwd_perm], np.arange(num_levels + 1)).astype(
        np.int64
    )
    emit = tid > 0
    pdf = np.where(emit, tid_to_pdf[tid], -1).astype(np.int64)
    if tid_to_phone is not None:
        tid_to_phone = np.asarray(tid_to_phone)
        phone = np.where(emit, tid_to_phone[tid], -1).astype(np.int64)
    else:
        phone = np.full(tid.shape, -1, dtype=np.int64)
    fin_new = new_id[fin]
    fin_sort = np.argsort(fin_new)
    return LatticeGraph(
        utt=utt,
        num_frames=T,
        num_states=int(new_order.size),
        src=src,
        dst=dst,
        frame=frame.astype(np.int64),
        tid=tid,
        pdf=pdf,
        phone=phone,
        graph_cost=cost,
        start=int(new_id[lat.start]),
        final_states=fin_new[fin_sort],
        final_cost=np.array([finals_d[s] for s in fin], dtype=np.float64)[fin_sort],
        state_offsets=state_offsets,
        fwd_offsets=fwd_offsets,
        bwd_perm=bwd_perm,
        bwd_offsets=bwd_offsets,
        tid_to_pdf=tid_to_pdf,
        tid_to_phone=tid_to_phone,
    )


def read_lattice_graphs(
    spec: str,
    tid_to_pdf: np.ndarray,
    tid_to_phone: np.ndarray | None = None,
    num_frames: dict[str, int] | None = None,
    old_acoustic_scale: float = 0.0,
) -> Iterator[tuple[str, LatticeGraph]]:
    """Yield ``(utt, graph)`` for every lattice of a Kaldi lattice ark (``lat.N.gz`` etc.).

    ``num_frames`` (utt -> frames), when given, is checked for every utterance it names.
    """
    for utt, lat in read_lattices(spec):
        yield (
            utt,
            lattice_to_graph(
                lat,
                tid_to_pdf,
                tid_to_phone,
                utt=utt,
                num_frames=None if num_frames is None else num_frames.get(utt),
                old_acoustic_scale=old_acoustic_scale,
            ),
        )
