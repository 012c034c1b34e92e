"""Kaldi model files: topology, tree, final.mdl (TransitionModel + AmDiagGmm), alignments.

Objects are kaldi_hmm_gmm's (``HmmTopology``, ``ContextDependency``, ``TransitionModel``,
``AmDiagGmm``); the files are Kaldi's own formats, binary (``\\0B`` header) or text, so that real
Kaldi binaries (gmm-copy, copy-tree, show-transitions, ...) read what we write and vice versa.

How objects are built from a file (kaldi_hmm_gmm has no Kaldi-format reader for most of them):

- tree: ``ContextDependency.__getstate__`` *is* Kaldi's binary serialisation (without ``\\0B``),
  so binary trees load with ``__setstate__``; text trees are transcoded to that binary form.
- topology: ``HmmTopology.read(text)`` takes Kaldi's text form; a binary one is rewritten as text.
- TransitionModel: its pickle state is (tuples, topo, state2id, id2state, id2pdf, num_pdfs,
  log_probs, non_self_loop_log_probs); we rebuild it from the file's triples and log-probs, so the
  log-probs are Kaldi's exactly (float32).
- AmDiagGmm / DiagGmm: pickle state per pdf is (weights, inv_vars, means_invvars), float32.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
import struct
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import _kaldi_hmm_gmm
import kaldi_hmm_gmm as khg
import numpy as np

from pykd.io.atomic import atomic_write
from pykd.io.compressed import kaldiio
from pykd.io.jobs import job_files

log = logging.getLogger(__name__)

__all__ = [
    "KaldiFormatError",
    "read_topo",
    "write_topo",
    "read_tree",
    "write_tree",
    "tree_from_bytes",
    "tree_to_bytes",
    "read_model",
    "write_model",
    "model_bytes",
    "read_transition_model",
    "read_am_gmm",
    "build_transition_model",
    "transition_tuples",
    "make_diag_gmm",
    "read_alignments",
    "write_alignments",
    "write_occs",
    "tid_to_pdf",
    "tid_to_phone",
    "tid_to_tstate",
    "model_info",
]

BINARY_HEADER = b"\0B"


class KaldiFormatError(ValueError):
    """A Kaldi file does not have the expected content."""


# ---------------------------------------------------------------------------------------------
# Low-level Kaldi stream reading/writing (binary and text)
# ---------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(rb"\s*(\S+)")


class _KaldiIn:
    """Sequential reader of Kaldi's basic types from an in-memory binary or text stream."""

    def __init__(self, data: bytes, binary: bool, name: str, pos: int = 0) -> None:
        self.data = data
        self.binary = binary
        self.name = name
        self.pos = pos

    def fail(self, msg: str) -> KaldiFormatError:
        return KaldiFormatError(f"{self.name}: at byte {self.pos}: {msg}")

    def at_end(self) -> bool:
        return self.data[self.pos :].strip() == b""

    def _next_word(self) -> tuple[bytes, int]:
        m = _TOKEN_RE.match(self.data, self.pos)
        if not m:
            raise self.fail("unexpected end of file")
        return m.group(1), m.end()

    def token(self) -> str:
        word, end = self._next_word()
        if self.binary:
            end += 1  # Kaldi writes one space after each token
        self.pos = end
        return word.decode("latin-1")

    def peek_token(self) -> str:
        return self._next_word()[0].decode("latin-1")

    def expect(self, tok: str) -> None:
        start = self.pos
        got = self.token()
        if got != tok:
            self.pos = start
            raise self.fail(f"expected {tok!r}, got {got[:40]!r}")

    def _size_byte(self, allowed: tuple[int, ...]) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end of file")
        size = self.data[self.pos]
        if size not in allowed:
            raise self.fail(f"bad size byte {size} (expected one of {allowed})")
        self.pos += 1
        return size

    def int32(self, unsigned: bool = False) -> int:
        if self.binary:
            self._size_byte((0xFC,) if unsigned else (4,))
            (v,) = struct.unpack_from("<I" if unsigned else "<i", self.data, self.pos)
            self.pos += 4
            return v
        tok = self.token()
        try:
            return int(tok)
        except ValueError:
            raise self.fail(f"expected an integer, got {tok[:40]!r}") from None

    def float32(self) -> float:
        if self.binary:
            size = self._size_byte((4, 8))
            (v,) = struct.unpack_from("<f" if size == 4 else "<d", self.data, self.pos)
            self.pos += size
            return float(v)
        tok = self.token()
        try:
            return float(tok)
        except ValueError:
            raise self.fail(f"expected a number, got {tok[:40]!r}") from None

    def _raw(self, dtype: str, count: int) -> np.ndarray:
        nbytes = np.dtype(dtype).itemsize * count
        if count < 0 or self.pos + nbytes > len(self.data):
            raise self.fail(f"truncated array of {count} elements")
        arr = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += nbytes
        return arr

    def _text_bracketed(self) -> bytes:
        self.expect("[")
        end = self.data.find(b"]", self.pos)
        if end < 0:
            raise self.fail("missing ']'")
        body = self.data[self.pos : end]
        self.pos = end + 1
        return body

    def int_vector(self) -> np.ndarray:
        if self.binary:
            self._size_byte((4,))
            (n,) = struct.unpack_from("<i", self.data, self.pos)
            self.pos += 4
            return self._raw("<i4", n).astype(np.int32)
        return np.array(self._text_bracketed().split(), dtype=np.int64).astype(np.int32)

    def basic_int_vector(self) -> np.ndarray:
        """An int32 vector as Kaldi's tables hold it (alignments): each element size-marked."""
        n = self.int32()
        rec = self._raw("u1", 5 * n).reshape(n, 5)
        if n and not (rec[:, 0] == 4).all():
            raise self.fail("bad size byte inside an integer vector")
        return np.ascontiguousarray(rec[:, 1:]).view("<i4").ravel().astype(np.int32)

    def float_vector(self) -> np.ndarray:
        if self.binary:
            kind = self.token()
            if kind not in ("FV", "DV"):
                raise self.fail(f"expected a vector (FV/DV), got {kind!r}")
            n = self.int32()
            return self._raw("<f4" if kind == "FV" else "<f8", n).astype(np.float32)
        body = self._text_bracketed().decode("latin-1")
        return np.array(body.split(), dtype=np.float64).astype(np.float32)

    def float_matrix(self) -> np.ndarray:
        if self.binary:
            kind = self.token()
            if kind not in ("FM", "DM"):
                raise self.fail(f"expected a matrix (FM/DM), got {kind!r}")
            rows, cols = self.int32(), self.int32()
            arr = self._raw("<f4" if kind == "FM" else "<f8", rows * cols)
            return arr.astype(np.float32).reshape(rows, cols)
        body = self._text_bracketed().decode("latin-1")
        rows = [line.split() for line in body.splitlines() if line.strip()]
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        if len({len(r) for r in rows}) != 1:
            raise self.fail("matrix rows have different lengths")
        return np.array(rows, dtype=np.float64).astype(np.float32)


