"""The decoder's lattice search, pruning and determinisation in compiled code (``latdet.cpp``).

No Python package offers a lattice-generating search with max-active pruning or Kaldi's lattice
determinisation (words, transition-id strings, the CompactLattice semiring), so pykd has its own,
written in C++ with a plain C interface and loaded with ctypes: the decoder's hot path has no
per-token or per-arc Python loop. The library is built from ``latdet.cpp`` with the system C++
compiler (``c++``/``g++``, C++17) into ``_latdet.so`` next to it (``pykd.io.native``): by
``tools/install.sh`` (``python -m pykd.decode.latdet``), or on first use when it is missing or
older than the source.

    graph = DecodingGraph.from_fst(hclg)           # a kaldifst.StdVectorFst
    raw, status = graph.search(mat, beam, max_active, min_active, lattice_beam)
    raw = RawLattice.from_openfst(data)            # or: kaldifst.Lattice.write() bytes
    raw.best_cost()                                # graph + acoustic of the best path
    clat = raw.determinize(beam, max_work, 1/acwt)  # CompactLattice, acoustic costs unscaled
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from pathlib import Path

import kaldifst
import numpy as np

from pykd.io import native
from pykd.kaldi.lattice_io import CompactLattice, Lattice

SOURCE = Path(__file__).with_name("latdet.cpp")
LIBRARY = Path(__file__).with_name("_latdet.so")
_lib: ctypes.CDLL | None = None


class DeterminizeLimitError(RuntimeError):
    """Determinisation would take more than the allowed work."""


def build(force: bool = False) -> Path:
    """Compile ``latdet.cpp`` into ``_latdet.so`` (atomically) unless it is up to date."""
    return native.build(SOURCE, LIBRARY, force=force)


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(str(build()))
        vp, dp, ip, lp = ctypes.c_void_p, ctypes.c_double, ctypes.c_int, ctypes.c_long
        p_int = np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")
        p_dbl = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
        p_long = np.ctypeslib.ndpointer(np.int64, flags="C_CONTIGUOUS")
        p_chr = np.ctypeslib.ndpointer(np.int8, flags="C_CONTIGUOUS")
        lib.latdet_parse.argtypes = [ctypes.c_char_p, lp, ctypes.c_char_p, ip]
        lib.latdet_parse.restype = vp
        lib.latdet_free_lattice.argtypes = [vp]
        lib.latdet_best_cost.argtypes = [vp]
        lib.latdet_best_cost.restype = dp
        lib.latdet_determinize.argtypes = [vp, dp, lp, dp, ctypes.POINTER(ip)]
        lib.latdet_determinize.restype = vp
        lib.latdet_free_compact.argtypes = [vp]
        lib.latdet_compact_sizes.argtypes = [vp, p_long]
        lib.latdet_compact_export.argtypes = [
            vp, p_int, p_int, p_int, p_dbl, p_dbl, p_int, p_dbl, p_dbl, p_long, p_int,
        ]  # fmt: skip
        lib.latdet_lattice_sizes.argtypes = [vp, p_long]
        lib.latdet_lattice_export.argtypes = [
            vp, p_int, p_int, p_int, p_int, p_dbl, p_dbl, p_int, p_dbl, p_dbl,
        ]  # fmt: skip
        p_flt = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
        lib.latdet_graph_parse.argtypes = [ctypes.c_char_p, lp, ctypes.c_char_p, ip]
        lib.latdet_graph_parse.restype = vp
        lib.latdet_graph_free.argtypes = [vp]
        lib.latdet_graph_set_columns.argtypes = [vp, p_int, ip, ctypes.POINTER(ip)]
        lib.latdet_graph_set_columns.restype = ip
        lib.latdet_search.argtypes = [
            vp, p_flt, ip, ip, dp, ip, ip, dp, ctypes.POINTER(ip), ctypes.POINTER(ip),
        ]  # fmt: skip
        lib.latdet_search.restype = vp
        lib.latdet_graph_levels.argtypes = [lp, lp, p_long, p_long, p_chr, lp, p_chr] + [p_long] * 3
        lib.latdet_graph_levels.restype = lp
        _lib = lib
    return _lib


class RawLattice:
    """A state-level lattice held by the compiled library."""

    def __init__(self, handle: int) -> None:
        self._handle = handle

    @classmethod
    def from_openfst(cls, data: bytes, where: str = "raw lattice") -> RawLattice:
        """From a ``lattice4`` VectorFst in OpenFst's binary form."""
        lib = _library()
        err = ctypes.create_string_buffer(256)
        handle = lib.latdet_parse(data, len(data), err, len(err))
        if not handle:
            raise ValueError(f"{where}: {err.value.decode()}")
        return cls(handle)

    def __del__(self) -> None:
        if getattr(self, "_handle", None):
            _library().latdet_free_lattice(self._handle)
            self._handle = None

    def to_lattice(self) -> Lattice:
        """A Python copy (state-level :class:`Lattice`)."""
        lib = _library()
        sizes = np.zeros(4, dtype=np.int64)
        lib.latdet_lattice_sizes(self._handle, sizes)
        num_states, start, num_arcs, num_finals = (int(x) for x in sizes)
        src, dst, il, ol = (np.empty(num_arcs, np.int32) for _ in range(4))
        g, a = np.empty(num_arcs), np.empty(num_arcs)
        fin, fg, fa = np.empty(num_finals, np.int32), np.empty(num_finals), np.empty(num_finals)
        lib.latdet_lattice_export(self._handle, src, dst, il, ol, g, a, fin, fg, fa)
        lat = Lattice(start=start, arcs=[[] for _ in range(num_states)])
        cols = (src, dst, il, ol, g, a)
        for s_, d, i, o, gg, aa in zip(*(c.tolist() for c in cols), strict=True):
            lat.arcs[s_].append((d, i, o, gg, aa))
        for s_, gg, aa in zip(fin.tolist(), fg.tolist(), fa.tolist(), strict=True):
            lat.finals[s_] = (gg, aa)
        return lat

    def best_cost(self) -> float:
        """Graph + acoustic cost of the best path (inf without a successful path)."""
        cost = _library().latdet_best_cost(self._handle)
        if cost != cost:
            raise ValueError("lattice has a cycle")
        return cost

    def determinize(self, beam: float, max_work: int, acoustic_factor: float) -> CompactLattice:
        """Prune at ``beam``, determinise (word sequences, best path each, transition-id
        strings), prune again, multiply acoustic costs by ``acoustic_factor``. Raises
        :class:`DeterminizeLimitError` after ``max_work`` closure steps."""
        lib = _library()
        status = ctypes.c_int(0)
        handle = lib.latdet_determinize(
            self._handle, beam, max_work, acoustic_factor, ctypes.byref(status)
        )
        if status.value == 1:
            raise DeterminizeLimitError(f"more than {max_work} closure steps")
        if status.value != 0 or not handle:
            raise ValueError("lattice has a cycle")
        try:
            return _export(lib, handle)
        finally:
            lib.latdet_free_compact(handle)


