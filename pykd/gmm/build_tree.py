"""Decision-tree state tying (Kaldi's ``build-tree``) and Kaldi's tree file format.

EventMaps (Kaldi's ``CE`` constant, ``TE`` table and ``SE`` split maps) are frozen dataclasses;
``ContextTree`` is Kaldi's ContextDependency (context width N, central position P, the
EventMap to pdfs). ``write_tree_binary``/``tree_to_text`` produce Kaldi's binary/text tree files
byte for byte; ``parse_tree`` reads both; ``to_context_dependency`` loads a tree into
``kaldi_hmm_gmm`` through its Kaldi serialisation.

Building: the stub tree over the lang's roots (``phones/roots.int``: ``shared``/``not-shared``
pdf-classes, ``split``/``not-split``), greedy splitting of the leaf with the largest likelihood
gain (single diagonal Gaussian per leaf) until ``max_leaves``, bottom-up merging of leaves under
the same root whose merge loses less than ``cluster_thresh`` (-1: the gain of the last split),
then rounding the number of leaves down to a multiple of 8, as Kaldi does.
"""

from __future__ import annotations

import heapq
import logging
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from pykd.gmm.questions import Question, gauss_objf
from pykd.gmm.tree_stats import KEY_PDF_CLASS, TreeStats
from pykd.io.atomic import atomic_write

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- EventMaps


@dataclass(frozen=True)
class ConstantEventMap:
    answer: int


@dataclass(frozen=True)
class TableEventMap:
    key: int
    table: tuple[EventMap | None, ...]


@dataclass(frozen=True)
class SplitEventMap:
    key: int
    yes_set: tuple[int, ...]
    yes: EventMap
    no: EventMap


EventMap = Union[ConstantEventMap, TableEventMap, SplitEventMap]  # noqa: UP007


@dataclass(frozen=True)
class ContextTree:
    """Kaldi's ContextDependency: ``to_pdf`` maps {-1: pdf-class, 0..N-1: phones} to a pdf."""

    context_width: int
    central_position: int
    to_pdf: EventMap | None

    def compute(self, phones: Sequence[int], pdf_class: int) -> int | None:
        event = {KEY_PDF_CLASS: pdf_class, **dict(enumerate(phones))}
        return map_event(self.to_pdf, event)

    @property
    def num_pdfs(self) -> int:
        return 1 + max(leaf_answers(self.to_pdf), default=-1)


def map_event(emap: EventMap | None, event: Mapping[int, int]) -> int | None:
    """Follow ``emap`` for a fully specified event; None where Kaldi's Map fails."""
    while emap is not None:
        if isinstance(emap, ConstantEventMap):
            return emap.answer
        if emap.key not in event:
            return None
        value = event[emap.key]
        if isinstance(emap, TableEventMap):
            emap = emap.table[value] if 0 <= value < len(emap.table) else None
        else:
            emap = emap.yes if value in emap.yes_set else emap.no
    return None


def leaf_answers(emap: EventMap | None) -> set[int]:
    out: set[int] = set()
    stack = [emap]
    while stack:
        e = stack.pop()
        if isinstance(e, ConstantEventMap):
            out.add(e.answer)
        elif isinstance(e, TableEventMap):
            stack.extend(e.table)
        elif isinstance(e, SplitEventMap):
            stack.extend((e.yes, e.no))
    return out


def map_answers(emap: EventMap | None, fn) -> EventMap | None:
    """Copy of ``emap`` with every constant answer ``a`` replaced by ``fn(a)`` (an EventMap)."""
    if emap is None:
        return None
    if isinstance(emap, ConstantEventMap):
        return fn(emap.answer)
    if isinstance(emap, TableEventMap):
        return TableEventMap(emap.key, tuple(map_answers(e, fn) for e in emap.table))
    return SplitEventMap(
        emap.key, emap.yes_set, map_answers(emap.yes, fn), map_answers(emap.no, fn)
    )