def _fmt(x: float) -> str:
    """A float as Kaldi's text streams print it (C++ ostream, precision 7)."""
    return f"{x:.7g}"


class _KaldiOut:
    """Accumulates Kaldi basic types in binary or text form."""

    def __init__(self, binary: bool) -> None:
        self.binary = binary
        self.parts: list[bytes] = []

    def raw(self, s: str | bytes) -> None:
        self.parts.append(s.encode("latin-1") if isinstance(s, str) else s)

    def token(self, tok: str) -> None:
        self.raw(tok + " ")

    def newline(self) -> None:
        if not self.binary:
            self.raw("\n")

    def int32(self, v: int, unsigned: bool = False) -> None:
        if not self.binary:
            self.raw(f"{int(v)} ")
        elif unsigned:  # Kaldi marks unsigned types with a negative size byte
            self.raw(b"\xfc" + struct.pack("<I", int(v)))
        else:
            self.raw(b"\x04" + struct.pack("<i", int(v)))

    def float32(self, v: float) -> None:
        self.raw(b"\x04" + struct.pack("<f", v) if self.binary else _fmt(v) + " ")

    def int_vector(self, v: Iterable[int]) -> None:
        arr = np.asarray(list(v) if not isinstance(v, np.ndarray) else v, dtype="<i4")
        if self.binary:
            self.raw(b"\x04" + struct.pack("<i", arr.size) + arr.tobytes())
        else:
            self.raw("[ " + "".join(f"{x} " for x in arr.tolist()) + "]\n")

    def basic_int_vector(self, v: np.ndarray) -> None:
        """Binary int32 vector in Kaldi's table form (each element size-marked)."""
        arr = np.asarray(v, dtype="<i4").ravel()
        rec = np.empty((arr.size, 5), dtype="u1")
        rec[:, 0] = 4
        rec[:, 1:] = arr.view("u1").reshape(-1, 4)
        self.int32(arr.size)
        self.raw(rec.tobytes())

    def float_vector(self, v: np.ndarray) -> None:
        arr = np.asarray(v, dtype="<f4").ravel()
        if self.binary:
            self.token("FV")
            self.int32(arr.size)
            self.raw(arr.tobytes())
        elif arr.size == 0:
            self.raw(" [ ]\n")
        else:
            self.raw(" [ " + " ".join(_fmt(x) for x in arr.tolist()) + " ]\n")

    def float_matrix(self, m: np.ndarray) -> None:
        arr = np.asarray(m, dtype="<f4")
        if arr.ndim != 2:
            raise ValueError(f"expected a 2-d matrix, got shape {arr.shape}")
        if self.binary:
            self.token("FM")
            self.int32(arr.shape[0])
            self.int32(arr.shape[1])
            self.raw(np.ascontiguousarray(arr).tobytes())
        elif arr.size == 0:
            self.raw(" [ ]\n")
        else:
            rows = ["  " + " ".join(_fmt(x) for x in row) + " " for row in arr.tolist()]
            self.raw(" [\n" + "\n".join(rows) + "]\n")

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