class SearchStatus:
    """What :meth:`DecodingGraph.search` reports."""

    FINAL = 0  # a final state was reached
    PARTIAL = 1  # no final state at the last frame: every last-frame token made final
    PRUNED = 2  # every token was pruned before the last frame: no lattice


class DecodingGraph:
    """An HCLG graph held by the compiled library for :meth:`search`."""

    def __init__(self, handle: int, num_states: int) -> None:
        self._handle = handle
        self.num_states = num_states

    @classmethod
    def from_fst(cls, fst: kaldifst.StdVectorFst) -> DecodingGraph:
        """From a kaldifst.StdVectorFst (copied through its OpenFst binary form)."""
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, tmp = tempfile.mkstemp(suffix=".fst", dir=shm)
        os.close(fd)
        try:
            if not fst.write(tmp):
                raise ValueError("could not serialise the decoding graph")
            data = Path(tmp).read_bytes()
        finally:
            os.unlink(tmp)
        lib = _library()
        err = ctypes.create_string_buffer(256)
        handle = lib.latdet_graph_parse(data, len(data), err, len(err))
        if not handle:
            raise ValueError(f"decoding graph: {err.value.decode()}")
        return cls(handle, fst.num_states)

    def __del__(self) -> None:
        if getattr(self, "_handle", None):
            _library().latdet_graph_free(self._handle)
            self._handle = None

    def set_columns(self, col_of_label: np.ndarray) -> None:
        """Let later searches read matrices whose column for transition-id ``t`` is
        ``col_of_label[t]`` (e.g. its pdf: frames x pdfs, no per-utterance gather)."""
        cols = np.ascontiguousarray(col_of_label, dtype=np.int32)
        bad = ctypes.c_int(0)
        if not _library().latdet_graph_set_columns(
            self._handle, cols, len(cols), ctypes.byref(bad)
        ):
            raise ValueError(
                f"the graph has transition-id {bad.value}, which the model does not have "
                f"({len(cols) - 1} transition-ids; graph and model do not match)"
            )

    def search(
        self,
        mat: np.ndarray,
        beam: float,
        max_active: int,
        min_active: int,
        lattice_beam: float,
    ) -> tuple[RawLattice | None, int]:
        """Beam search of ``mat`` (scaled log-likelihoods, frames x transition-ids with column j
        = transition-id j+1, or as :meth:`set_columns` mapped them) with max-active pruning:
        the raw state-level lattice, pruned to ``lattice_beam`` (None when every token was
        pruned), and a :class:`SearchStatus`."""
        mat = np.ascontiguousarray(mat, dtype=np.float32)
        if mat.ndim != 2:
            raise ValueError(f"expected a (frames, columns) matrix, got {mat.shape}")
        status, bad = ctypes.c_int(0), ctypes.c_int(0)
        handle = _library().latdet_search(
            self._handle, mat, mat.shape[0], mat.shape[1], beam, max_active, min_active,
            lattice_beam, ctypes.byref(status), ctypes.byref(bad),
        )  # fmt: skip
        if status.value == 3:
            raise ValueError(
                f"the graph has transition-id {bad.value}, beyond the likelihoods' "
                f"{mat.shape[1]} columns (graph and model do not match)"
            )
        return (RawLattice(handle) if handle else None), status.value


