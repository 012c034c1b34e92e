"""Decoding graph HCLG, built like Kaldi's ``utils/mkgraph.sh`` with kaldifst + kaldi_hmm_gmm.

The recipe (Kaldi's, step for step; the algorithms not wrapped by the libraries are written here):

1. ``LG = push_special(minimize_encoded(determinize_star_log(L_disambig o G)))``
2. ``CLG = arcsort_ilabel(compose_context(LG))`` (context width / central position from the tree;
   the ilabel info is written like ``fstcomposecontext`` writes it)
3. ``Ha = get_h_transducer(ilabels, tree, model, transition_scale)`` (non-self-loop transition
   probabilities on its arcs; disambiguation symbols become extra transition-ids)
4. ``HCLGa = minimize_encoded(remove_eps_local(rmsymbols(determinize_star_log(Ha o CLG))))``
5. ``HCLG = add_self_loops(HCLGa, self_loop_scale, reorder=True)``

Intermediate files are cached in ``<lang>/tmp`` (LG.fst, CLG_N_P.fst, ilabels_N_P) with Kaldi's
names and staleness rules, so graphs for several models of one lang share them. HCLG.fst is
written as an OpenFst binary VectorFst (Kaldi's decoders read VectorFst and ConstFst alike).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import kaldi_hmm_gmm
import kaldifst
import numpy as np

from pykd.io.atomic import atomic_path, atomic_write, atomic_write_text

log = logging.getLogger(__name__)

K_DELTA = 1.0 / 1024.0  # OpenFst kDelta: default delta of determinize/minimize/push-special
_INF = float("inf")
_F32 = np.float32


class GraphError(RuntimeError):
    """Bad or missing input to the graph build (names the file and the problem)."""


# --------------------------------------------------------------------------------------------
# FST <-> arrays, and FST file reading (VectorFst through kaldifst, ConstFst parsed here)
# --------------------------------------------------------------------------------------------


@dataclass
class FstArrays:
    """An FST as flat arrays: arcs of state ``s`` are ``[offsets[s], offsets[s+1])``."""

    start: int
    final: np.ndarray  # float32 [num_states], inf = not final
    offsets: np.ndarray  # int64 [num_states + 1]
    ilabel: np.ndarray  # int32 [num_arcs]
    olabel: np.ndarray
    weight: np.ndarray  # float32
    nextstate: np.ndarray  # int32

    @property
    def num_states(self) -> int:
        return len(self.final)

    @property
    def num_arcs(self) -> int:
        return len(self.ilabel)

    def src(self) -> np.ndarray:
        """Source state of each arc."""
        return np.repeat(np.arange(self.num_states, dtype=np.int32), np.diff(self.offsets))


_ARC_DT = np.dtype([("il", "<i4"), ("ol", "<i4"), ("w", "<f4"), ("ns", "<i4")])
_VECTOR_STATE_DT = np.dtype([("final", "<f4"), ("narcs", "<i8")])  # packed: 12 bytes
_FST_MAGIC = 2125659606


def fst_to_arrays(fst: kaldifst.StdFst) -> FstArrays:
    """Copy a kaldifst FST into :class:`FstArrays` (arc order kept).

    Goes through OpenFst's binary VectorFst format (written by kaldifst, parsed with numpy),
    which is ~20x faster than iterating arcs from Python; falls back to iteration otherwise.
    """
    with tempfile.TemporaryDirectory(prefix="pykd-fst-") as tmp:
        path = Path(tmp) / "f.fst"
        vec = fst if isinstance(fst, kaldifst.StdVectorFst) else kaldifst.StdVectorFst(fst)
        if vec.write(str(path)):
            arrays = _parse_vector_fst(path.read_bytes(), path)
            if arrays is not None:
                return arrays
    return _fst_to_arrays_slow(fst)


def _parse_vector_fst(buf: bytes, path: Path) -> FstArrays | None:
    """Parse an OpenFst binary VectorFst<StdArc>; None if it has symbol tables or alignment."""
    fst_type, _version, flags, start, nstates, pos = _read_header(buf, path)
    if fst_type != "vector" or flags != 0:
        return None
    unpack = struct.Struct("<fq").unpack_from
    heads, finals, counts_l = [], [], []
    for _ in range(nstates):
        f, n = unpack(buf, pos)
        heads.append(pos)
        finals.append(f)
        counts_l.append(n)
        pos += 12 + 16 * n
    head = np.asarray(heads, dtype=np.int64)
    final = np.asarray(finals, dtype=_F32)
    counts = np.asarray(counts_l, dtype=np.int64)
    if pos != len(buf):
        raise GraphError(f"{path}: {len(buf) - pos} unexpected trailing bytes in a VectorFst")
    body = np.frombuffer(buf, dtype=np.uint8)
    keep = np.zeros(len(buf), dtype=bool)
    if nstates:
        keep[int(head[0]) :] = True
        keep[(head[:, None] + np.arange(12)).ravel()] = False
    arcs = body[keep].view(_ARC_DT)
    offsets = np.zeros(nstates + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return FstArrays(
        start=int(start) if nstates else -1,
        final=final,
        offsets=offsets,
        ilabel=arcs["il"].astype(np.int32),
        olabel=arcs["ol"].astype(np.int32),
        weight=arcs["w"].astype(_F32),
        nextstate=arcs["ns"].astype(np.int32),
    )


def _fst_to_arrays_slow(fst: kaldifst.StdFst) -> FstArrays:
    n = fst.num_states
    final = np.empty(n, dtype=_F32)
    counts = np.empty(n, dtype=np.int64)
    rows: list[tuple[int, int, float, int]] = []
    for s in range(n):
        final[s] = fst.final(s).value
        before = len(rows)
        rows.extend(
            (a.ilabel, a.olabel, a.weight.value, a.nextstate) for a in kaldifst.ArcIterator(fst, s)
        )
        counts[s] = len(rows) - before
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if rows:
        il, ol, w, ns = zip(*rows, strict=True)
    else:
        il = ol = w = ns = ()
    return FstArrays(
        start=fst.start,
        final=final,
        offsets=offsets,
        ilabel=np.asarray(il, dtype=np.int32),
        olabel=np.asarray(ol, dtype=np.int32),
        weight=np.asarray(w, dtype=_F32),
        nextstate=np.asarray(ns, dtype=np.int32),
    )


def vector_fst_bytes(a: FstArrays) -> bytes:
    """:class:`FstArrays` as an OpenFst binary ``VectorFst<StdArc>`` file image."""

    def string(text: str) -> bytes:
        return struct.pack("<i", len(text)) + text.encode()

    n = a.num_states
    header = (
        struct.pack("<i", _FST_MAGIC)
        + string("vector")
        + string("standard")
        + struct.pack("<iiQqqq", 2, 0, 3, a.start if n else -1, n, a.num_arcs)
    )
    arcs = np.empty(a.num_arcs, dtype=_ARC_DT)
    arcs["il"], arcs["ol"], arcs["w"], arcs["ns"] = a.ilabel, a.olabel, a.weight, a.nextstate
    states = np.empty(n, dtype=_VECTOR_STATE_DT)
    states["final"] = a.final
    states["narcs"] = np.diff(a.offsets)
    body = np.insert(
        arcs.view(np.uint8),
        np.repeat(a.offsets[:-1] * 16, 12),
        states.view(np.uint8),
    )
    return header + body.tobytes()


def arrays_to_fst(a: FstArrays) -> kaldifst.StdVectorFst:
    """Build a ``StdVectorFst`` from :class:`FstArrays` (through the binary format)."""
    with tempfile.TemporaryDirectory(prefix="pykd-fst-") as tmp:
        path = Path(tmp) / "f.fst"
        path.write_bytes(vector_fst_bytes(a))
        fst = kaldifst.StdVectorFst.read(str(path))
    if fst is None:
        raise GraphError("kaldifst could not read back an FST built from arrays")
    return fst


def _read_header(buf: bytes, path: Path) -> tuple[str, int, int, int, int, int]:
    """Parse an OpenFst binary header -> (fst_type, version, flags, start, nstates, offset)."""
    magic = struct.unpack_from("<i", buf, 0)[0]
    if magic != _FST_MAGIC:
        raise GraphError(f"{path}: not an OpenFst binary file (bad magic number)")
    pos = 4
    strings = []
    for _ in range(2):
        (n,) = struct.unpack_from("<i", buf, pos)
        strings.append(buf[pos + 4 : pos + 4 + n].decode("ascii", "replace"))
        pos += 4 + n
    fst_type, arc_type = strings
    if arc_type != "standard":
        raise GraphError(f"{path}: arc type {arc_type!r}, expected 'standard' (tropical)")
    version, flags = struct.unpack_from("<ii", buf, pos)
    pos += 8 + 8  # version, flags, properties
    start, nstates, _narcs = struct.unpack_from("<qqq", buf, pos)
    pos += 24
    return fst_type, version, flags, start, nstates, pos


def read_fst(path: str | os.PathLike) -> kaldifst.StdVectorFst:
    """Read a binary OpenFst file (VectorFst or Kaldi's ConstFst) as a ``StdVectorFst``."""
    path = Path(path)
    if not path.is_file():
        raise GraphError(f"no such FST file: {path}")
    with open(path, "rb") as f:
        head = f.read(256)
    fst_type = _read_header(head, path)[0]
    if fst_type == "vector":
        fst = kaldifst.StdVectorFst.read(str(path))
        if fst is None:
            raise GraphError(f"{path}: kaldifst could not read this VectorFst")
        return fst
    if fst_type == "const":
        return arrays_to_fst(read_const_fst_arrays(path))
    raise GraphError(f"{path}: FST type {fst_type!r} not supported (vector or const)")


def read_const_fst_arrays(path: str | os.PathLike) -> FstArrays:
    """Parse an OpenFst ``ConstFst<StdArc, uint32>`` file (what Kaldi's mkgraph writes)."""
    path = Path(path)
    buf = path.read_bytes()
    fst_type, version, flags, start, nstates, pos = _read_header(buf, path)
    if fst_type != "const":
        raise GraphError(f"{path}: not a ConstFst (type {fst_type!r})")
    if flags & 3:
        raise GraphError(f"{path}: ConstFst with symbol tables is not supported")
    aligned = bool(flags & 4)
    if aligned:
        pos = (pos + 15) // 16 * 16
    state_dt = np.dtype(
        [("final", "<f4"), ("pos", "<u4"), ("narcs", "<u4"), ("ni", "<u4"), ("no", "<u4")]
    )
    states = np.frombuffer(buf, dtype=state_dt, count=nstates, offset=pos)
    pos += states.nbytes
    if aligned:
        pos = (pos + 15) // 16 * 16
    narcs = int(states["narcs"].sum()) if nstates else 0
    arc_dt = np.dtype([("il", "<i4"), ("ol", "<i4"), ("w", "<f4"), ("ns", "<i4")])
    arcs = np.frombuffer(buf, dtype=arc_dt, count=narcs, offset=pos)
    offsets = np.zeros(nstates + 1, dtype=np.int64)
    offsets[:-1] = states["pos"]
    offsets[-1] = narcs
    if nstates and not np.array_equal(offsets[1:] - offsets[:-1], states["narcs"]):
        raise GraphError(f"{path}: ConstFst arcs are not stored in state order")
    log.debug("%s: ConstFst version %d, %d states, %d arcs", path, version, nstates, narcs)
    return FstArrays(
        start=int(start),
        final=states["final"].astype(_F32),
        offsets=offsets,
        ilabel=arcs["il"].astype(np.int32),
        olabel=arcs["ol"].astype(np.int32),
        weight=arcs["w"].astype(_F32),
        nextstate=arcs["ns"].astype(np.int32),
    )


def write_fst(fst: kaldifst.StdVectorFst, path: str | os.PathLike) -> None:
    """Write ``fst`` (binary VectorFst) atomically."""
    with atomic_path(path) as tmp:
        if not fst.write(str(tmp)):
            raise GraphError(f"could not write FST to {path}")


def fst_size(fst: kaldifst.StdFst) -> tuple[int, int]:
    """(number of states, number of arcs)."""
    n = fst.num_states
    return n, sum(fst.num_arcs(s) for s in range(n))


# --------------------------------------------------------------------------------------------
# Algorithms Kaldi has in fstext/ but kaldifst does not wrap
# --------------------------------------------------------------------------------------------


def push_special(fst: kaldifst.StdVectorFst, delta: float = K_DELTA) -> kaldifst.StdVectorFst:
    """Kaldi's ``fstpushspecial``: log-semiring pushing that leaves every state summing to one λ.

    Power iteration on ``P + 0.1 I`` (``P[i, j]`` = total probability of arcs i->j, with each
    final-probability counted as an arc back to the start state), normalised to unit length,
    checked every 5 iterations until ``log(max/min)`` of the per-state sums is <= ``delta``
    (at most 2000 iterations); then ``w(i->j) += pot[j] - pot[i]`` and
    ``final(i) += pot[start] - pot[i]`` with ``pot = -log v``. Path weights are unchanged.
    """
    a = fst_to_arrays(fst)
    n = a.num_states
    if n == 0:
        return fst
    src = a.src().astype(np.int64)
    dst = a.nextstate.astype(np.int64)
    prob = np.exp(-a.weight.astype(np.float64))
    fin = np.exp(-a.final.astype(np.float64))
    is_final = fin != 0.0
    # Rows: arcs plus "final -> start" pseudo-arcs.
    rows = np.concatenate([src, np.flatnonzero(is_final)])
    cols = np.concatenate([dst, np.full(int(is_final.sum()), a.start, dtype=np.int64)])
    vals = np.concatenate([prob, fin[is_final]])

    def times_p(v: np.ndarray) -> np.ndarray:
        return np.bincount(rows, weights=vals * v[cols], minlength=n)

    occ = np.full(n, 1.0 / math.sqrt(n))
    converged = False
    for it in range(2000):
        new = 0.1 * occ + times_p(occ)
        occ = new / math.sqrt(float(np.dot(new, new)))
        if it % 5 == 0 and it > 0:
            sums = times_p(occ) / occ
            if math.log(sums.max() / sums.min()) <= delta:
                converged = True
                log.debug("push-special converged after %d iterations", it)
                break
    if not converged:
        log.warning("push-special: no convergence after 2000 iterations; weights approximate")
    with np.errstate(divide="ignore"):
        pot = -np.log(occ)
    if not np.all(np.isfinite(pot)):
        log.warning(
            "push-special: %d states with NaN/inf potential", int((~np.isfinite(pot)).sum())
        )
    new_w = (a.weight.astype(np.float64) + pot[dst]) - pot[src]
    a.weight = new_w.astype(_F32)
    shift = (pot[a.start] - pot).astype(_F32)
    a.final = np.where(np.isinf(a.final), a.final, a.final + shift).astype(_F32)
    return arrays_to_fst(a)


def remove_input_symbols(fst: kaldifst.StdVectorFst | FstArrays, symbols: set[int]) -> FstArrays:
    """Kaldi's ``fstrmsymbols``: replace the given input labels by epsilon (returns arrays)."""
    a = fst if isinstance(fst, FstArrays) else fst_to_arrays(fst)
    if len(a.ilabel):
        mask = np.isin(a.ilabel, np.fromiter(symbols, dtype=np.int32, count=len(symbols)))
        a.ilabel = np.where(mask, 0, a.ilabel).astype(np.int32)
    return a


def remove_output_symbol_arcs(
    fst: kaldifst.StdVectorFst, symbols: set[int]
) -> kaldifst.StdVectorFst:
    """``fstrmsymbols --remove-arcs=true --apply-to-output=true``: drop arcs with these olabels."""
    a = fst_to_arrays(fst)
    keep = ~np.isin(a.olabel, np.fromiter(symbols, dtype=np.int32, count=len(symbols)))
    counts = np.add.reduceat(keep.astype(np.int64), a.offsets[:-1]) if a.num_arcs else None
    if counts is not None:
        counts[np.diff(a.offsets) == 0] = 0
        a.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    for name in ("ilabel", "olabel", "weight", "nextstate"):
        setattr(a, name, getattr(a, name)[keep])
    out = arrays_to_fst(a)
    kaldifst.connect(out)
    return out


def _times(x: float, y: float) -> float:
    """Tropical Times in float32, as OpenFst computes it."""
    return float(_F32(x) + _F32(y))


def _log_plus(x: float, y: float) -> float:
    """Log-semiring Plus of two costs, -log(e^-x + e^-y), rounded as OpenFst 1.7's LogWeight.

    (The difference is taken in float32, log1p(exp(-d)) in double, the result stored as float32.)
    """
    if x == _INF:
        return y
    if y == _INF:
        return x
    lo, hi = (_F32(x), _F32(y)) if x <= y else (_F32(y), _F32(x))
    diff = float(hi - lo)
    return float(_F32(float(lo) - math.log1p(math.exp(-diff))))


def remove_eps_local(
    fst: kaldifst.StdVectorFst | FstArrays, stochastic_in_log: bool = True
) -> kaldifst.StdVectorFst:
    """Kaldi's ``fstrmepslocal``: remove epsilons without ever adding arcs or states.

    Equivalence is kept in the tropical semiring; with ``stochastic_in_log`` (fstrmepslocal's
    default, used by mkgraph) the reweighting totals below are log-semiring sums, so that a
    stochastic FST stays stochastic in the log semiring; otherwise tropical (min).

    For each arc s->t (in state order, arcs appended to s are visited too), not a self-loop:
    * t has one incoming arc and several "exits" (arcs + final): every exit of t that combines
      with the arc (at most one non-epsilon ilabel and olabel between the two; a final exit only
      for an eps:eps arc) is moved to s, combined; if some exits stay, the arc is reweighted by
      ``kept / (kept + removed)`` and t's exits divided by the same.
    * t has exactly one exit: that exit is combined into a new arc (or final weight) of s and the
      arc is deleted; t's exit is deleted too when the arc was t's only way in.
    Then states that are no longer useful are trimmed (Connect), keeping the state order.
    """
    a = fst if isinstance(fst, FstArrays) else fst_to_arrays(fst)
    n = a.num_states
    if n == 0:
        return arrays_to_fst(a)
    dead = n  # arcs pointing here are deleted
    plus = _log_plus if stochastic_in_log else min
    final = a.final.tolist() + [_INF]
    offs = a.offsets.tolist()
    il, ol, w, ns = (x.tolist() for x in (a.ilabel, a.olabel, a.weight, a.nextstate))
    extra: dict[int, list[int]] = {}  # states whose arc list grew: their full arc-index list
    n_out = (np.diff(a.offsets) + np.isfinite(a.final)).tolist() + [0]
    n_in = np.bincount(a.nextstate, minlength=n + 1).tolist()
    n_in[a.start] += 1

    def arcs_of(s: int) -> list[int] | range:
        lst = extra.get(s)
        return lst if lst is not None else range(offs[s], offs[s + 1])

    def add_arc(s: int, i: int, o: int, wt: float, nxt: int) -> None:
        k = len(il)
        il.append(i)
        ol.append(o)
        w.append(wt)
        ns.append(nxt)
        lst = extra.get(s)
        if lst is None:
            lst = extra[s] = list(range(offs[s], offs[s + 1]))
        lst.append(k)
        n_out[s] += 1
        n_in[nxt] += 1

    def combinable(k: int, j: int) -> bool:
        return not ((il[k] and il[j]) or (ol[k] and ol[j]))

    def add_final(s: int, weight: float) -> None:
        if final[s] == _INF:
            n_out[s] += 1
        final[s] = min(final[s], weight)

    def delete_arc(s: int, k: int) -> None:
        n_out[s] -= 1
        n_in[ns[k]] -= 1
        ns[k] = dead

    def pattern1(s: int, k: int) -> None:
        t = ns[k]
        removed = kept = _INF
        to_add = []
        for j in arcs_of(t):
            if ns[j] == dead:
                continue
            if combinable(k, j):
                removed = plus(removed, w[j])
                to_add.append((il[k] or il[j], ol[k] or ol[j], _times(w[k], w[j]), ns[j]))
                delete_arc(t, j)
            else:
                kept = plus(kept, w[j])
        if final[t] != _INF:
            if il[k] == 0 and ol[k] == 0:
                removed = plus(removed, final[t])
                add_final(s, _times(w[k], final[t]))
                n_out[t] -= 1
                final[t] = _INF
            else:
                kept = plus(kept, final[t])
        if removed != _INF:
            if kept == _INF:
                delete_arc(s, k)
            else:
                reweight = float(_F32(kept) - _F32(plus(removed, kept)))
                w[k] = _times(w[k], reweight)
                for j in arcs_of(t):
                    if ns[j] != dead:
                        w[j] = float(_F32(w[j]) - _F32(reweight))
                if final[t] != _INF:
                    final[t] = float(_F32(final[t]) - _F32(reweight))
        for arc in to_add:
            add_arc(s, *arc)

    def pattern2(s: int, k: int) -> None:
        t = ns[k]
        can_delete_next = n_in[t] == 1
        if final[t] != _INF:
            if il[k] == 0 and ol[k] == 0:
                add_final(s, _times(w[k], final[t]))
                if can_delete_next:
                    n_out[t] -= 1
                    final[t] = _INF
                delete_arc(s, k)
        else:
            j = next(x for x in arcs_of(t) if ns[x] != dead)
            if combinable(k, j):
                arc = (il[k] or il[j], ol[k] or ol[j], _times(w[k], w[j]), ns[j])
                if can_delete_next:
                    delete_arc(t, j)
                add_arc(s, *arc)
                delete_arc(s, k)

    for s in range(n):
        pos = 0
        while True:
            lst = extra.get(s)
            if lst is None:
                if pos >= offs[s + 1] - offs[s]:
                    break
                k = offs[s] + pos
            else:
                if pos >= len(lst):
                    break
                k = lst[pos]
            t = ns[k]
            if t != dead and t != s:
                if n_in[t] == 1 and n_out[t] > 1:
                    pattern1(s, k)
                elif n_out[t] == 1:
                    pattern2(s, k)
            pos += 1

    # Arc order: each state's (possibly grown) list; drop deleted arcs; trim (Connect keeps
    # the relative order of the states that stay).
    base = a.num_arcs
    owner = a.src().astype(np.int64)
    rank = np.arange(base, dtype=np.int64) - a.offsets[owner]
    keep_base = np.ones(base, dtype=bool)
    ext_idx, ext_owner, ext_rank = [], [], []
    for st, lst in extra.items():
        keep_base[offs[st] : offs[st + 1]] = False
        ext_idx.extend(lst)
        ext_owner.extend([st] * len(lst))
        ext_rank.extend(range(len(lst)))
    idx = np.concatenate([np.flatnonzero(keep_base), np.asarray(ext_idx, dtype=np.int64)])
    own = np.concatenate([owner[keep_base], np.asarray(ext_owner, dtype=np.int64)])
    rnk = np.concatenate([rank[keep_base], np.asarray(ext_rank, dtype=np.int64)])
    order = np.lexsort((rnk, own))
    idx, own = idx[order], own[order]
    ns_arr = np.asarray(ns, dtype=np.int64)
    alive = ns_arr[idx] != dead
    idx, own = idx[alive], own[alive]
    counts = np.bincount(own, minlength=n)
    out = FstArrays(
        start=a.start,
        final=np.asarray(final[:n], dtype=_F32),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        ilabel=np.asarray(il, dtype=np.int32)[idx],
        olabel=np.asarray(ol, dtype=np.int32)[idx],
        weight=np.asarray(w, dtype=_F32)[idx],
        nextstate=ns_arr[idx].astype(np.int32),
    )
    result = arrays_to_fst(out)
    kaldifst.connect(result)
    return result


# --------------------------------------------------------------------------------------------
# ilabel info (fstcomposecontext's output) in Kaldi's format
# --------------------------------------------------------------------------------------------


def write_ilabel_info(
    path: str | os.PathLike, ilabels: list[list[int]], binary: bool = True
) -> None:
    """Write ``vector<vector<int32>>`` ilabel info as ``fstcomposecontext`` does (atomic)."""
    if binary:
        parts = [b"\0B", struct.pack("<bi", 4, len(ilabels))]
        for entry in ilabels:
            parts.append(struct.pack("<bi", 4, len(entry)))
            parts.append(np.asarray(entry, dtype="<i4").tobytes())
        with atomic_write(path, "wb") as f:
            f.write(b"".join(parts))
    else:
        lines = [f"{len(ilabels)} "] + ["[ " + "".join(f"{x} " for x in e) + "]\n" for e in ilabels]
        atomic_write_text(path, "".join(lines))


def read_ilabel_info(path: str | os.PathLike) -> list[list[int]]:
    """Read ilabel info written by :func:`write_ilabel_info` or Kaldi (binary or text)."""
    path = Path(path)
    buf = path.read_bytes()
    if buf[:2] == b"\0B":
        pos = 2
        size, n = struct.unpack_from("<bi", buf, pos)
        pos += 5
        if size != 4:
            raise GraphError(f"{path}: expected int32 size marker, got {size}")
        out = []
        for i in range(n):
            size, m = struct.unpack_from("<bi", buf, pos)
            if size != 4:
                raise GraphError(f"{path}: bad int32 vector marker at entry {i}")
            pos += 5
            out.append(np.frombuffer(buf, dtype="<i4", count=m, offset=pos).tolist())
            pos += 4 * m
        return out
    text = buf.decode("ascii").replace("[", " [ ").replace("]", " ] ").split()
    n = int(text[0])
    out, cur, k = [], None, 1
    while k < len(text):
        tok = text[k]
        if tok == "[":
            cur = []
        elif tok == "]":
            out.append(cur)
        else:
            cur.append(int(tok))
        k += 1
    if len(out) != n:
        raise GraphError(f"{path}: header says {n} entries, found {len(out)}")
    return out


def disambig_ilabels(ilabels: list[list[int]]) -> list[int]:
    """The CLG input labels that are disambiguation symbols (incl. the subsequential one)."""
    return [i for i, e in enumerate(ilabels) if len(e) == 1 and e[0] <= 0]


# --------------------------------------------------------------------------------------------
# The stages of mkgraph
# --------------------------------------------------------------------------------------------


def compose_lg(
    L_disambig: kaldifst.StdVectorFst, G: kaldifst.StdVectorFst
) -> kaldifst.StdVectorFst:
    """LG: compose, determinize (log semiring), minimize (encoded), push-special."""
    G = G.copy()
    kaldifst.arcsort(G, "ilabel")
    LG = kaldifst.compose(L_disambig, G)
    kaldifst.determinize_star(LG, use_log=True)
    kaldifst.minimize_encoded(LG)
    return push_special(LG)


def compose_clg(
    LG: kaldifst.StdVectorFst, context_width: int, central_position: int, disambig_phones: list[int]
) -> tuple[kaldifst.StdVectorFst, list[list[int]]]:
    """CLG (ilabel-sorted) and its ilabel info, like ``fstcomposecontext | fstarcsort``.

    ``LG`` is not modified (compose_context adds a subsequential loop to a copy).
    """
    CLG, ilabels = kaldifst.compose_context(
        disambig_phones, context_width, central_position, LG.copy()
    )
    kaldifst.arcsort(CLG, "ilabel")
    return CLG, [list(x) for x in ilabels]


def make_h_transducer(
    ilabels: list[list[int]],
    tree: kaldi_hmm_gmm.ContextDependency,
    trans_model: kaldi_hmm_gmm.TransitionModel,
    transition_scale: float = 1.0,
) -> tuple[kaldifst.StdVectorFst, list[int]]:
    """Ha (no self-loops) and the transition-ids standing for disambiguation symbols."""
    cfg = kaldi_hmm_gmm.HTransducerConfig()
    cfg.transition_scale = transition_scale
    Ha, disambig_tids = kaldi_hmm_gmm.get_h_transducer(ilabels, tree, trans_model, cfg)
    return Ha, list(disambig_tids)


def compose_hclga(
    Ha: kaldifst.StdVectorFst, CLG: kaldifst.StdVectorFst, disambig_tids: list[int]
) -> kaldifst.StdVectorFst:
    """HCLGa: compose, determinize (log), drop disambig tids, local eps removal, minimize."""
    if not CLG.is_ilabel_sorted:
        CLG = CLG.copy()
        kaldifst.arcsort(CLG, "ilabel")
    HCLGa = kaldifst.compose(Ha, CLG)
    kaldifst.determinize_star(HCLGa, use_log=True)
    HCLGa = remove_input_symbols(HCLGa, set(disambig_tids))
    HCLGa = remove_eps_local(HCLGa)
    kaldifst.minimize_encoded(HCLGa)
    return HCLGa


def add_self_loops(
    HCLGa: kaldifst.StdVectorFst,
    trans_model: kaldi_hmm_gmm.TransitionModel,
    self_loop_scale: float = 0.1,
) -> kaldifst.StdVectorFst:
    """``add-self-loops --reorder=true``: self-loops, and the non-self-loop probabilities scaled."""
    out = kaldi_hmm_gmm.add_self_loops(
        self_loop_scale=self_loop_scale,
        disambig_syms=[],
        reorder=True,
        trans_model=trans_model,
        ifst=HCLGa,
    )
    return HCLGa if out is None else out


# --------------------------------------------------------------------------------------------
# utils/mkgraph.sh
# --------------------------------------------------------------------------------------------


@dataclass
class MkgraphOptions:
    """Options of ``utils/mkgraph.sh`` (same defaults)."""

    transition_scale: float = 1.0
    self_loop_scale: float = 0.1
    remove_oov: bool = False
    use_cache: bool = True  # keep LG / CLG / ilabels in <lang>/tmp like Kaldi


@dataclass
class GraphStats:
    """What a build made: sizes (states, arcs) per stage and seconds per stage."""

    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    up_to_date: bool = False

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


def _older(a: Path, b: Path) -> bool:
    """Bash ``[[ a -ot b ]]``."""
    return a.stat().st_mtime < b.stat().st_mtime


def _fresh(path: Path, *sources: Path) -> bool:
    """``path`` exists, is non-empty and is not older than any of ``sources``."""
    return path.is_file() and path.stat().st_size > 0 and not any(_older(path, s) for s in sources)


def _read_int_list(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except ValueError as err:
        raise GraphError(f"{path}: expected integers: {err}") from None


def check_grammar_fst(G: kaldifst.StdFst, words_txt: Path, g_path: Path) -> None:
    """Refuse a G with ``<s>``/``</s>`` on its arcs (arpa2fst / format_lm.sh remove them)."""
    from pykd.lang.symbols import SymbolTable

    words = SymbolTable.read(words_txt)
    bad = {s: words[s] for s in ("<s>", "</s>") if s in words}
    if G.num_states == 0:
        raise GraphError(f"{g_path}: G.fst is empty")
    if not bad:
        return
    a = fst_to_arrays(G)
    ids = np.asarray(list(bad.values()), dtype=np.int32)
    hits = np.isin(a.ilabel, ids) | np.isin(a.olabel, ids)
    if hits.any():
        raise GraphError(
            f"{g_path}: {int(hits.sum())} arcs carry <s> or </s> "
            f"(ids {sorted(bad.values())} in {words_txt}); G must be made with "
            "utils/format_lm.sh / arpa2fst, which turn them into the start state and final weights"
        )


def _copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _copy_graph_side_files(lang: Path, graph: Path) -> None:
    """The lang files mkgraph.sh keeps beside HCLG.fst (decoding without the lang dir)."""
    _copy(lang / "words.txt", graph / "words.txt")
    _copy(lang / "phones.txt", graph / "phones.txt")
    (graph / "phones").mkdir(parents=True, exist_ok=True)
    for pattern in ("word_boundary.*", "align_lexicon.*", "optional_silence.*"):
        for src in sorted((lang / "phones").glob(pattern)):
            _copy(src, graph / "phones" / src.name)
    for name in ("disambig.txt", "disambig.int", "silence.csl"):
        if (lang / "phones" / name).is_file():
            _copy(lang / "phones" / name, graph / "phones" / name)


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def build_hclg(
    lang_dir: str | os.PathLike,
    tree: kaldi_hmm_gmm.ContextDependency,
    trans_model: kaldi_hmm_gmm.TransitionModel,
    opts: MkgraphOptions | None = None,
    stats: GraphStats | None = None,
) -> tuple[kaldifst.StdVectorFst, list[int]]:
    """HCLG from a lang dir (L_disambig.fst, G.fst, phones/disambig.int) and a tree + model.

    Returns ``(HCLG, disambig_tids)``. LG / CLG / ilabels are cached in ``<lang>/tmp`` when
    ``opts.use_cache`` and that folder is writable (Kaldi's file names and staleness rules).
    """
    opts = opts or MkgraphOptions()
    stats = stats if stats is not None else GraphStats()
    lang = Path(lang_dir)
    N, P = tree.context_width, tree.central_position
    if trans_model.num_pdfs != tree.num_pdfs:
        raise GraphError(
            f"the model has {trans_model.num_pdfs} pdfs but the tree has {tree.num_pdfs}: "
            "model and tree do not belong together"
        )
    disambig_phones = _read_int_list(lang / "phones" / "disambig.int")

    def timed(name: str, t0: float, fst: kaldifst.StdFst) -> None:
        stats.seconds[name] = time.perf_counter() - t0
        stats.sizes[name] = fst_size(fst)
        log.info("%s: %d states, %d arcs (%.2f s)", name, *stats.sizes[name], stats.seconds[name])

    cache = lang / "tmp"
    use_cache = opts.use_cache and _writable_dir(cache)
    if opts.use_cache and not use_cache:
        log.info("%s is not writable: building LG/CLG in memory", cache)

    # --- LG ---
    t0 = time.perf_counter()
    lg_path = cache / "LG.fst"
    if use_cache and _fresh(lg_path, lang / "G.fst", lang / "L_disambig.fst"):
        LG = read_fst(lg_path)
    else:
        G = read_fst(lang / "G.fst")
        check_grammar_fst(G, lang / "words.txt", lang / "G.fst")
        LG = compose_lg(read_fst(lang / "L_disambig.fst"), G)
        if LG.num_states == 0:
            raise GraphError(f"L_disambig.fst o G.fst of {lang} is empty: do they share words?")
        if use_cache:
            write_fst(LG, lg_path)
    timed("LG", t0, LG)

    # --- CLG (+ ilabels) ---
    t0 = time.perf_counter()
    clg_path, ilabels_path = cache / f"CLG_{N}_{P}.fst", cache / f"ilabels_{N}_{P}"
    if use_cache and _fresh(clg_path, lg_path) and _fresh(ilabels_path, lg_path):
        CLG, ilabels = read_fst(clg_path), read_ilabel_info(ilabels_path)
    else:
        CLG, ilabels = compose_clg(LG, N, P, disambig_phones)
        if use_cache:
            write_ilabel_info(ilabels_path, ilabels)
            atomic_write_text(
                cache / f"disambig_ilabels_{N}_{P}.int",
                "".join(f"{i}\n" for i in disambig_ilabels(ilabels)),
            )
            write_fst(CLG, clg_path)
    timed("CLG", t0, CLG)

    # --- Ha ---
    t0 = time.perf_counter()
    Ha, disambig_tids = make_h_transducer(ilabels, tree, trans_model, opts.transition_scale)
    timed("Ha", t0, Ha)

    # --- HCLGa ---
    t0 = time.perf_counter()
    if opts.remove_oov:
        if not (lang / "oov.int").is_file():
            raise GraphError(f"--remove-oov: no file {lang / 'oov.int'}")
        CLG = remove_output_symbol_arcs(CLG, set(_read_int_list(lang / "oov.int")))
        kaldifst.arcsort(CLG, "ilabel")
    HCLGa = compose_hclga(Ha, CLG, disambig_tids)
    timed("HCLGa", t0, HCLGa)

    # --- HCLG ---
    t0 = time.perf_counter()
    HCLG = add_self_loops(HCLGa, trans_model, opts.self_loop_scale)
    if HCLG.num_states == 0:
        raise GraphError(f"the HCLG built from {lang} is empty")
    timed("HCLG", t0, HCLG)
    return HCLG, disambig_tids


def mkgraph(
    lang_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    graph_dir: str | os.PathLike,
    opts: MkgraphOptions | None = None,
    model: str | os.PathLike | None = None,
) -> GraphStats:
    """Build ``<graph_dir>/HCLG.fst`` and its side files, as ``utils/mkgraph.sh`` does.

    ``model_dir`` must hold ``tree`` and ``final.mdl`` (or pass ``model``: any Kaldi model that
    starts with a TransitionModel, GMM or nnet). Skips the build when HCLG.fst is newer than
    every input (Kaldi's behaviour). Raises :class:`GraphError` naming what is missing or wrong.
    Writes HCLG.fst (binary VectorFst), disambig_tid.int, num_pdfs, words.txt, phones.txt and
    phones/{silence.csl, disambig.*, optional_silence.*, word_boundary.*, align_lexicon.*}.
    """
    from pykd.kaldi.model_io import read_transition_model, read_tree

    opts = opts or MkgraphOptions()
    lang, mdir, graph = Path(lang_dir), Path(model_dir), Path(graph_dir)
    tree_path = mdir / "tree"
    model_path = Path(model) if model is not None else mdir / "final.mdl"
    required = [
        lang / "L_disambig.fst",
        lang / "G.fst",
        lang / "phones.txt",
        lang / "words.txt",
        lang / "phones" / "silence.csl",
        lang / "phones" / "disambig.int",
        model_path,
        tree_path,
    ]
    missing = [str(f) for f in required if not f.is_file()]
    if missing:
        raise GraphError("mkgraph: expected these files to exist: " + ", ".join(missing))
    if opts.remove_oov and not (lang / "oov.int").is_file():
        raise GraphError(f"mkgraph: --remove-oov: no file {lang / 'oov.int'}")
    if (lang / "phones" / "nonterm_phones_offset.int").is_file():
        raise GraphError(
            f"{lang}: grammar-decoding lang (phones/nonterm_phones_offset.int) is not supported "
            "by the builtin mkgraph; use Kaldi's utils/mkgraph.sh"
        )

    stats = GraphStats()
    hclg_path = graph / "HCLG.fst"
    if hclg_path.is_file() and not any(_older(hclg_path, f) for f in required):
        log.info("%s is up to date", hclg_path)
        stats.up_to_date = True
        return stats

    t0 = time.perf_counter()
    tree = read_tree(tree_path)
    trans_model = read_transition_model(model_path)
    stats.seconds["read"] = time.perf_counter() - t0
    log.info(
        "%s: context width %d, central position %d, %d pdfs",
        tree_path,
        tree.context_width,
        tree.central_position,
        tree.num_pdfs,
    )
    HCLG, disambig_tids = build_hclg(lang, tree, trans_model, opts, stats)

    t0 = time.perf_counter()
    graph.mkdir(parents=True, exist_ok=True)
    atomic_write_text(graph / "disambig_tid.int", "".join(f"{t}\n" for t in disambig_tids))
    write_fst(HCLG, hclg_path)
    _copy_graph_side_files(lang, graph)
    atomic_write_text(graph / "num_pdfs", f"{trans_model.num_pdfs}\n")
    stats.seconds["write"] = time.perf_counter() - t0
    log.info(
        "wrote %s: %d states, %d arcs in %.2f s",
        hclg_path,
        *stats.sizes["HCLG"],
        stats.total_seconds,
    )
    return stats