# ----------------------------------------------------------------------------- Kaldi format


def _b_token(t: str) -> bytes:
    return t.encode() + b" "


def _b_int(v: int) -> bytes:
    return b"\x04" + struct.pack("<i", v)


def _b_uint(v: int) -> bytes:
    """Kaldi marks an unsigned basic type by a negative size byte (-4 for uint32)."""
    return b"\xfc" + struct.pack("<I", v)


def _emap_binary(emap: EventMap | None, out: list[bytes]) -> None:
    if emap is None:
        out.append(_b_token("NULL"))
    elif isinstance(emap, ConstantEventMap):
        out += [_b_token("CE"), _b_int(emap.answer)]
    elif isinstance(emap, TableEventMap):
        out += [_b_token("TE"), _b_int(emap.key), _b_uint(len(emap.table)), _b_token("(")]
        for e in emap.table:
            _emap_binary(e, out)
        out.append(_b_token(")"))
    else:
        vec = np.asarray(emap.yes_set, dtype="<i4").tobytes()
        out += [_b_token("SE"), _b_int(emap.key), b"\x04", struct.pack("<i", len(emap.yes_set))]
        out += [vec, _b_token("{")]
        _emap_binary(emap.yes, out)
        _emap_binary(emap.no, out)
        out.append(_b_token("}"))


def tree_to_binary(tree: ContextTree) -> bytes:
    """Kaldi's binary tree file (``\\0B`` header included), as ``copy-tree --binary=true``."""
    out = [b"\0B", _b_token("ContextDependency"), _b_int(tree.context_width)]
    out += [_b_int(tree.central_position), _b_token("ToPdf")]
    _emap_binary(tree.to_pdf, out)
    out.append(_b_token("EndContextDependency"))
    return b"".join(out)


def _emap_text(emap: EventMap | None, out: list[str]) -> None:
    if emap is None:
        out.append("NULL ")
    elif isinstance(emap, ConstantEventMap):
        out.append(f"CE {emap.answer} ")
    elif isinstance(emap, TableEventMap):
        out.append(f"TE {emap.key} {len(emap.table)} ( ")
        for e in emap.table:
            _emap_text(e, out)
        out.append(") \n")
    else:
        out.append(f"SE {emap.key} [ " + "".join(f"{v} " for v in emap.yes_set) + "]\n{ ")
        _emap_text(emap.yes, out)
        _emap_text(emap.no, out)
        out.append("} \n")


def tree_to_text(tree: ContextTree) -> str:
    """Kaldi's text tree file, as ``copy-tree --binary=false``."""
    out = [f"ContextDependency {tree.context_width} {tree.central_position} ToPdf "]
    _emap_text(tree.to_pdf, out)
    out.append("EndContextDependency ")
    return "".join(out)


def write_tree(tree: ContextTree, path: str | Path, binary: bool = True) -> None:
    """Write a Kaldi tree file atomically."""
    with atomic_write(path, "wb") as fh:
        fh.write(tree_to_binary(tree) if binary else tree_to_text(tree).encode())