def _export(lib: ctypes.CDLL, handle: int) -> CompactLattice:
    sizes = np.zeros(5, dtype=np.int64)
    lib.latdet_compact_sizes(handle, sizes)
    num_states, start, num_arcs, num_finals, num_tids = (int(x) for x in sizes)
    arc_src, arc_dst, arc_word = (np.empty(num_arcs, np.int32) for _ in range(3))
    arc_g, arc_a = np.empty(num_arcs), np.empty(num_arcs)
    fin_state = np.empty(num_finals, np.int32)
    fin_g, fin_a = np.empty(num_finals), np.empty(num_finals)
    tid_off = np.empty(num_arcs + num_finals + 1, np.int64)
    tids = np.empty(max(num_tids, 1), np.int32)
    lib.latdet_compact_export(
        handle, arc_src, arc_dst, arc_word, arc_g, arc_a, fin_state, fin_g, fin_a, tid_off, tids
    )
    strings = np.split(tids[:num_tids], tid_off[1:-1]) if num_arcs + num_finals else []
    clat = CompactLattice(start=start, arcs=[[] for _ in range(num_states)])
    arc_cols = (arc_src, arc_dst, arc_word, arc_g, arc_a)
    arcs = zip(*(c.tolist() for c in arc_cols), strings[:num_arcs], strict=True)
    for s, d, w, g, a, tid_string in arcs:
        clat.arcs[s].append((d, w, g, a, tuple(tid_string.tolist())))
    fin_cols = (fin_state, fin_g, fin_a)
    finals = zip(*(c.tolist() for c in fin_cols), strings[num_arcs:], strict=True)
    for s, g, a, tid_string in finals:
        clat.finals[s] = (g, a, tuple(tid_string.tolist()))
    return clat


if __name__ == "__main__":  # tools/install.sh: build (or rebuild with --force)
    native.build_command(build)


class GraphLevelsError(ValueError):
    """A lattice graph without a complete path, with a cycle, or with paths of unequal length."""


def graph_levels(
    num_states: int,
    src: np.ndarray,
    dst: np.ndarray,
    emit: np.ndarray,
    start: int,
    is_final: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per state of an acyclic lattice graph: level (longest path from ``start`` in arcs; -1 for
    a state on no complete path) and time (frames consumed before it; -1 for dead states).

    Raises :class:`GraphLevelsError` if no final state is reachable, the live part has a cycle,
    or a state is reached after different numbers of frames.
    """
    lib = _library()
    level = np.empty(num_states, dtype=np.int64)
    time = np.empty(num_states, dtype=np.int64)
    info = np.zeros(3, dtype=np.int64)
    status = lib.latdet_graph_levels(
        num_states,
        int(src.shape[0]),
        np.ascontiguousarray(src, dtype=np.int64),
        np.ascontiguousarray(dst, dtype=np.int64),
        np.ascontiguousarray(emit, dtype=np.int8),
        int(start),
        np.ascontiguousarray(is_final, dtype=np.int8),
        level,
        time,
        info,
    )
    if status == 1:
        raise GraphLevelsError("empty lattice (no path from the start to a final state)")
    if status == 2:
        raise GraphLevelsError("lattice is cyclic")
    if status == 3:
        raise GraphLevelsError(
            "lattice paths do not all have the same number of frames "
            f"(a state is reached after {info[1]} and after {info[2]} frames)"
        )
    return level, time