def _open_kaldi(path: str | os.PathLike) -> _KaldiIn:
    """Read a whole Kaldi object file (gzip allowed) and detect binary/text from its header."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise KaldiFormatError(f"{p}: cannot read: {e}") from e
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data.startswith(BINARY_HEADER):
        return _KaldiIn(data, True, str(p), pos=2)
    return _KaldiIn(data, False, str(p))


def _write_kaldi(path: str | os.PathLike, out: _KaldiOut) -> None:
    with atomic_write(path, "wb") as f:
        if out.binary:
            f.write(BINARY_HEADER)
        f.write(out.getvalue())


# ---------------------------------------------------------------------------------------------
# HMM topology
# ---------------------------------------------------------------------------------------------


def _topo_entries(topo: khg.HmmTopology) -> tuple[list[int], list[int], list[list]]:
    phones, phone2idx, entries = topo.__getstate__()
    return list(phones), list(phone2idx), entries


def _write_topo_to(out: _KaldiOut, topo: khg.HmmTopology) -> None:
    phones, phone2idx, entries = _topo_entries(topo)
    is_hmm = topo.is_hmm
    out.token("<Topology>")
    out.newline()
    if out.binary:
        if not is_hmm:
            raise NotImplementedError("binary write of a non-HMM topology is not supported")
        out.int_vector(phones)
        out.int_vector(phone2idx)
        out.int32(len(entries))
        for entry in entries:
            out.int32(len(entry))
            for st in entry:
                out.int32(st.forward_pdf_class)
                out.int32(len(st.transitions))
                for dest, prob in st.transitions:
                    out.int32(dest)
                    out.float32(prob)
    else:
        for idx, entry in enumerate(entries):
            out.raw("<TopologyEntry> \n<ForPhones> \n")
            out.raw("".join(f"{p} " for p in phones if phone2idx[p] == idx) + "\n")
            out.raw("</ForPhones> \n")
            for s, st in enumerate(entry):
                out.raw(f"<State> {s} ")
                if st.forward_pdf_class != -1:
                    if is_hmm:
                        out.raw(f"<PdfClass> {st.forward_pdf_class} ")
                    else:
                        out.raw(f"<ForwardPdfClass> {st.forward_pdf_class} ")
                        out.raw(f"<SelfLoopPdfClass> {st.self_loop_pdf_class} ")
                for dest, prob in st.transitions:
                    out.raw(f"<Transition> {dest} {_fmt(prob)} ")
                out.raw("</State> \n")
            out.raw("</TopologyEntry> \n")
    out.token("</Topology>")
    out.newline()


def _read_topo_from(inp: _KaldiIn) -> khg.HmmTopology:
    """Read a <Topology> object at the stream position (text or binary)."""
    start = inp.pos
    inp.expect("<Topology>")
    topo = khg.HmmTopology()
    if not inp.binary:
        end = inp.data.find(b"</Topology>", inp.pos)
        if end < 0:
            raise inp.fail("missing </Topology>")
        end += len(b"</Topology>")
        text = inp.data[start:end].decode("latin-1")
        inp.pos = end
    else:
        phones = inp.int_vector().tolist()
        phone2idx = inp.int_vector().tolist()
        n_entries = inp.int32()
        entries = []
        for _ in range(n_entries):
            states = []
            for _ in range(inp.int32()):
                pdf_class = inp.int32()
                trans = [(inp.int32(), inp.float32()) for _ in range(inp.int32())]
                states.append((pdf_class, trans))
            entries.append(states)
        inp.expect("</Topology>")
        lines = ["<Topology>"]
        for idx, states in enumerate(entries):
            lines += ["<TopologyEntry>", "<ForPhones>"]
            lines.append(" ".join(str(p) for p in phones if phone2idx[p] == idx))
            lines.append("</ForPhones>")
            for s, (pdf_class, trans) in enumerate(states):
                words = [f"<State> {s}"]
                if pdf_class != -1:
                    words.append(f"<PdfClass> {pdf_class}")
                words += [f"<Transition> {d} {float(np.float32(p))!r}" for d, p in trans]
                lines.append(" ".join(words) + " </State>")
            lines.append("</TopologyEntry>")
        lines.append("</Topology>")
        text = "\n".join(lines) + "\n"
    try:
        topo.read(text)
    except RuntimeError as e:
        raise KaldiFormatError(f"{inp.name}: bad topology: {e}") from e
    return topo


def read_topo(path: str | os.PathLike) -> khg.HmmTopology:
    """Read a Kaldi topology file (lang/topo, text; binary also accepted)."""
    return _read_topo_from(_open_kaldi(path))


def write_topo(topo: khg.HmmTopology, path: str | os.PathLike, binary: bool = False) -> None:
    """Write a topology file as Kaldi does (text by default, like lang/topo)."""
    out = _KaldiOut(binary)
    _write_topo_to(out, topo)
    _write_kaldi(path, out)


# ---------------------------------------------------------------------------------------------
# Tree (ContextDependency / EventMap)
# ---------------------------------------------------------------------------------------------


def _transcode_event_map(inp: _KaldiIn, out: _KaldiOut, depth: int = 0) -> None:
    if depth > 10000:
        raise inp.fail("tree too deep")
    kind = inp.token()
    out.token(kind)
    if kind == "NULL":
        return
    if kind == "CE":
        out.int32(inp.int32())
    elif kind == "SE":
        out.int32(inp.int32())
        out.int_vector(inp.int_vector())
        inp.expect("{")
        out.token("{")
        _transcode_event_map(inp, out, depth + 1)
        _transcode_event_map(inp, out, depth + 1)
        inp.expect("}")
        out.token("}")
    elif kind == "TE":
        out.int32(inp.int32())
        size = inp.int32(unsigned=True)
        out.int32(size, unsigned=True)
        inp.expect("(")
        out.token("(")
        for _ in range(size):
            _transcode_event_map(inp, out, depth + 1)
        inp.expect(")")
        out.token(")")
    else:
        raise inp.fail(f"unknown EventMap type {kind!r} (expected CE, SE, TE or NULL)")


def _transcode_tree(inp: _KaldiIn, binary_out: bool) -> bytes:
    out = _KaldiOut(binary_out)
    inp.expect("ContextDependency")
    out.token("ContextDependency")
    out.int32(inp.int32())
    out.int32(inp.int32())
    inp.expect("ToPdf")
    out.token("ToPdf")
    _transcode_event_map(inp, out)
    inp.expect("EndContextDependency")
    out.token("EndContextDependency")
    return out.getvalue()


def tree_from_bytes(body: bytes) -> khg.ContextDependency:
    """A ContextDependency from Kaldi's binary serialisation (without the ``\\0B`` header)."""
    cd = khg.ContextDependency.__new__(khg.ContextDependency)
    cd.__setstate__((np.frombuffer(body, dtype=np.int8).tolist(),))
    return cd