class _Reader:
    """Token reader for Kaldi binary or text tree files."""

    def __init__(self, data: bytes, name: str):
        self.binary = data.startswith(b"\0B")
        self.name = name
        if self.binary:
            self.data, self.pos = data, 2
        else:
            self.toks, self.pos = data.decode().split(), 0

    def fail(self, what: str):
        raise ValueError(f"{self.name}: bad tree file: {what} (at position {self.pos})")

    def token(self) -> str:
        if not self.binary:
            if self.pos >= len(self.toks):
                self.fail("unexpected end")
            self.pos += 1
            return self.toks[self.pos - 1]
        end = self.data.find(b" ", self.pos)
        if end < 0:
            self.fail("unexpected end")
        tok, self.pos = self.data[self.pos : end].decode(), end + 1
        return tok

    def int(self, unsigned: bool = False) -> int:
        if not self.binary:
            return int(self.token())
        marker = 0xFC if unsigned else 4
        if self.data[self.pos] != marker:
            self.fail(f"expected a 4-byte {'un' if unsigned else ''}signed integer")
        (v,) = struct.unpack_from("<I" if unsigned else "<i", self.data, self.pos + 1)
        self.pos += 5
        return v

    def int_vector(self) -> tuple[int, ...]:
        if not self.binary:
            if self.token() != "[":
                self.fail("expected '['")
            out = []
            while (t := self.token()) != "]":
                out.append(int(t))
            return tuple(out)
        if self.data[self.pos] != 4:
            self.fail("expected an int32 vector")
        (n,) = struct.unpack_from("<i", self.data, self.pos + 1)
        vec = np.frombuffer(self.data, dtype="<i4", count=n, offset=self.pos + 5)
        self.pos += 5 + 4 * n
        return tuple(int(v) for v in vec)

    def expect(self, tok: str) -> None:
        if (t := self.token()) != tok:
            self.fail(f"expected {tok!r}, got {t!r}")

    def emap(self) -> EventMap | None:
        t = self.token()
        if t == "NULL":
            return None
        if t == "CE":
            return ConstantEventMap(self.int())
        if t == "TE":
            key, size = self.int(), self.int(unsigned=True)
            self.expect("(")
            table = tuple(self.emap() for _ in range(size))
            self.expect(")")
            return TableEventMap(key, table)
        if t == "SE":
            key, yes_set = self.int(), self.int_vector()
            self.expect("{")
            yes, no = self.emap(), self.emap()
            self.expect("}")
            return SplitEventMap(key, yes_set, yes, no)
        self.fail(f"unknown EventMap type {t!r}")


def parse_tree(data: bytes, name: str = "tree") -> ContextTree:
    """Parse a Kaldi tree file (binary or text) into a ContextTree."""
    r = _Reader(data, name)
    r.expect("ContextDependency")
    n, p = r.int(), r.int()
    r.expect("ToPdf")
    emap = r.emap()
    r.expect("EndContextDependency")
    return ContextTree(n, p, emap)


def read_tree_file(path: str | Path) -> ContextTree:
    return parse_tree(Path(path).read_bytes(), str(path))


def to_context_dependency(tree: ContextTree):
    """A ``kaldi_hmm_gmm.ContextDependency`` loaded from the tree's Kaldi binary form."""
    import kaldi_hmm_gmm as khg

    raw = tree_to_binary(tree)[2:]
    cd = khg.ContextDependency.__new__(khg.ContextDependency)
    cd.__setstate__((np.frombuffer(raw, dtype=np.int8).tolist(),))
    return cd


# ----------------------------------------------------------------------------- roots


@dataclass(frozen=True)
class Root:
    phones: tuple[int, ...]
    shared: bool  # all pdf-classes share one stub leaf
    split: bool  # the tree may split this root's leaves


def read_roots(path: str | Path) -> list[Root]:
    """Read ``phones/roots.int`` (``shared|not-shared split|not-split phone...`` per line)."""
    roots = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) < 3 or f[0] not in ("shared", "not-shared") or f[1] not in ("split", "not-split"):
            raise ValueError(f"{path}:{n}: expected 'shared|not-shared split|not-split phones'")
        roots.append(Root(tuple(int(x) for x in f[2:]), f[0] == "shared", f[1] == "split"))
    return roots


# ----------------------------------------------------------------------------- building


@dataclass
class TreeBuildResult:
    tree: ContextTree
    num_leaves: int
    num_splits: int
    split_gain: float  # total likelihood gain of the splits
    cluster_loss: float  # total likelihood lost by merging leaves
    count: float  # frames
    leaf_of_event: np.ndarray = field(repr=False)  # final pdf of each stats event

    @property
    def impr_per_frame(self) -> float:
        return (self.split_gain - self.cluster_loss) / max(self.count, 1.0)


