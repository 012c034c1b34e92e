"""Kaldi lattice archives: ``Lattice`` and ``CompactLattice``, text and binary, plain or gzip.

In-memory forms are plain Python (acyclic lattices from the decoder are small):

* :class:`Lattice` (state level, arc type ``lattice4``): arcs ``(dst, ilabel, olabel, graph, ac)``
  with transition-ids on ``ilabel`` and words on ``olabel``.
* :class:`CompactLattice` (arc type ``compactlattice44``): arcs ``(dst, word, graph, ac, tids)``
  where ``tids`` is the tuple of transition-ids of the arc.

Final weights are ``(graph, ac)`` (``Lattice``) or ``(graph, ac, tids)`` (``CompactLattice``);
a state that is not final has no entry in ``finals``.

Binary arks: ``key`` + space, then the OpenFst header (magic ``0x7eb2fdd6``) directly -- there is
no ``\\0B`` marker for lattices. Text arks: ``key`` + space + newline, one line per arc / final
state, ended by an empty line. Numbers are written like C++ ``ostream`` (6 significant digits).
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import os
import shlex
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pykd.io.atomic import atomic_write

log = logging.getLogger(__name__)

FST_MAGIC = 2125659606  # 0x7eb2fdd6
INF = math.inf

# OpenFst property bits (fst/properties.h) that we compute truthfully when writing.
_K_EXPANDED, _K_MUTABLE = 0x1, 0x2
_K_ACCEPTOR, _K_NOT_ACCEPTOR = 0x10000, 0x20000
_K_EPSILONS, _K_NO_EPSILONS = 0x400000, 0x800000
_K_IEPSILONS, _K_NO_IEPSILONS = 0x1000000, 0x2000000
_K_OEPSILONS, _K_NO_OEPSILONS = 0x4000000, 0x8000000
_K_WEIGHTED, _K_UNWEIGHTED = 0x100000000, 0x200000000

LatArc = tuple[int, int, int, float, float]  # dst, ilabel (tid), olabel (word), graph, ac
CLatArc = tuple[int, int, float, float, tuple[int, ...]]  # dst, word, graph, ac, tids


class LatticeFormatError(ValueError):
    """A lattice archive is malformed (message names the file and utterance)."""


@dataclass
class Lattice:
    """State-level lattice (Kaldi ``Lattice``)."""

    start: int = 0
    arcs: list[list[LatArc]] = field(default_factory=list)
    finals: dict[int, tuple[float, float]] = field(default_factory=dict)

    @property
    def num_states(self) -> int:
        return len(self.arcs)

    def num_arcs(self) -> int:
        return sum(len(a) for a in self.arcs)


@dataclass
class CompactLattice:
    """Word-level lattice with transition-id strings on arcs (Kaldi ``CompactLattice``)."""

    start: int = 0
    arcs: list[list[CLatArc]] = field(default_factory=list)
    finals: dict[int, tuple[float, float, tuple[int, ...]]] = field(default_factory=dict)

    @property
    def num_states(self) -> int:
        return len(self.arcs)

    def num_arcs(self) -> int:
        return sum(len(a) for a in self.arcs)


AnyLattice = Lattice | CompactLattice


# ----------------------------------------------------------------------------- number format
def fmt_float(x: float) -> str:
    """Format like C++ ``ostream << float`` with default precision (``%g``)."""
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if math.isnan(x):
        return "BadNumber"
    s = f"{x:.6g}"
    return "0" if s == "-0" else s


def _parse_float(tok: str) -> float:
    if tok in ("Infinity", "inf"):
        return INF
    if tok in ("-Infinity", "-inf"):
        return -INF
    return float(tok)


# ----------------------------------------------------------------------------- text
def lattice_to_text(lat: AnyLattice) -> str:
    """The text body Kaldi writes for one lattice (without the key line and final blank)."""
    lines: list[str] = []
    compact = isinstance(lat, CompactLattice)
    # OpenFst's printer visits the start state first, then the others in order.
    order = [lat.start] + [s for s in range(lat.num_states) if s != lat.start]
    if lat.num_states == 0:
        return ""
    for s in order:
        for arc in lat.arcs[s]:
            if compact:
                dst, w, g, a, tids = arc
                if g == 0 and a == 0 and not tids:  # OpenFst omits weights equal to One
                    lines.append(f"{s}\t{dst}\t{w}")
                    continue
                lines.append(
                    f"{s}\t{dst}\t{w}\t{fmt_float(g)},{fmt_float(a)},{'_'.join(map(str, tids))}"
                )
            else:
                dst, il, ol, g, a = arc
                weight = "" if g == 0 and a == 0 else f"\t{fmt_float(g)},{fmt_float(a)}"
                lines.append(f"{s}\t{dst}\t{il}\t{ol}{weight}")
        if s in lat.finals:
            fw = lat.finals[s]
            if compact:
                g, a, tids = fw
                if g == 0 and a == 0 and not tids:
                    lines.append(f"{s}")
                else:
                    lines.append(f"{s}\t{fmt_float(g)},{fmt_float(a)},{'_'.join(map(str, tids))}")
            else:
                g, a = fw
                lines.append(f"{s}" if g == 0 and a == 0 else f"{s}\t{fmt_float(g)},{fmt_float(a)}")
    return "".join(line + "\n" for line in lines)


def _ensure_state(arcs: list, s: int) -> None:
    while len(arcs) <= s:
        arcs.append([])


def parse_text_lattice(lines: list[str], where: str) -> AnyLattice:
    """Parse the text body of one lattice (OpenFst's printer omits weights equal to One).

    Lines: 5 fields = state-level arc; 4 = compact arc with weight, or state-level arc without;
    3 = compact arc without weight; 2 = final state with weight; 1 = final state (weight One).
    """
    kinds: set[str] = set()
    arcs: list[list] = []
    finals: dict[int, tuple] = {}
    start = -1
    for lineno, line in enumerate(lines, 1):
        f = line.split()
        try:
            s = int(f[0])
            if len(f) >= 3:
                d = int(f[1])
                _ensure_state(arcs, max(s, d))
            else:
                _ensure_state(arcs, s)
            if len(f) == 5 or (len(f) == 4 and "," not in f[3]):
                kinds.add("lattice")
                g, a = map(_parse_float, f[4].split(",")) if len(f) == 5 else (0.0, 0.0)
                arcs[s].append((d, int(f[2]), int(f[3]), g, a))
            elif len(f) in (3, 4):
                kinds.add("compact")
                g, a, tids = _parse_clat_weight(f[3]) if len(f) == 4 else (0.0, 0.0, ())
                arcs[s].append((d, int(f[2]), g, a, tids))
            elif len(f) == 2:
                parts = f[1].split(",")
                if len(parts) == 3:
                    kinds.add("compact")
                    finals[s] = _parse_clat_weight(f[1])
                elif len(parts) == 2:
                    kinds.add("lattice")
                    finals[s] = (_parse_float(parts[0]), _parse_float(parts[1]), ())
                else:
                    raise ValueError(f"bad final weight {f[1]!r}")
            elif len(f) == 1:
                finals[s] = (0.0, 0.0, ())
            else:
                raise ValueError(f"{len(f)} fields")
        except (ValueError, IndexError) as err:
            raise LatticeFormatError(f"{where}: line {lineno} {line!r}: {err}") from err
        if start < 0:
            start = s
    if len(kinds) > 1:
        raise LatticeFormatError(f"{where}: mixes Lattice and CompactLattice lines")
    if "lattice" in kinds:
        return Lattice(max(start, 0), arcs, {s: (g, a) for s, (g, a, _) in finals.items()})
    return CompactLattice(max(start, 0), arcs, finals)


def _parse_clat_weight(tok: str) -> tuple[float, float, tuple[int, ...]]:
    parts = tok.split(",")
    if len(parts) != 3:
        raise ValueError(f"bad CompactLattice weight {tok!r}")
    tids = tuple(int(t) for t in parts[2].split("_")) if parts[2] else ()
    return _parse_float(parts[0]), _parse_float(parts[1]), tids


# ----------------------------------------------------------------------------- binary
def _read_exact(f: BinaryIO, n: int, where: str) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise LatticeFormatError(f"{where}: unexpected end of file")
    return b


def _read_str(f: BinaryIO, where: str) -> str:
    (n,) = struct.unpack("<i", _read_exact(f, 4, where))
    return _read_exact(f, n, where).decode()


def read_binary_lattice(f: BinaryIO, where: str) -> AnyLattice:
    """Read one OpenFst-binary ``lattice4`` / ``compactlattice44`` VectorFst from ``f``."""
    (magic,) = struct.unpack("<i", _read_exact(f, 4, where))
    if magic != FST_MAGIC:
        raise LatticeFormatError(f"{where}: bad OpenFst magic {magic:#x}")
    fst_type = _read_str(f, where)
    arc_type = _read_str(f, where)
    if fst_type != "vector":
        raise LatticeFormatError(f"{where}: FST type {fst_type!r}, expected 'vector'")
    _version, _flags, _props, start, nstates, _narcs = struct.unpack(
        "<iiQqqq", _read_exact(f, 40, where)
    )
    if arc_type == "compactlattice44":
        return _read_clat_body(f, start, nstates, where)
    if arc_type == "lattice4":
        return _read_lat_body(f, start, nstates, where)
    raise LatticeFormatError(f"{where}: arc type {arc_type!r} is not a Kaldi lattice")


def _read_tids(f: BinaryIO, where: str) -> tuple[int, ...]:
    (n,) = struct.unpack("<i", _read_exact(f, 4, where))
    return struct.unpack(f"<{n}i", _read_exact(f, 4 * n, where)) if n else ()


def _read_clat_body(f: BinaryIO, start: int, nstates: int, where: str) -> CompactLattice:
    lat = CompactLattice(start=max(start, 0))
    for s in range(nstates):
        g, a = struct.unpack("<ff", _read_exact(f, 8, where))
        tids = _read_tids(f, where)
        if not (math.isinf(g) and g > 0):
            lat.finals[s] = (g, a, tids)
        (narcs,) = struct.unpack("<q", _read_exact(f, 8, where))
        arcs: list[CLatArc] = []
        for _ in range(narcs):
            il, _ol, g, a = struct.unpack("<iiff", _read_exact(f, 16, where))
            tids = _read_tids(f, where)
            (dst,) = struct.unpack("<i", _read_exact(f, 4, where))
            arcs.append((dst, il, g, a, tids))
        lat.arcs.append(arcs)
    return lat


def _read_lat_body(f: BinaryIO, start: int, nstates: int, where: str) -> Lattice:
    lat = Lattice(start=max(start, 0))
    for s in range(nstates):
        g, a = struct.unpack("<ff", _read_exact(f, 8, where))
        if not (math.isinf(g) and g > 0):
            lat.finals[s] = (g, a)
        (narcs,) = struct.unpack("<q", _read_exact(f, 8, where))
        body = _read_exact(f, 20 * narcs, where)
        lat.arcs.append(
            [(d, il, ol, g, a) for il, ol, g, a, d in struct.iter_unpack("<iiffi", body)]
        )
    return lat


def _properties(lat: AnyLattice) -> int:
    """OpenFst properties that are certainly true (what a VectorFst built by Kaldi knows)."""
    compact = isinstance(lat, CompactLattice)
    acceptor, ieps, oeps, eps, weighted = True, False, False, False, False
    for arcs in lat.arcs:
        for arc in arcs:
            if compact:
                il = ol = arc[1]
                weighted |= arc[2] != 0 or arc[3] != 0 or bool(arc[4])
            else:
                il, ol = arc[1], arc[2]
                weighted |= arc[3] != 0 or arc[4] != 0
            acceptor &= il == ol
            ieps |= il == 0
            oeps |= ol == 0
            eps |= il == 0 and ol == 0
    for fw in lat.finals.values():
        weighted |= fw[0] != 0 or fw[1] != 0 or (compact and bool(fw[2]))
    p = _K_EXPANDED | _K_MUTABLE
    p |= _K_ACCEPTOR if acceptor else _K_NOT_ACCEPTOR
    p |= _K_EPSILONS if eps else _K_NO_EPSILONS
    p |= _K_IEPSILONS if ieps else _K_NO_IEPSILONS
    p |= _K_OEPSILONS if oeps else _K_NO_OEPSILONS
    p |= _K_WEIGHTED if weighted else _K_UNWEIGHTED
    return p


def lattice_to_binary(lat: AnyLattice) -> bytes:
    """OpenFst binary serialisation of one lattice, as Kaldi writes it in a binary ark."""
    compact = isinstance(lat, CompactLattice)
    out = io.BytesIO()
    w = out.write

    def wstr(s: str) -> None:
        b = s.encode()
        w(struct.pack("<i", len(b)) + b)

    w(struct.pack("<i", FST_MAGIC))
    wstr("vector")
    wstr("compactlattice44" if compact else "lattice4")
    start = lat.start if lat.num_states else -1
    w(struct.pack("<iiQqqq", 2, 0, _properties(lat), start, lat.num_states, 0))
    for s in range(lat.num_states):
        fw = lat.finals.get(s)
        if compact:
            g, a, tids = fw if fw is not None else (INF, INF, ())
            w(struct.pack(f"<ffi{len(tids)}i", g, a, len(tids), *tids))
        else:
            g, a = fw if fw is not None else (INF, INF)
            w(struct.pack("<ff", g, a))
        w(struct.pack("<q", len(lat.arcs[s])))
        for arc in lat.arcs[s]:
            if compact:
                dst, word, g, a, tids = arc
                n = len(tids)
                w(struct.pack(f"<iiffi{n}ii", word, word, g, a, n, *tids, dst))
            else:
                dst, il, ol, g, a = arc
                w(struct.pack("<iiffi", il, ol, g, a, dst))
    return out.getvalue()


# ----------------------------------------------------------------------------- archives
def _split_spec(spec: str) -> tuple[set[str], str] | None:
    """``ark,scp,t:rest`` -> ({"ark", "scp", "t"}, ``rest``); None for a bare path."""
    head, sep, rest = spec.partition(":")
    kinds = set(head.split(","))
    if sep and len(head) < 20 and kinds & {"ark", "scp"}:
        return kinds, rest
    return None


def _strip_ark(spec: str) -> tuple[str, set[str]]:
    """``ark,t:foo`` -> (``foo``, {"t"}); a bare path is returned as is (``scp:`` is an error)."""
    parsed = _split_spec(spec)
    if parsed is None:
        return spec, set()
    kinds, rest = parsed
    if "ark" not in kinds:
        raise ValueError(f"{spec}: an scp, not an archive (use read_lattices / LatticeScpReader)")
    return rest, kinds - {"ark", "scp"}


def _open_read(spec: str) -> tuple[BinaryIO, str]:
    path, _ = _strip_ark(spec)
    if path == "-":
        return sys.stdin.buffer, "stdin"
    if path.endswith("|"):
        proc = subprocess.Popen(path[:-1], shell=True, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        return io.BytesIO(proc.stdout.read()), path  # lattices are small; keep it simple
    if not Path(path).is_file():
        raise FileNotFoundError(f"lattice archive not found: {path}")
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head == b"\x1f\x8b":
        return gzip.open(path, "rb"), path  # type: ignore[return-value]
    return open(path, "rb"), path


def _read_key(f: BinaryIO) -> str | None:
    buf = bytearray()
    while True:
        c = f.read(1)
        if not c:
            if buf.strip():
                raise LatticeFormatError(f"truncated archive after key {buf.decode()!r}")
            return None
        if c in b" \t\n" and not buf:
            continue
        if c == b" " or c == b"\n":
            return buf.decode()
        buf += c


def read_lattices(spec: str) -> Iterator[tuple[str, AnyLattice]]:
    """Yield ``(utt, lattice)`` from a Kaldi lattice ark (text or binary, gz, pipe, ``-``)
    or, with ``scp:lat.scp``, from the archives an scp points into (in the scp's order)."""
    parsed = _split_spec(spec)
    if parsed is not None and "scp" in parsed[0] and "ark" not in parsed[0]:
        with LatticeScpReader(parsed[1]) as reader:
            for key in reader.keys():
                yield key, reader[key]
        return
    f, where = _open_read(spec)
    try:
        yield from _read_archive(f, where)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise LatticeFormatError(f"{where}: truncated or corrupt archive ({err})") from err
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def _read_archive(f: BinaryIO, where: str) -> Iterator[tuple[str, AnyLattice]]:
    """The (utt, lattice) entries of an open archive, in order."""
    while True:
        key = _read_key(f)
        if key is None:
            return
        here = f"{where}: utterance {key}"
        peek = f.read(1)
        if peek == b"\n":  # text
            lines = []
            while True:
                raw = f.readline()
                line = raw.decode().strip()
                if not line:
                    break
                lines.append(line)
            yield key, parse_text_lattice(lines, here)
        elif peek == b"\xd6":
            rest = _read_exact(f, 3, here)
            yield key, read_binary_lattice(io.BytesIO(peek + rest + _drain_fst(f, here)), here)
        else:
            raise LatticeFormatError(f"{here}: neither text nor binary lattice")


def _drain_fst(f: BinaryIO, where: str) -> bytes:
    """Return the rest of one binary FST (after its magic) so it can be parsed from memory."""
    out = io.BytesIO()

    def take(n: int) -> bytes:
        b = _read_exact(f, n, where)
        out.write(b)
        return b

    n1 = struct.unpack("<i", take(4))[0]
    take(n1)
    n2 = struct.unpack("<i", take(4))[0]
    arc_type = take(n2).decode()
    hdr = take(40)
    nstates = struct.unpack("<iiQqqq", hdr)[4]
    compact = arc_type == "compactlattice44"
    for _ in range(nstates):
        take(8)
        if compact:
            take(4 * struct.unpack("<i", take(4))[0])
        (narcs,) = struct.unpack("<q", take(8))
        if compact:
            for _ in range(narcs):
                take(16)
                take(4 * struct.unpack("<i", take(4))[0] + 4)
        else:
            take(20 * narcs)
    return out.getvalue()


def read_lattice_dict(spec: str) -> dict[str, AnyLattice]:
    """All lattices of an archive as a dict (duplicate keys are an error)."""
    out: dict[str, AnyLattice] = {}
    for key, lat in read_lattices(spec):
        if key in out:
            raise LatticeFormatError(f"{spec}: duplicate utterance {key}")
        out[key] = lat
    return out


def _encode(
    items: Iterable[tuple[str, AnyLattice]], text: bool
) -> tuple[bytes, list[tuple[str, int]]]:
    """Ark bytes and, per lattice, ``(key, offset of the object)`` (what an scp points at)."""
    buf = io.BytesIO()
    offsets: list[tuple[str, int]] = []
    for key, lat in items:
        if not key or any(c.isspace() for c in key):
            raise ValueError(f"invalid utterance id {key!r}")
        buf.write(key.encode() + b" ")
        offsets.append((key, buf.tell()))
        if text:
            buf.write(f"\n{lattice_to_text(lat)}\n".encode())
        else:
            buf.write(lattice_to_binary(lat))
    return buf.getvalue(), offsets


def encode_lattices(items: Iterable[tuple[str, AnyLattice]], text: bool = False) -> bytes:
    """Serialise ``(utt, lattice)`` pairs as a Kaldi ark."""
    return _encode(items, text)[0]


def write_lattice_ark_scp(
    ark: str | Path, scp: str | Path, items: Iterable[tuple[str, AnyLattice]], text: bool = False
) -> int:
    """Kaldi's ``ark,scp:lat.ark,lat.scp``: an uncompressed ark and an scp of ``utt ark:offset``.

    The offset is that of the lattice object (just after ``key``), as Kaldi's writer records it;
    the scp names ``ark`` as given (relative paths are relative to the working directory, as in
    Kaldi). Both files are written atomically, the ark first. Returns the number of lattices.
    """
    ark_s = str(ark)
    if ark_s.endswith(".gz") or ark_s.startswith("|") or ark_s == "-":
        raise ValueError(f"{ark_s}: an archive with an scp must be a plain file (no gzip/pipe)")
    data, offsets = _encode(items, text)
    with atomic_write(ark_s, "wb") as fh:
        fh.write(data)
    with atomic_write(str(scp), "w") as fh:
        fh.write("".join(f"{key} {ark_s}:{off}\n" for key, off in offsets))
    return len(offsets)


def write_lattices(spec: str, items: Iterable[tuple[str, AnyLattice]], text: bool = False) -> None:
    """Write an ark: ``path`` / ``path.gz`` (atomic), ``ark,t:path``, ``ark:| cmd``, ``ark:-``,
    or an ark plus an scp for random access: ``ark,scp:lat.1.ark,lat.1.scp``."""
    parsed = _split_spec(spec)
    if parsed is not None and {"ark", "scp"} <= parsed[0]:
        ark, sep, scp = parsed[1].partition(",")
        if not sep or not ark or not scp:
            raise ValueError(f"{spec}: expected ark,scp:<ark-file>,<scp-file>")
        write_lattice_ark_scp(ark, scp, items, text=text or "t" in parsed[0])
        return
    path, opts = _strip_ark(spec)
    text = text or "t" in opts
    data = encode_lattices(items, text=text)
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    elif path.startswith("|"):
        subprocess.run(path[1:], shell=True, input=data, check=True)
    elif path.endswith(".gz"):
        with atomic_write(path, "wb") as fh:
            fh.write(gzip.compress(data, mtime=0))
    else:
        with atomic_write(path, "wb") as fh:
            fh.write(data)


# ----------------------------------------------------------------------------- scp (random access)
def read_lattice_scp(scp: str | os.PathLike) -> dict[str, str]:
    """``utt -> location`` lines of a lattice scp (``lat.1.ark:1234``, a path, or ``cmd |``)."""
    out: dict[str, str] = {}
    with open(scp, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.strip().split(maxsplit=1)
            if not parts:
                continue
            if len(parts) != 2:
                raise LatticeFormatError(f"{scp}:{lineno}: expected 'utt location', got {line!r}")
            if parts[0] in out:
                raise LatticeFormatError(f"{scp}:{lineno}: duplicate utterance {parts[0]}")
            out[parts[0]] = parts[1]
    return out


def _split_location(loc: str) -> tuple[str, int | None]:
    """``path:offset`` -> (path, offset); a path without an offset -> (path, None)."""
    head, sep, tail = loc.rpartition(":")
    if sep and tail.isdigit() and not loc.endswith("|"):
        return head, int(tail)
    return loc, None


def _read_object(f: BinaryIO, where: str) -> AnyLattice:
    """One lattice at the current position: binary (OpenFst magic) or text (``\\n`` + lines)."""
    peek = f.read(1)
    if peek == b"\xd6":
        return read_binary_lattice(
            io.BytesIO(peek + _read_exact(f, 3, where) + _drain_fst(f, where)), where
        )
    if peek in (b"\n", b"\r", b" "):
        lines = []
        while True:
            line = f.readline().decode().strip()
            if not line:
                break
            lines.append(line)
        return parse_text_lattice(lines, where)
    if peek == b"":
        raise LatticeFormatError(f"{where}: offset past the end of the archive")
    raise LatticeFormatError(f"{where}: no lattice at this offset")


class LatticeScpReader:
    """Random access to lattices through a Kaldi scp (``utt lat.1.ark:offset`` lines).

    ``reader[utt]`` seeks into the ark (open handles are kept, a few at a time) and parses one
    lattice; raises ``KeyError`` for an utterance the scp does not list and
    :class:`LatticeFormatError` for an unreadable one. A relative ark path is taken from the
    working directory (Kaldi's rule), else from the scp's directory. Locations without an offset
    are whole files (or ``cmd |`` pipes) holding one lattice.
    """

    MAX_OPEN = 8

    def __init__(self, scp: str | os.PathLike) -> None:
        self.scp = Path(scp)
        if not self.scp.is_file():
            raise FileNotFoundError(f"lattice scp not found: {self.scp}")
        self.locations = read_lattice_scp(self.scp)
        self._handles: dict[str, BinaryIO] = {}

    def keys(self) -> list[str]:
        return list(self.locations)

    def __len__(self) -> int:
        return len(self.locations)

    def __contains__(self, utt: object) -> bool:
        return utt in self.locations

    def _resolve(self, path: str) -> str:
        if Path(path).is_file() or Path(path).is_absolute():
            return path
        alt = self.scp.parent / path
        if alt.is_file():
            return str(alt)
        alt = self.scp.parent / Path(path).name  # a moved dir: the ark beside the scp
        return str(alt) if alt.is_file() else path

    def _handle(self, path: str) -> BinaryIO:
        fh = self._handles.pop(path, None)
        if fh is None:
            if len(self._handles) >= self.MAX_OPEN:
                oldest = next(iter(self._handles))
                self._handles.pop(oldest).close()
            real = self._resolve(path)
            if not Path(real).is_file():
                raise FileNotFoundError(f"{self.scp}: archive {path} not found")
            with open(real, "rb") as probe:
                if probe.read(2) == b"\x1f\x8b":
                    raise LatticeFormatError(
                        f"{self.scp}: {path} is gzip-compressed: an scp cannot seek into it "
                        "(copy it with lattice-copy to ark,scp:lat.N.ark,lat.N.scp)"
                    )
            fh = open(real, "rb")  # noqa: SIM115 (kept open for random access)
        self._handles[path] = fh  # most recently used last
        return fh

    def __getitem__(self, utt: str) -> AnyLattice:
        loc = self.locations[utt]
        where = f"{self.scp}: utterance {utt} ({loc})"
        path, offset = _split_location(loc)
        try:
            if offset is None:
                for _key, lat in _read_single(path, where):
                    return lat
                raise LatticeFormatError(f"{where}: empty file")
            fh = self._handle(path)
            fh.seek(offset)
            return _read_object(fh, where)
        except (struct.error, UnicodeDecodeError, OSError) as err:
            raise LatticeFormatError(f"{where}: {err}") from err

    def get(self, utt: str) -> AnyLattice | None:
        """The lattice of ``utt``, or None when the scp does not list it."""
        return self[utt] if utt in self.locations else None

    def close(self) -> None:
        for fh in self._handles.values():
            fh.close()
        self._handles.clear()

    def __enter__(self) -> LatticeScpReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_single(path: str, where: str) -> Iterator[tuple[str, AnyLattice]]:
    """A location without an offset: one lattice object (a file, or a command's output)."""
    if path.endswith("|"):
        proc = subprocess.run(path[:-1], shell=True, capture_output=True, check=False)
        if proc.returncode != 0:
            raise LatticeFormatError(f"{where}: command failed: {proc.stderr.decode()[-200:]}")
        data = proc.stdout
    else:
        raw = Path(path).read_bytes()
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    yield "", _read_object(io.BytesIO(data), where)


def quote(s: str) -> str:
    """Shell-quote (for log lines that show a command)."""
    return shlex.quote(s)