def tree_to_bytes(ctx_dep: khg.ContextDependency) -> bytes:
    """Kaldi's binary serialisation of a tree (without the ``\\0B`` header)."""
    (state,) = ctx_dep.__getstate__()
    return np.asarray(state, dtype=np.int8).tobytes()


def read_tree(path: str | os.PathLike) -> khg.ContextDependency:
    """Read a Kaldi tree file (binary as written by build-tree, or text from copy-tree)."""
    inp = _open_kaldi(path)
    # Validate by transcoding (also turns a text tree into the binary serialisation).
    body = _transcode_tree(inp, binary_out=True)
    if not inp.at_end():
        raise inp.fail("trailing data after EndContextDependency")
    try:
        return tree_from_bytes(body)
    except RuntimeError as e:
        raise KaldiFormatError(f"{path}: bad tree: {e}") from e


def write_tree(
    ctx_dep: khg.ContextDependency, path: str | os.PathLike, binary: bool = True
) -> None:
    """Write a tree as Kaldi does (binary by default; text like ``copy-tree --binary=false``)."""
    body = tree_to_bytes(ctx_dep)
    if binary:
        data = BINARY_HEADER + body
    else:
        inp = _KaldiIn(body, True, "<tree>")
        data = _tree_text(inp)
    with atomic_write(path, "wb") as f:
        f.write(data)


