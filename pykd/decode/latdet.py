"""Lattice pruning and determinisation in compiled code (``latdet.cpp``), for the decoder.

No Python package does Kaldi's lattice determinisation (words, transition-id strings, the
CompactLattice semiring), so pykd has its own, written in C++ with a plain C interface and loaded
with ctypes: the decoder's hot path has no per-arc Python loop. The library is built from
``latdet.cpp`` with the system C++ compiler (``c++``/``g++``, C++17) into ``_latdet.so`` next to
it: by ``tools/install.sh`` (``python -m pykd.decode.latdet``), or on first use when it is missing
or older than the source.

    raw = RawLattice.from_openfst(data)            # kaldifst.Lattice.write() bytes
    raw.best_cost()                                # graph + acoustic of the best path
    clat = raw.determinize(beam, max_work, 1/acwt)  # CompactLattice, acoustic costs unscaled
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from pykd.kaldi.lattice_io import CompactLattice

SOURCE = Path(__file__).with_name("latdet.cpp")
LIBRARY = Path(__file__).with_name("_latdet.so")
COMPILE_FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC")

_lib: ctypes.CDLL | None = None


class LatdetBuildError(RuntimeError):
    """The lattice library could not be built (no C++ compiler, or it failed)."""


class DeterminizeLimitError(RuntimeError):
    """Determinisation would take more than the allowed work."""


def build(force: bool = False) -> Path:
    """Compile ``latdet.cpp`` into ``_latdet.so`` (atomically) unless it is up to date."""
    if not force and LIBRARY.is_file() and LIBRARY.stat().st_mtime >= SOURCE.stat().st_mtime:
        return LIBRARY
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise LatdetBuildError(
            f"no C++ compiler (c++/g++, or $CXX) to build {LIBRARY.name} from {SOURCE}; "
            "install one (Debian: apt-get install g++) and run tools/install.sh"
        )
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=LIBRARY.parent)
    os.close(fd)
    proc = subprocess.run(
        [compiler, *COMPILE_FLAGS, "-o", tmp, str(SOURCE)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        os.unlink(tmp)
        raise LatdetBuildError(f"{compiler} failed to build {SOURCE}:\n{proc.stderr[-3000:]}")
    os.chmod(tmp, 0o755)
    os.replace(tmp, LIBRARY)
    return LIBRARY


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(str(build()))
        vp, dp, ip, lp = ctypes.c_void_p, ctypes.c_double, ctypes.c_int, ctypes.c_long
        p_int = np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")
        p_dbl = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
        p_long = np.ctypeslib.ndpointer(np.int64, flags="C_CONTIGUOUS")
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
    try:
        print(f"{build(force='--force' in sys.argv[1:])}: up to date")
    except LatdetBuildError as err:
        sys.exit(str(err))
