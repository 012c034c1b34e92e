"""Arc sorting that reproduces OpenFst 1.7's ``fstarcsort`` arc order exactly.

OpenFst sorts each state's arcs with ``std::sort`` (not stable) and compares ``(olabel, ilabel)``
for ``--sort_type=olabel`` (``(ilabel, olabel)`` for ilabel). Ties keep whatever order
libstdc++'s introsort leaves, so to write the same binary FST as Kaldi we emulate that algorithm
(median-of-three introsort, heapsort fallback, final insertion sort) step by step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import kaldifst

log = logging.getLogger(__name__)

T = TypeVar("T")
_THRESHOLD = 16  # libstdc++ _S_threshold


def std_sort(a: list[T], key: Callable[[T], Any]) -> list[T]:
    """Sort ``a`` in place exactly as libstdc++'s ``std::sort`` with ``key(x) < key(y)``."""
    keys = [key(x) for x in a]
    idx = list(range(len(a)))
    _introsort_all(idx, lambda i, j: keys[i] < keys[j])
    a[:] = [a[i] for i in idx]
    return a


def _introsort_all(a: list[int], less: Callable[[int, int], bool]) -> None:
    n = len(a)
    if n < 2:
        return
    _introsort_loop(a, 0, n, 2 * (n.bit_length() - 1), less)
    if n > _THRESHOLD:
        _insertion_sort(a, 0, _THRESHOLD, less)
        for i in range(_THRESHOLD, n):
            _unguarded_linear_insert(a, i, less)
    else:
        _insertion_sort(a, 0, n, less)


def _introsort_loop(a: list[int], first: int, last: int, depth: int, less) -> None:
    while last - first > _THRESHOLD:
        if depth == 0:
            _heap_sort(a, first, last, less)
            return
        depth -= 1
        _move_median_to_first(a, first, first + 1, first + (last - first) // 2, last - 1, less)
        cut = _unguarded_partition(a, first + 1, last, first, less)
        _introsort_loop(a, cut, last, depth, less)
        last = cut


def _move_median_to_first(a: list[int], r: int, i: int, j: int, k: int, less) -> None:
    if less(a[i], a[j]):
        t = j if less(a[j], a[k]) else (k if less(a[i], a[k]) else i)
    elif less(a[i], a[k]):
        t = i
    elif less(a[j], a[k]):
        t = k
    else:
        t = j
    a[r], a[t] = a[t], a[r]


def _unguarded_partition(a: list[int], first: int, last: int, pivot: int, less) -> int:
    while True:
        while less(a[first], a[pivot]):
            first += 1
        last -= 1
        while less(a[pivot], a[last]):
            last -= 1
        if not first < last:
            return first
        a[first], a[last] = a[last], a[first]
        first += 1


def _insertion_sort(a: list[int], first: int, last: int, less) -> None:
    for i in range(first + 1, last):
        v = a[i]
        if less(v, a[first]):
            a[first + 1 : i + 1] = a[first:i]
            a[first] = v
        else:
            _unguarded_linear_insert(a, i, less)


def _unguarded_linear_insert(a: list[int], i: int, less) -> None:
    v = a[i]
    while less(v, a[i - 1]):
        a[i] = a[i - 1]
        i -= 1
    a[i] = v


def _heap_sort(a: list[int], first: int, last: int, less) -> None:
    """``std::partial_sort(first, last, last)``: make_heap then sort_heap."""
    n = last - first
    if n >= 2:
        parent = (n - 2) // 2
        while True:
            _adjust_heap(a, first, parent, n, a[first + parent], less)
            if parent == 0:
                break
            parent -= 1
    while last - first > 1:
        last -= 1
        v = a[last]
        a[last] = a[first]
        _adjust_heap(a, first, 0, last - first, v, less)


def _adjust_heap(a: list[int], first: int, hole: int, n: int, value: int, less) -> None:
    top = hole
    child = hole
    while child < (n - 1) // 2:
        child = 2 * (child + 1)
        if less(a[first + child], a[first + child - 1]):
            child -= 1
        a[first + hole] = a[first + child]
        hole = child
    if n % 2 == 0 and child == (n - 2) // 2:
        child = 2 * (child + 1)
        a[first + hole] = a[first + child - 1]
        hole = child - 1
    parent = (hole - 1) // 2
    while hole > top and less(a[first + parent], value):
        a[first + hole] = a[first + parent]
        hole = parent
        parent = (hole - 1) // 2
    a[first + hole] = value


FST_PROPERTIES = 0x0000FFFFFFFF0007  # OpenFst kFstProperties (binary | trinary)


def arcsort(fst: kaldifst.StdVectorFst, sort_type: str = "olabel") -> None:
    """``fstarcsort --sort_type=...`` in place, with OpenFst 1.7's comparator and arc order."""
    if sort_type == "olabel":

        def key(a: kaldifst.StdArc) -> tuple[int, int]:
            return (a.olabel, a.ilabel)
    elif sort_type == "ilabel":

        def key(a: kaldifst.StdArc) -> tuple[int, int]:
            return (a.ilabel, a.olabel)
    else:
        raise ValueError(f"sort_type must be 'ilabel' or 'olabel', got {sort_type!r}")
    original: dict[int, list[kaldifst.StdArc]] = {}
    for s in range(fst.num_states):
        arcs = []
        it = kaldifst.ArcIterator(fst, s)
        while not it.done:
            a = it.value
            arcs.append(kaldifst.StdArc(a.ilabel, a.olabel, a.weight, a.nextstate))
            it.next()
        if len(arcs) > 1:
            original[s] = arcs
    # kaldifst's own arcsort gives the property bits OpenFst stores after sorting; the order of
    # tied arcs is then fixed below.
    kaldifst.arcsort(fst, sort_type=sort_type)
    props = fst.properties(FST_PROPERTIES, False)
    for s, arcs in original.items():
        std_sort(arcs, key)
        fst.delete_arcs(s, fst.num_arcs(s))
        for a in arcs:
            fst.add_arc(s, a)
    fst.set_properties(props, FST_PROPERTIES)