def _tree_text(inp: _KaldiIn) -> bytes:
    """Kaldi's text layout of a tree, from its binary serialisation."""
    out: list[str] = []

    def emap() -> None:
        kind = inp.token()
        if kind == "NULL":
            out.append("NULL ")
        elif kind == "CE":
            out.append(f"CE {inp.int32()} ")
        elif kind == "SE":
            key = inp.int32()
            yes = inp.int_vector()
            out.append(f"SE {key} [ " + "".join(f"{x} " for x in yes.tolist()) + "]\n{ ")
            inp.expect("{")
            emap()
            emap()
            inp.expect("}")
            out.append("} \n")
        elif kind == "TE":
            key, size = inp.int32(), inp.int32(unsigned=True)
            inp.expect("(")
            out.append(f"TE {key} {size} ( ")
            for _ in range(size):
                emap()
            inp.expect(")")
            out.append(") \n")
        else:
            raise inp.fail(f"unknown EventMap type {kind!r}")

    inp.expect("ContextDependency")
    n, p = inp.int32(), inp.int32()
    inp.expect("ToPdf")
    out.append(f"ContextDependency {n} {p} ToPdf ")
    emap()
    inp.expect("EndContextDependency")
    out.append("EndContextDependency ")
    return "".join(out).encode()


# ---------------------------------------------------------------------------------------------
# TransitionModel
# ---------------------------------------------------------------------------------------------


def build_transition_model(
    topo: khg.HmmTopology,
    tuples: list[tuple[int, int, int, int]],
    log_probs: np.ndarray | None = None,
) -> khg.TransitionModel:
    """A TransitionModel from its tuples (phone, hmm-state, forward-pdf, self-loop-pdf).

    ``log_probs`` is indexed by transition-id (element 0 unused); by default the topology's
    initial probabilities are used, like Kaldi's constructor.
    """
    tuples = [tuple(int(x) for x in t) for t in tuples]
    if tuples != sorted(tuples):
        raise KaldiFormatError("transition-model tuples are not sorted")
    state2id = [0]
    id2state = [0]
    id2pdf = [0]
    init = [0.0]
    cur = 1
    for ts, (phone, hmm_state, fpdf, spdf) in enumerate(tuples, start=1):
        entry = topo.topology_for_phone(phone)
        if not 0 <= hmm_state < len(entry):
            raise KaldiFormatError(f"tuple {ts}: phone {phone} has no HMM state {hmm_state}")
        trans = entry[hmm_state].transitions
        state2id.append(cur)
        for dest, prob in trans:
            id2state.append(ts)
            id2pdf.append(spdf if dest == hmm_state else fpdf)
            init.append(float(np.log(np.float32(prob), dtype=np.float32)))
        cur += len(trans)
    state2id.append(cur)
    if log_probs is None:
        lp = np.array(init, dtype=np.float32)
    else:
        lp = np.asarray(log_probs, dtype=np.float32)
        if lp.size != cur:
            raise KaldiFormatError(f"{lp.size} log-probs for {cur - 1} transition-ids (+1)")
        lp = lp.copy()
        lp[0] = 0.0
    num_pdfs = max((max(t[2], t[3]) for t in tuples), default=-1) + 1
    state = (
        [_kaldi_hmm_gmm.TransitionModelTuple(*t) for t in tuples],
        topo,
        state2id,
        id2state,
        id2pdf,
        num_pdfs,
        [float(x) for x in lp],
        [0.0] * (len(tuples) + 1),
    )
    tm = khg.TransitionModel.__new__(khg.TransitionModel)
    tm.__setstate__(state)
    # An update with zero counts changes no probability (every state is below mincount) but
    # makes Kaldi's own code derive the non-self-loop log-probs (bit-exact with Kaldi).
    tm.mle_update(np.zeros((cur, 1)), khg.MleTransitionUpdateConfig(mincount=1.0))
    return tm


def transition_tuples(tm: khg.TransitionModel) -> list[tuple[int, int, int, int]]:
    """The (phone, hmm-state, forward-pdf, self-loop-pdf) tuples, in transition-state order."""
    return [tuple(t.__getstate__()) for t in tm.__getstate__()[0]]


