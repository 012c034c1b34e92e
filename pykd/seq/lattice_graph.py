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

from collections.abc import Iterator
from dataclasses import dataclass, field

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


def _chains(
    n: int,
    src: np.ndarray,
    dst: np.ndarray,
    cost: np.ndarray,
    lengths: np.ndarray,
    tids: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Expand word-level arcs into frame arcs (vectorised; no loop over arcs).

    Arc i goes ``src[i] -> dst[i]`` (``dst < 0``: to a new end state) with ``lengths[i]``
    transition-ids, ``tids[sum(lengths[:i]) : ...]``. It becomes a chain of ``lengths[i]`` arcs
    through new states (cost on the first), or one epsilon arc when it has none. Returns the
    frame arcs ``(src, dst, tid, cost)``, the end state of every arc and the new state count.
    """
    k = lengths
    m = np.maximum(k, 1)  # frame arcs per arc
    new_states = np.where(k > 0, k - (dst >= 0), 0)
    base = n + np.cumsum(new_states) - new_states  # first new state of each arc's chain
    arc = np.repeat(np.arange(k.shape[0]), m)
    j = np.arange(arc.shape[0]) - np.repeat(np.cumsum(m) - m, m)  # position in the chain
    first, last = j == 0, j == m[arc] - 1
    out_src = np.where(first, src[arc], base[arc] + j - 1)
    out_dst = np.where(last & (dst[arc] >= 0), dst[arc], base[arc] + j)
    has_tid = k[arc] > 0
    tid_pos = np.cumsum(k) - k
    out_tid = np.zeros(arc.shape[0], dtype=np.int64)
    out_tid[has_tid] = tids[(tid_pos[arc] + j)[has_tid]]
    out_cost = np.where(first, cost[arc], 0.0)
    ends = out_dst[np.cumsum(m) - 1]
    return out_src, out_dst, out_tid, out_cost, ends, n + int(new_states.sum())


def _expand(lat: Lattice | CompactLattice, old_acoustic_scale: float) -> tuple:
    """Arrays ``(src, dst, tid, cost)`` of the state graph, its final states and their costs,
    and the number of states."""
    n = lat.num_states
    if isinstance(lat, Lattice):
        rows = [(s, d, t, g, a) for s, arcs in enumerate(lat.arcs) for d, t, _w, g, a in arcs]
        arr = np.array(rows, dtype=np.float64).reshape(-1, 5)
        fin = np.array([(s, g, a) for s, (g, a) in lat.finals.items()], dtype=np.float64)
        fin = fin.reshape(-1, 3)
        return (
            arr[:, 0].astype(np.int64),
            arr[:, 1].astype(np.int64),
            arr[:, 2].astype(np.int64),
            arr[:, 3] + old_acoustic_scale * arr[:, 4],
            fin[:, 0].astype(np.int64),
            fin[:, 1] + old_acoustic_scale * fin[:, 2],
            n,
        )
    heads = [(s, d, g, a, len(t)) for s, arcs in enumerate(lat.arcs) for d, _w, g, a, t in arcs] + [
        (s, -1, g, a, len(t)) for s, (g, a, t) in lat.finals.items()
    ]
    tids = [x for arcs in lat.arcs for arc in arcs for x in arc[4]]
    tids += [x for _g, _a, t in lat.finals.values() for x in t]
    arr = np.array(heads, dtype=np.float64).reshape(-1, 5)
    lengths = arr[:, 4].astype(np.int64)
    # a final weight with transition-ids becomes a chain to a new final state (cost 0 there);
    # one without stays a final cost
    chain = (arr[:, 1] >= 0) | (lengths > 0)
    c = arr[:, 2] + old_acoustic_scale * arr[:, 3]
    src, dst, tid, cost, ends, n = _chains(
        n,
        arr[chain, 0].astype(np.int64),
        arr[chain, 1].astype(np.int64),
        c[chain],
        lengths[chain],
        np.asarray(tids, dtype=np.int64),
    )
    is_fin = arr[chain, 1] < 0
    fin_states = np.concatenate((ends[is_fin], arr[~chain, 0].astype(np.int64)))
    fin_cost = np.concatenate((np.zeros(int(is_fin.sum())), c[~chain]))
    return src, dst, tid, cost, fin_states, fin_cost, n


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
    from pykd.decode.latdet import GraphLevelsError, graph_levels  # noqa: PLC0415

    tid_to_pdf = np.asarray(tid_to_pdf)
    where = f"utterance {utt}"
    if lat.num_states == 0 or not lat.finals:
        raise LatticeGraphError(f"{where}: empty lattice (no states or no final state)")
    src, dst, tid, cost, fin_states, fin_cost, n = _expand(lat, old_acoustic_scale)
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
    finite = np.isfinite(fin_cost)
    fin_states, fin_cost = fin_states[finite], fin_cost[finite]
    is_final = np.zeros(n, dtype=np.int8)
    is_final[fin_states] = 1
    # Trim to the states on complete paths; level = longest path from the start, in arcs; the
    # frame of a state = the number of emitting arcs before it (every path must agree on it).
    try:
        level, times = graph_levels(n, src, dst, emit, lat.start, is_final)
    except GraphLevelsError as err:
        raise LatticeGraphError(f"{where}: {err}") from err
    live = level >= 0
    keep = live[src] & live[dst]
    src, dst, tid, cost, emit = src[keep], dst[keep], tid[keep], cost[keep], emit[keep]

    fin_live = live[fin_states]
    fin_states, fin_cost = fin_states[fin_live], fin_cost[fin_live]
    fin_times = times[fin_states]
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
    perm = np.argsort(dst, kind="stable")
    src, dst, tid, cost, frame = src[perm], dst[perm], tid[perm], cost[perm], frame[perm]
    fwd_offsets = np.searchsorted(dst, state_offsets).astype(np.int64)
    bwd_perm = np.argsort(src, kind="stable").astype(np.int64)
    bwd_offsets = np.searchsorted(src[bwd_perm], state_offsets).astype(np.int64)
    emit = tid > 0
    pdf = np.where(emit, tid_to_pdf[tid], -1).astype(np.int64)
    if tid_to_phone is not None:
        tid_to_phone = np.asarray(tid_to_phone)
        phone = np.where(emit, tid_to_phone[tid], -1).astype(np.int64)
    else:
        phone = np.full(tid.shape, -1, dtype=np.int64)
    fin_new = new_id[fin_states]
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
        final_cost=fin_cost[fin_sort],
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
