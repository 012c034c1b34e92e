"""Kaldi Posterior tables (``copy-post``, nnet1's ``--labels``): per utterance and frame a list
of ``(pdf-id, weight)`` pairs, in binary arks with an scp index.

Binary layout of one utterance (after ``key `` and ``\\0B``): the frame count, then per frame
the pair count and the pairs, every number as Kaldi writes a basic type (a size byte, 4, then
little-endian int32 / float32). No Python package reads or writes these (kaldiio has no
Posterior holder), so this module does, vectorised for the fixed-size frames pykd writes
(top-k posteriors: k pairs on every frame); frames of other sizes (Kaldi's) are read one by one.

In memory an utterance is ``(ids, weights)``: ``(T, k)`` int32 and float32 arrays, rows padded
with id 0 / weight 0 where a frame has fewer than k pairs.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from pykd.io.atomic import atomic_write

Posterior = tuple[np.ndarray, np.ndarray]  # (ids (T, k) int32, weights (T, k) float32)

_PAIR = np.dtype([("s1", "u1"), ("id", "<i4"), ("s2", "u1"), ("w", "<f4")])
_INT = np.dtype([("s", "u1"), ("v", "<i4")])


class PosteriorFormatError(ValueError):
    """A Posterior table that cannot be read (the message names file and utterance)."""


def _frames_fixed(ids: np.ndarray, weights: np.ndarray) -> bytes:
    """The frames of one utterance, every frame with k pairs."""
    t, k = ids.shape
    rec = np.dtype([("s", "u1"), ("n", "<i4"), ("pairs", _PAIR, (k,))])
    out = np.zeros(t, dtype=rec)
    out["s"], out["n"] = 4, k
    out["pairs"]["s1"], out["pairs"]["s2"] = 4, 4
    out["pairs"]["id"], out["pairs"]["w"] = ids, weights
    return b"\x04" + struct.pack("<i", t) + out.tobytes()


def write_posteriors(
    ark: str | os.PathLike, scp: str | os.PathLike, items: Iterable[tuple[str, Posterior]]
) -> int:
    """Write ``(utt, (ids, weights))`` items as a binary ark + scp (atomically: a killed run
    leaves neither file half-written); returns the frames written."""
    ark, scp = Path(ark), Path(scp)
    frames = 0
    lines = []
    with atomic_write(ark, "wb") as f:
        pos = 0
        for utt, (ids, weights) in items:
            ids = np.asarray(ids, dtype=np.int32)
            weights = np.asarray(weights, dtype=np.float32)
            if ids.ndim != 2 or ids.shape != weights.shape:
                raise ValueError(f"utterance {utt}: ids {ids.shape} and weights {weights.shape}")
            head = f"{utt} ".encode()
            body = b"\0B" + _frames_fixed(ids, weights)
            f.write(head + body)
            lines.append(f"{utt} {ark}:{pos + len(head)}\n")
            pos += len(head) + len(body)
            frames += ids.shape[0]
    with atomic_write(scp, "w") as f:
        f.write("".join(lines))
    return frames


def _parse(data: bytes, pos: int, where: str) -> tuple[Posterior, int]:
    """One utterance's Posterior starting at ``\\0B``; returns it and the position after it."""
    if data[pos : pos + 2] != b"\0B":
        raise PosteriorFormatError(f"{where}: not a binary Posterior (text tables: use copy-post)")
    pos += 2
    if len(data) < pos + 5 or data[pos] != 4:
        raise PosteriorFormatError(f"{where}: truncated or corrupt")
    (t,) = struct.unpack_from("<i", data, pos + 1)
    pos += 5
    if t == 0:
        return (np.zeros((0, 0), np.int32), np.zeros((0, 0), np.float32)), pos
    if len(data) < pos + 5:
        raise PosteriorFormatError(f"{where}: truncated or corrupt")
    (k,) = struct.unpack_from("<i", data, pos + 1)
    size = 5 + 10 * k
    if k >= 0 and len(data) >= pos + t * size:  # the fixed-size layout pykd writes?
        rec = np.dtype([("s", "u1"), ("n", "<i4"), ("pairs", _PAIR, (k,))])
        arr = np.frombuffer(data, dtype=rec, count=t, offset=pos)
        if (arr["n"] == k).all() and (arr["s"] == 4).all():
            return (arr["pairs"]["id"].copy(), arr["pairs"]["w"].copy()), pos + t * size
    rows: list[np.ndarray] = []  # frames of different sizes: one by one
    for _ in range(t):
        head = np.frombuffer(data, dtype=_INT, count=1, offset=pos) if len(data) >= pos + 5 else []
        if len(head) == 0 or head["s"][0] != 4 or head["v"][0] < 0:
            raise PosteriorFormatError(f"{where}: truncated or corrupt")
        n = int(head["v"][0])
        pos += 5
        if len(data) < pos + 10 * n:
            raise PosteriorFormatError(f"{where}: truncated or corrupt")
        rows.append(np.frombuffer(data, dtype=_PAIR, count=n, offset=pos))
        pos += 10 * n
    width = max(len(r) for r in rows)
    ids = np.zeros((t, width), np.int32)
    weights = np.zeros((t, width), np.float32)
    for i, r in enumerate(rows):
        ids[i, : len(r)], weights[i, : len(r)] = r["id"], r["w"]
    return (ids, weights), pos