def _read_transition_model_from(inp: _KaldiIn) -> khg.TransitionModel:
    inp.expect("<TransitionModel>")
    topo = _read_topo_from(inp)
    kind = inp.token()
    if kind not in ("<Triples>", "<Tuples>"):
        raise inp.fail(f"expected <Triples> or <Tuples>, got {kind!r}")
    n = inp.int32()
    tuples = []
    for _ in range(n):
        if kind == "<Triples>":
            phone, hmm_state, pdf = inp.int32(), inp.int32(), inp.int32()
            tuples.append((phone, hmm_state, pdf, pdf))
        else:
            tuples.append((inp.int32(), inp.int32(), inp.int32(), inp.int32()))
    inp.expect("</" + kind[1:])
    inp.expect("<LogProbs>")
    log_probs = inp.float_vector()
    inp.expect("</LogProbs>")
    inp.expect("</TransitionModel>")
    try:
        return build_transition_model(topo, tuples, log_probs)
    except KaldiFormatError as e:
        raise KaldiFormatError(f"{inp.name}: {e}") from e


def _write_transition_model_to(out: _KaldiOut, tm: khg.TransitionModel) -> None:
    tuples = transition_tuples(tm)
    topo = tm.topo
    is_hmm = all(t[2] == t[3] for t in tuples) and topo.is_hmm
    out.token("<TransitionModel>")
    out.newline()
    _write_topo_to(out, topo)
    out.token("<Triples>" if is_hmm else "<Tuples>")
    out.int32(len(tuples))
    out.newline()
    for t in tuples:
        for x in t[:3] if is_hmm else t:
            out.int32(x)
        out.newline()
    out.token("</Triples>" if is_hmm else "</Tuples>")
    out.newline()
    out.token("<LogProbs>")
    out.newline()
    out.float_vector(np.asarray(_log_probs(tm), dtype=np.float32))
    out.token("</LogProbs>")
    out.newline()
    out.token("</TransitionModel>")
    out.newline()


def _log_probs(tm: khg.TransitionModel) -> list[float]:
    return list(tm.log_probs)


# ---------------------------------------------------------------------------------------------
# AmDiagGmm
# ---------------------------------------------------------------------------------------------


def make_diag_gmm(
    weights: np.ndarray, means_invvars: np.ndarray, inv_vars: np.ndarray
) -> khg.DiagGmm:
    """A DiagGmm holding exactly these float32 parameters (gconsts computed)."""
    w = np.ascontiguousarray(weights, dtype=np.float32)
    mi = np.ascontiguousarray(means_invvars, dtype=np.float32)
    iv = np.ascontiguousarray(inv_vars, dtype=np.float32)
    if mi.shape != iv.shape or mi.ndim != 2 or mi.shape[0] != w.size:
        raise KaldiFormatError(
            f"inconsistent GMM shapes: weights {w.shape}, means_invvars {mi.shape}, "
            f"inv_vars {iv.shape}"
        )
    g = khg.DiagGmm.__new__(khg.DiagGmm)
    g.__setstate__((w, iv, mi))
    g.compute_gconsts()
    return g


def _read_am_gmm_from(inp: _KaldiIn) -> khg.AmDiagGmm:
    inp.expect("<DIMENSION>")
    dim = inp.int32()
    inp.expect("<NUMPDFS>")
    num_pdfs = inp.int32()
    am = khg.AmDiagGmm()
    for pdf in range(num_pdfs):
        inp.expect("<DiagGMM>")
        tok = inp.token()
        if tok == "<GCONSTS>":
            inp.float_vector()  # recomputed, as Kaldi's DiagGmm::Read does
            tok = inp.token()
        if tok != "<WEIGHTS>":
            raise inp.fail(f"pdf {pdf}: expected <WEIGHTS>, got {tok!r}")
        weights = inp.float_vector()
        inp.expect("<MEANS_INVVARS>")
        means_invvars = inp.float_matrix()
        inp.expect("<INV_VARS>")
        inv_vars = inp.float_matrix()
        inp.expect("</DiagGMM>")
        if inv_vars.shape[1:] != (dim,):
            raise inp.fail(f"pdf {pdf}: dimension {inv_vars.shape} differs from {dim}")
        try:
            am.add_pdf(make_diag_gmm(weights, means_invvars, inv_vars))
        except KaldiFormatError as e:
            raise inp.fail(f"pdf {pdf}: {e}") from e
    return am