def _stub(
    roots: Sequence[Root], num_pdf_classes: Mapping[int, int], central: int
) -> tuple[EventMap, list[tuple[int, int | None]]]:
    """Stub EventMap over the roots; returns it and, per stub leaf, (root index, pdf-class)."""
    leaves: list[tuple[int, int | None]] = []

    def build(idx: list[int]) -> EventMap:
        if len(idx) == 1:
            r = roots[idx[0]]
            if r.shared:
                leaves.append((idx[0], None))
                return ConstantEventMap(len(leaves) - 1)
            npc = {num_pdf_classes[p] for p in r.phones}
            if len(npc) != 1:
                raise ValueError(f"not-shared root {r.phones}: phones differ in pdf-class count")
            table = []
            for c in range(npc.pop()):
                leaves.append((idx[0], c))
                table.append(ConstantEventMap(len(leaves) - 1))
            return TableEventMap(KEY_PDF_CLASS, tuple(table))
        half = len(idx) // 2
        yes = tuple(sorted(p for i in idx[:half] for p in roots[i].phones))
        return SplitEventMap(central, yes, build(idx[:half]), build(idx[half:]))

    return build(list(range(len(roots)))), leaves


class _Splitter:
    """Best-question search over the events of a leaf, vectorised over questions."""

    def __init__(
        self,
        stats: TreeStats,
        questions: Mapping[int, Sequence[Question]],
        var_floor: float,
        min_count: float,
    ):
        self.events = stats.events
        self.stacked = stats.stacked()
        self.var_floor = var_floor
        self.min_count = min_count
        self.keys = sorted(k for k, qs in questions.items() if qs)
        self.questions = {k: list(questions[k]) for k in self.keys}
        self.cols = {k: stats.column(k) for k in self.keys}
        self.member: dict[int, np.ndarray] = {}
        for k in self.keys:
            vmax = max(
                int(self.events[:, self.cols[k]].max(initial=0)),
                *(max(q) for q in self.questions[k]),
            )
            m = np.zeros((len(self.questions[k]), vmax + 1), dtype=np.float64)
            for i, q in enumerate(self.questions[k]):
                m[i, list(q)] = 1.0
            self.member[k] = m

    def best(self, idx: np.ndarray) -> tuple[float, int, int]:
        """(gain, key, question index) of the best split of events ``idx``; gain -inf if none."""
        best = (-np.inf, 0, -1)
        if len(idx) < 2:
            return best
        st = self.stacked[idx]
        total = st.sum(axis=0)
        base = gauss_objf(total, self.var_floor)[0]
        for k in self.keys:
            vals = self.events[idx, self.cols[k]]
            uniq, inv = np.unique(vals, return_inverse=True)
            if len(uniq) < 2:
                continue
            grouped = np.zeros((len(uniq), st.shape[1]))
            np.add.at(grouped, inv.reshape(-1), st)
            yes = self.member[k][:, uniq] @ grouped
            no = total[None, :] - yes
            ok = (yes[:, 0] > 0) & (no[:, 0] > 0)
            if self.min_count > 0:
                ok &= (yes[:, 0] >= self.min_count) & (no[:, 0] >= self.min_count)
            if not ok.any():
                continue
            gain = gauss_objf(yes, self.var_floor) + gauss_objf(no, self.var_floor) - base
            gain[~ok] = -np.inf
            q = int(np.argmax(gain))
            if gain[q] > best[0]:
                best = (float(gain[q]), k, q)
        return best