def read_posterior_ark(path: str | os.PathLike) -> Iterator[tuple[str, Posterior]]:
    """Every ``(utt, (ids, weights))`` of a binary Posterior ark, in file order."""
    data = Path(path).read_bytes()
    pos = 0
    while pos < len(data):
        sp = data.find(b" ", pos)
        if sp < 0:
            raise PosteriorFormatError(f"{path}: truncated entry at byte {pos}")
        utt = data[pos:sp].decode()
        post, pos = _parse(data, sp + 1, f"{path}: utterance {utt}")
        yield utt, post


class PosteriorTable:
    """Random access to a Posterior table through its scp (``utt file:offset``): an
    utterance's record is read when asked for, so memory does not grow with the corpus."""

    def __init__(self, scp: str | os.PathLike) -> None:
        self.scp = Path(scp)
        self.index: dict[str, tuple[str, int]] = {}
        for n, line in enumerate(self.scp.read_text().splitlines(), 1):
            if not line.strip():
                continue
            utt, _, loc = line.partition(" ")
            path, _, off = loc.strip().rpartition(":")
            if not path or not off.isdigit():
                raise PosteriorFormatError(f"{self.scp}:{n}: expected 'utt file:offset'")
            self.index[utt] = (path, int(off))
        self._files: dict[str, bytes] = {}

    def __contains__(self, utt: object) -> bool:
        return utt in self.index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, utt: str) -> Posterior:
        path, off = self.index[utt]
        with open(path, "rb") as f:
            f.seek(off)
            head = f.read(7)
            if len(head) < 7:
                raise PosteriorFormatError(f"{path}: utterance {utt}: truncated or corrupt")
            (t,) = struct.unpack_from("<i", head, 3)
            k_head = f.read(5)
            k = struct.unpack_from("<i", k_head, 1)[0] if len(k_head) == 5 else 0
            f.seek(off)
            data = f.read(7 + max(t, 0) * (5 + 10 * max(k, 0)))
        try:
            return _parse(data, 0, f"{path}: utterance {utt}")[0]
        except PosteriorFormatError:  # frames of different sizes: parse from the whole file
            data = self._files.setdefault(path, Path(path).read_bytes())
            return _parse(data, off, f"{path}: utterance {utt}")[0]

    def __getstate__(self) -> dict:  # DataLoader workers: no cached file contents
        state = self.__dict__.copy()
        state["_files"] = {}
        return state