def _write_am_gmm_to(out: _KaldiOut, am: khg.AmDiagGmm) -> None:
    out.token("<DIMENSION>")
    out.int32(am.dim)
    out.token("<NUMPDFS>")
    out.int32(am.num_pdfs)
    for pdf in range(am.num_pdfs):
        g = am.get_pdf(pdf)
        if not g.valid_gconsts:
            g.compute_gconsts()
        out.token("<DiagGMM>")
        out.newline()
        out.token("<GCONSTS>")
        out.float_vector(np.asarray(g.gconsts))
        out.token("<WEIGHTS>")
        out.float_vector(np.asarray(g.weights))
        out.token("<MEANS_INVVARS>")
        out.float_matrix(np.asarray(g.means_invvars))
        out.token("<INV_VARS>")
        out.float_matrix(np.asarray(g.inv_vars))
        out.token("</DiagGMM>")
        out.newline()


# ---------------------------------------------------------------------------------------------
# occupation counts
# ---------------------------------------------------------------------------------------------


def write_occs(path: str | os.PathLike, occs: np.ndarray) -> None:
    """Per-pdf occupation counts as a Kaldi binary float vector (``gmm-est --write-occs``)."""
    vec = np.asarray(occs, dtype="<f4")
    with atomic_write(path, "wb") as f:
        f.write(BINARY_HEADER + b"FV " + struct.pack("<bi", 4, len(vec)) + vec.tobytes())


# ---------------------------------------------------------------------------------------------
# final.mdl
# ---------------------------------------------------------------------------------------------


def read_model(path: str | os.PathLike) -> tuple[khg.TransitionModel, khg.AmDiagGmm]:
    """Read a Kaldi GMM model (final.mdl, binary or text): (TransitionModel, AmDiagGmm)."""
    inp = _open_kaldi(path)
    tm = _read_transition_model_from(inp)
    am = _read_am_gmm_from(inp)
    if not inp.at_end():
        raise inp.fail("trailing data after the AmDiagGmm")
    if am.num_pdfs != tm.num_pdfs:
        raise KaldiFormatError(
            f"{path}: transition model has {tm.num_pdfs} pdfs, GMM has {am.num_pdfs}"
        )
    return tm, am


def read_transition_model(path: str | os.PathLike) -> khg.TransitionModel:
    """Only the TransitionModel of a model file (works for nnet models too)."""
    return _read_transition_model_from(_open_kaldi(path))


def read_am_gmm(path: str | os.PathLike) -> khg.AmDiagGmm:
    """Only the AmDiagGmm of a final.mdl."""
    inp = _open_kaldi(path)
    _read_transition_model_from(inp)
    return _read_am_gmm_from(inp)


def model_bytes(tm: khg.TransitionModel, am: khg.AmDiagGmm, binary: bool = True) -> bytes:
    """The bytes of a Kaldi final.mdl for (tm, am)."""
    out = _KaldiOut(binary)
    _write_transition_model_to(out, tm)
    _write_am_gmm_to(out, am)
    return (BINARY_HEADER if binary else b"") + out.getvalue()