class _GroupClusterer:
    """Bottom-up merging of the leaves of one root, with a vectorised pair-cost matrix."""

    def __init__(self, ids: list[int], stats: np.ndarray, var_floor: float):
        self.ids = list(ids)
        self.stats = np.array(stats, dtype=np.float64)
        self.var_floor = var_floor
        self.active = np.ones(len(ids), dtype=bool)
        self.objf = gauss_objf(self.stats, var_floor)
        k, w = self.stats.shape
        pair = (self.stats[:, None, :] + self.stats[None, :, :]).reshape(k * k, w)
        cost = self.objf[:, None] + self.objf[None, :] - gauss_objf(pair, var_floor).reshape(k, k)
        cost[np.tril_indices(k)] = np.inf
        self.cost = cost

    @property
    def size(self) -> int:
        return int(self.active.sum())

    def best(self) -> tuple[float, int, int]:
        """(loss, i, j) of the cheapest merge (i < j, positions in ``ids``)."""
        if self.size < 2:
            return np.inf, -1, -1
        flat = int(np.argmin(self.cost))
        i, j = divmod(flat, self.cost.shape[1])
        return float(self.cost[i, j]), i, j

    def merge(self, i: int, j: int) -> None:
        """Merge cluster j into cluster i."""
        self.stats[i] += self.stats[j]
        self.active[j] = False
        self.cost[j, :] = np.inf
        self.cost[:, j] = np.inf
        self.objf[i] = gauss_objf(self.stats[i], self.var_floor)[0]
        others = np.flatnonzero(self.active)
        others = others[others != i]
        row = (
            self.objf[i]
            + self.objf[others]
            - gauss_objf(self.stats[i][None, :] + self.stats[others], self.var_floor)
        )
        lo, hi = np.minimum(others, i), np.maximum(others, i)
        self.cost[lo, hi] = row


