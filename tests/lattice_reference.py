"""pykd's lattice determinisation in Python: the reference the compiled version
(pykd/decode/latdet.cpp, a port of this code) is tested against, arc for arc."""

from __future__ import annotations

import heapq

from pykd.decode.decoder import _topo_order
from pykd.decode.latdet import DeterminizeLimitError
from pykd.kaldi.lattice_io import CompactLattice, Lattice

_DELTA = 1.0 / 1024  # quantisation of weights when hashing determinised states (Kaldi's delta)


Elem = tuple[float, float, tuple[int, ...]]


def _better(x: Elem, y: Elem) -> bool:
    """Kaldi's CompactLatticeWeight order: lower graph+acoustic wins; ties by graph, string."""
    return (x[0] + x[1], x[0], x[2]) < (y[0] + y[1], y[0], y[2])


def determinize_lattice(lat: Lattice, max_work: int | None = None) -> CompactLattice:
    """Word-level determinisation of an acyclic state-level lattice into a CompactLattice.

    Each word sequence keeps its best path (graph + acoustic as stored); transition-ids become
    the arc strings, pushed as early as they are common to all paths. Input should be pruned.
    Raises :class:`DeterminizeLimitError` after ``max_work`` closure steps (a weak model's
    lattice can make the subset construction explode).
    """
    n = lat.num_states
    if n == 0:
        return CompactLattice()
    order = _topo_order(n, [[a[0] for a in arcs] for arcs in lat.arcs], lat.start)
    rank = {s: i for i, s in enumerate(order)}
    is_output = [
        bool(lat.arcs[s] and any(a[2] for a in lat.arcs[s])) or s in lat.finals for s in range(n)
    ]

    work = 0

    def closure(subset: dict[int, Elem]) -> dict[int, Elem]:
        nonlocal work
        heap = [(rank[s], s) for s in subset]
        heapq.heapify(heap)
        done = set()
        while heap:
            _, s = heapq.heappop(heap)
            if s in done:
                continue
            done.add(s)
            work += 1
            if max_work is not None and work > max_work:
                raise DeterminizeLimitError(f"more than {max_work} closure steps")
            g, a, tids = subset[s]
            for d, tid, word, ag, aa in lat.arcs[s]:
                if word:
                    continue
                e = (g + ag, a + aa, tids + (tid,) if tid else tids)
                if d not in subset or _better(e, subset[d]):
                    subset[d] = e
                    heapq.heappush(heap, (rank[d], d))
        return subset

    def key_of(subset: dict[int, Elem]) -> tuple:
        return tuple(
            (s, round(g / _DELTA), round(a / _DELTA), t) for s, (g, a, t) in sorted(subset.items())
        )

    start = {s: e for s, e in closure({lat.start: (0.0, 0.0, ())}).items() if is_output[s]}
    out = CompactLattice(start=0, arcs=[[]])
    ids = {key_of(start): 0}
    queue = [start]
    while queue:
        idx = len(out.arcs) - len(queue)  # det-states are processed in creation order
        subset = queue.pop(0)
        full = closure(dict(subset))
        best_final: Elem | None = None
        groups: dict[int, dict[int, Elem]] = {}
        for s, (g, a, tids) in full.items():
            if s in lat.finals:
                fg, fa = lat.finals[s]
                e = (g + fg, a + fa, tids)
                if best_final is None or _better(e, best_final):
                    best_final = e
            for d, tid, word, ag, aa in lat.arcs[s]:
                if not word:
                    continue
                e = (g + ag, a + aa, tids + (tid,) if tid else tids)
                grp = groups.setdefault(word, {})
                if d not in grp or _better(e, grp[d]):
                    grp[d] = e
        if best_final is not None:
            out.finals[idx] = best_final
        for word in sorted(groups):
            dest = {s: e for s, e in closure(groups[word]).items() if is_output[s]}
            if not dest:
                continue
            g0, a0, _ = min(dest.values(), key=lambda e: (e[0] + e[1], e[0], e[2]))
            strings = [e[2] for e in dest.values()]
            plen = 0
            shortest = min(len(t) for t in strings)
            while plen < shortest and all(t[plen] == strings[0][plen] for t in strings):
                plen += 1
            prefix = strings[0][:plen]
            norm = {s: (g - g0, a - a0, t[plen:]) for s, (g, a, t) in dest.items()}
            k = key_of(norm)
            if k not in ids:
                ids[k] = len(out.arcs)
                out.arcs.append([])
                queue.append(norm)
            out.arcs[idx].append((ids[k], word, g0, a0, prefix))
    return out