def write_model(
    path: str | os.PathLike,
    trans_model: khg.TransitionModel,
    am_gmm: khg.AmDiagGmm,
    binary: bool = True,
) -> None:
    """Write final.mdl as Kaldi's gmm-copy would (binary by default)."""
    if am_gmm.num_pdfs != trans_model.num_pdfs:
        raise ValueError(
            f"{path}: transition model has {trans_model.num_pdfs} pdfs, GMM has {am_gmm.num_pdfs}"
        )
    data = model_bytes(trans_model, am_gmm, binary)
    with atomic_write(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------------
# Transition-id maps and info
# ---------------------------------------------------------------------------------------------


def tid_to_pdf(trans_model: khg.TransitionModel) -> np.ndarray:
    """Array mapping transition-id -> pdf-id (index 0 unused, set to -1)."""
    id2pdf = np.array(trans_model.__getstate__()[4], dtype=np.int32)
    id2pdf[0] = -1
    return id2pdf


def tid_to_phone(trans_model: khg.TransitionModel) -> np.ndarray:
    """Array mapping transition-id -> phone (index 0 unused, set to -1)."""
    state = trans_model.__getstate__()
    phones = np.array([-1] + [t.__getstate__()[0] for t in state[0]], dtype=np.int32)
    return _tid_map(phones, state[3])


def _tid_map(per_tstate: np.ndarray, id2state: list[int]) -> np.ndarray:
    res = per_tstate[np.asarray(id2state, dtype=np.int64)].astype(np.int32)
    res[0] = -1
    return res


def tid_to_tstate(trans_model: khg.TransitionModel) -> np.ndarray:
    """Array mapping transition-id -> transition-state (index 0 unused, set to -1)."""
    res = np.array(trans_model.__getstate__()[3], dtype=np.int32)
    res[0] = -1
    return res


def model_info(trans_model: khg.TransitionModel, am_gmm: khg.AmDiagGmm | None = None) -> dict:
    """What Kaldi's hmm-info (and, with ``am_gmm``, gmm-info) print, as a dict."""
    info = {
        "phones": len(trans_model.phones),
        "pdfs": trans_model.num_pdfs,
        "transition-ids": trans_model.num_transition_ids,
        "transition-states": trans_model.num_transition_states,
    }
    if am_gmm is not None:
        info["dim"] = am_gmm.dim
        info["gaussians"] = am_gmm.num_gauss
    return info


# ---------------------------------------------------------------------------------------------
# Alignments (int-vector tables)
# ---------------------------------------------------------------------------------------------

_SPEC_RE = re.compile(r"^(ark|scp)((?:,[a-z]+)*):(.*)$", re.S)


def _read_source(target: str) -> bytes:
    """Bytes of an rxfilename: a file (gzip auto-detected), '-' (stdin) or 'command |'."""
    if target.rstrip().endswith("|"):
        cmd = target.rstrip()[:-1]
        proc = subprocess.run(cmd, shell=True, capture_output=True)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise KaldiFormatError(f"command {cmd!r} failed ({proc.returncode}): {err}")
        data = proc.stdout
    elif target == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(target).read_bytes()
        except OSError as e:
            raise KaldiFormatError(f"{target}: cannot read: {e}") from e
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


def _parse_int_ark(data: bytes, name: str) -> dict[str, np.ndarray]:
    """Parse an int-vector ark, binary or text (detected per utterance)."""
    res: dict[str, np.ndarray] = {}
    pos = 0
    n = len(data)
    while True:
        while pos < n and data[pos : pos + 1].isspace():
            pos += 1
        if pos >= n:
            break
        sp = data.find(b" ", pos)
        if sp < 0:
            raise KaldiFormatError(f"{name}: truncated entry at byte {pos}")
        key = data[pos:sp].decode("utf-8", errors="replace")
        pos = sp + 1
        if data[pos : pos + 2] == BINARY_HEADER:
            inp = _KaldiIn(data, True, f"{name} (utterance {key})", pos + 2)
            vec = inp.basic_int_vector()
            pos = inp.pos
        else:
            eol = data.find(b"\n", pos)
            eol = n if eol < 0 else eol
            try:
                vec = np.array(data[pos:eol].split(), dtype=np.int64).astype(np.int32)
            except ValueError:
                raise KaldiFormatError(f"{name}: utterance {key}: not an integer vector") from None
            pos = eol + 1
        if key in res:
            raise KaldiFormatError(f"{name}: duplicate utterance {key}")
        res[key] = vec
    return res


def alignment_files(ali_dir: str | os.PathLike) -> list[Path]:
    """``<ali_dir>/ali.N.gz`` in job order: every job of ``num_jobs``, each complete."""
    return job_files(ali_dir, "ali")


def read_alignments(rspecifier_or_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read int-vector tables (alignments): ali.N.gz paths or Kaldi rspecifiers.

    Accepts ``exp/x/ali.1.gz``, ``ark:gunzip -c exp/x/ali.1.gz|``, ``ark,t:file``, ``ark:-`` and
    ``scp:file`` (via kaldiio); binary or text content, gzip detected from the bytes.
    """
    spec = os.fspath(rspecifier_or_path)
    m = _SPEC_RE.match(spec)
    if m and m.group(1) == "scp":
        res = {}
        for key, val in kaldiio.load_scp(m.group(3)).items():
            res[key] = np.asarray(val, dtype=np.int32)
        return res
    target = m.group(3) if m else spec
    return _parse_int_ark(_read_source(target), spec)


def write_alignments(
    path: str | os.PathLike, alignments: Mapping[str, Iterable[int]], gz: bool = True
) -> None:
    """Write a binary int-vector ark (Kaldi's ali.N.gz when ``gz``), atomically, in given order."""
    out = io.BytesIO()
    for key, vec in alignments.items():
        if not key or any(c.isspace() for c in key):
            raise ValueError(f"{path}: bad utterance id {key!r}")
        arr = np.asarray(vec)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{path}: utterance {key}: alignment must be a 1-d int vector")
        w = _KaldiOut(True)
        w.basic_int_vector(arr.astype(np.int32))
        out.write(key.encode() + b" " + BINARY_HEADER + w.getvalue())
    data = out.getvalue()
    with atomic_write(path, "wb") as f:
        if gz:
            # mtime=0: identical inputs give identical files (idempotent re-runs).
            with gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as gzf:
                gzf.write(data)
        else:
            f.write(data)