def build_tree(
    stats: TreeStats,
    roots: Sequence[Root],
    questions: Mapping[int, Sequence[Question]],
    num_pdf_classes: Mapping[int, int],
    max_leaves: int,
    thresh: float = 0.0,
    cluster_thresh: float = -1.0,
    min_count: float = 0.0,
    var_floor: float = 0.01,
    round_num_leaves: bool = True,
) -> TreeBuildResult:
    """Build a tied-state tree from tree statistics (see the module docstring).

    ``questions``: per event key (-1 = pdf-class, 0..N-1 = context positions) the phone/pdf-class
    sets to ask about; ``num_pdf_classes``: phone -> number of pdf-classes (from the topology);
    ``thresh``: smallest gain for a split; ``min_count``: smallest frame count of a new leaf
    (0 = no limit, as Kaldi).
    """
    n_ctx, central = stats.context_width, stats.central_position
    stub, stub_leaves = _stub(roots, num_pdf_classes, central)
    # assign events to stub leaves
    phone2root = {p: i for i, r in enumerate(roots) for p in r.phones}
    cen = stats.events[:, stats.column(central)]
    pdfc = stats.events[:, 0]
    key2leaf = {(r, c): j for j, (r, c) in enumerate(stub_leaves)}
    leaf_of = np.empty(len(cen), dtype=np.int64)
    for e, (ph, c) in enumerate(zip(cen.tolist(), pdfc.tolist(), strict=True)):
        r = phone2root.get(ph)
        if r is None:
            raise ValueError(f"tree stats: central phone {ph} is in no root of roots.int")
        j = key2leaf.get((r, None), key2leaf.get((r, c)))
        if j is None:
            raise ValueError(f"tree stats: phone {ph} has no pdf-class {c} in the topology")
        leaf_of[e] = j
    splitter = _Splitter(stats, questions, var_floor, min_count)
    members = {j: np.flatnonzero(leaf_of == j) for j in range(len(stub_leaves))}
    stub_of = {j: j for j in members}
    heap: list[tuple[float, int, int, int]] = []
    for j, (r, _c) in enumerate(stub_leaves):
        if roots[r].split:
            g, k, q = splitter.best(members[j])
            if q >= 0:
                heapq.heappush(heap, (-g, j, k, q))
    splits: dict[int, tuple[int, Question, int, int]] = {}
    num_leaves, split_gain, last_gain = len(stub_leaves), 0.0, 0.0
    next_id = len(stub_leaves)
    while heap and num_leaves < max_leaves:
        neg, j, k, q = heapq.heappop(heap)
        if -neg <= thresh:
            break
        qset = splitter.questions[k][q]
        idx = members.pop(j)
        yes_mask = np.isin(stats.events[idx, splitter.cols[k]], qset)
        y, n = next_id, next_id + 1  # leaf j becomes internal; y, n are new leaves
        next_id += 2
        members[y], members[n] = idx[yes_mask], idx[~yes_mask]
        stub_of[y] = stub_of[n] = stub_of[j]
        splits[j] = (k, qset, y, n)
        num_leaves += 1
        split_gain += -neg
        last_gain = -neg
        for child in (y, n):
            g, kk, qq = splitter.best(members[child])
            if qq >= 0:
                heapq.heappush(heap, (-g, child, kk, qq))
    log.info(
        "build-tree: %d splits, %d leaves, gain %.2f over %.0f frames",
        len(splits),
        num_leaves,
        split_gain,
        stats.counts.sum(),
    )
    # bottom-up clustering of leaves under the same stub leaf
    leaf_stats = {j: splitter.stacked[m].sum(axis=0) for j, m in members.items()}
    if cluster_thresh < 0:
        cluster_thresh = last_gain
    rep = {j: j for j in members}  # leaf -> representative cluster leaf
    by_root: dict[int, list[int]] = {}
    for j in members:
        if leaf_stats[j][0] > 0:  # leaves without data are never merged (Kaldi keeps them)
            by_root.setdefault(stub_of[j], []).append(j)
    groups = [
        _GroupClusterer(ids, np.stack([leaf_stats[j] for j in ids]), var_floor)
        for ids in by_root.values()
        if len(ids) > 1
    ]
    cluster_loss = 0.0
    n_clusters = len(members)

    def merge(g: _GroupClusterer, i: int, j: int, cost: float) -> None:
        nonlocal cluster_loss, n_clusters
        g.merge(i, j)
        a, b = g.ids[i], g.ids[j]
        for leaf, r in rep.items():
            if r == b:
                rep[leaf] = a
        cluster_loss += cost
        n_clusters -= 1

    if cluster_thresh > 0:
        for g in groups:
            while True:
                cost, i, j = g.best()
                if cost >= cluster_thresh:
                    break
                merge(g, i, j, cost)
    if round_num_leaves and n_clusters > 8:
        while n_clusters % 8:
            cands = [(g.best(), g) for g in groups if g.size > 1]
            if not cands:
                break
            (cost, i, j), g = min(cands, key=lambda t: t[0][0])
            merge(g, i, j, cost)
    log.info(
        "build-tree: clustering (thresh %.2f) -> %d leaves, loss %.2f",
        cluster_thresh,
        n_clusters,
        cluster_loss,
    )

    # assemble the EventMap, number pdfs in depth-first order of first appearance
    def expand(a: int) -> EventMap:
        if a in splits:
            k, qset, y, n = splits[a]
            return SplitEventMap(k, tuple(qset), expand(y), expand(n))
        return ConstantEventMap(rep[a])

    raw = map_answers(stub, expand)
    order: dict[int, int] = {}

    def renumber(a: int) -> EventMap:
        if a not in order:
            order[a] = len(order)
        return ConstantEventMap(order[a])

    final = map_answers(raw, renumber)
    leaf_of_event = np.empty(len(leaf_of), dtype=np.int64)
    for j, m in members.items():
        leaf_of_event[m] = order[rep[j]]
    tree = ContextTree(n_ctx, central, final)
    return TreeBuildResult(
        tree=tree,
        num_leaves=len(order),
        num_splits=len(splits),
        split_gain=split_gain,
        cluster_loss=cluster_loss,
        count=float(stats.counts.sum()),
        leaf_of_event=leaf_of_event,
    )
