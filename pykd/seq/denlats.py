"""Denominator lattices for sequence training: random access by utterance, and the weak LM.

Layouts read by :class:`DenLattices` (``<dir>`` as ``steps_kd/make_denlats.sh`` or Kaldi's
``make_denlats.sh`` leave it):

* ``<dir>/lat.scp`` (+ ``lat.N.ark``): Kaldi nnet1's layout and ours; random access, nothing
  is held in memory.
* ``<dir>/lat.N.gz`` only (Kaldi's older / nnet2 layout, or a decode dir): gzip cannot be
  seeked into, so every lattice is read once and kept in memory (fine for small corpora; for
  large ones convert first: ``pykd lattice-copy lat.N.gz ark,scp:lat.N.ark,lat.N.scp``).

The weak LM of Kaldi's make_denlats is a unigram over the training transcripts;
:func:`unigram_arpa` writes it as an ARPA file, which ``format_lm`` turns into a G.fst.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pykd.io.atomic import atomic_write
from pykd.kaldi.lattice_io import (
    AnyLattice,
    LatticeFormatError,
    LatticeScpReader,
    read_lattices,
)

log = logging.getLogger(__name__)


def _job_archives(path: Path) -> list[Path]:
    """``lat.N.gz`` / ``lat.N.ark`` of a dir, in job order."""
    found = [p for p in path.glob("lat.*") if p.name.split(".")[1].isdigit()]
    found = [p for p in found if p.suffix in (".gz", ".ark")]
    return sorted(found, key=lambda p: int(p.name.split(".")[1]))


class DenLattices:
    """``lats[utt]`` -> lattice, ``utt in lats``; see the module docstring for the layouts.

    ``path`` is a lattice dir, an scp file, or a single archive. ``lats[utt]`` raises
    ``KeyError`` when the utterance has no lattice and :class:`LatticeFormatError` when its
    lattice cannot be read (the trainer skips and counts both).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        self.path = path
        self._scp: LatticeScpReader | None = None
        self._mem: dict[str, AnyLattice] = {}
        self.unreadable_archives: list[str] = []
        if path.is_file() and path.name.endswith(".scp"):
            self._scp = LatticeScpReader(path)
        elif path.is_dir() and (path / "lat.scp").is_file():
            self._scp = LatticeScpReader(path / "lat.scp")
        else:
            archives = [path] if path.is_file() else _job_archives(path)
            if not archives:
                raise FileNotFoundError(f"no lat.scp or lat.N.gz / lat.N.ark in {path}")
            for ark in archives:
                self._load(ark)
            log.info(
                "%s: no lat.scp; %d lattices from %d archives held in memory",
                path, len(self._mem), len(archives),
            )  # fmt: skip

    def _load(self, ark: Path) -> None:
        """Read a whole archive; on a corrupt lattice keep what came before it and go on."""
        try:
            for utt, lat in read_lattices(str(ark)):
                self._mem[utt] = lat
        except (LatticeFormatError, EOFError, OSError, ValueError) as err:
            log.warning("%s: unreadable after %d lattices: %s", ark, len(self._mem), err)
            self.unreadable_archives.append(str(ark))

    @property
    def layout(self) -> str:
        return "scp" if self._scp is not None else "memory"

    def keys(self) -> list[str]:
        return self._scp.keys() if self._scp is not None else list(self._mem)

    def __len__(self) -> int:
        return len(self._scp) if self._scp is not None else len(self._mem)

    def __contains__(self, utt: object) -> bool:
        return utt in (self._scp if self._scp is not None else self._mem)

    def __getitem__(self, utt: str) -> AnyLattice:
        if self._scp is not None:
            return self._scp[utt]
        return self._mem[utt]

    def close(self) -> None:
        if self._scp is not None:
            self._scp.close()


# ----------------------------------------------------------------------------- weak LM
SPECIAL = {"<eps>", "<s>", "</s>", "#0"}


def _transcripts(text: str | os.PathLike, kaldi_text: bool) -> Iterator[list[str]]:
    opener = gzip.open if str(text).endswith(".gz") else open
    with opener(text, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for line in fh:
            toks = line.split()
            if kaldi_text:
                toks = toks[1:]
            yield toks


def unigram_arpa(
    text: str | os.PathLike,
    out_arpa: str | os.PathLike,
    words: set[str] | None = None,
    oov: str = "<unk>",
    kaldi_text: bool = True,
) -> dict[str, int]:
    """Write the maximum-likelihood unigram of ``text`` (Kaldi ``text`` lines) as an ARPA file.

    p(w) = c(w) / N and p(</s>) = sentences / N, N = tokens + sentences (the weak LM of Kaldi's
    make_denlats, whose G is a one-state loop of these words). Words outside ``words`` (the
    lang's symbols) are counted as ``oov``. ``.gz`` output is gzipped. Returns the counts.
    """
    counts: Counter[str] = Counter()
    sentences = 0
    for toks in _transcripts(text, kaldi_text):
        sentences += 1
        for w in toks:
            counts[w if words is None or w in words else oov] += 1
    for special in SPECIAL & set(counts):
        raise ValueError(f"{text}: the transcripts contain the reserved symbol {special!r}")
    if not sentences:
        raise ValueError(f"{text}: no sentences")
    if words is not None and oov in counts and oov not in words:
        raise ValueError(f"{text}: words outside the lang and OOV symbol {oov!r} not in it")
    total = sum(counts.values()) + sentences
    lines = ["", "\\data\\", f"ngram 1={len(counts) + 2}", "", "\\1-grams:"]
    lines.append(f"{math.log10(sentences / total):.6f}\t</s>")
    lines.append("-99\t<s>")
    for w in sorted(counts):
        lines.append(f"{math.log10(counts[w] / total):.6f}\t{w}")
    lines += ["", "\\end\\", ""]
    data = "\n".join(lines).encode()
    with atomic_write(out_arpa, "wb") as fh:
        fh.write(gzip.compress(data, mtime=0) if str(out_arpa).endswith(".gz") else data)
    log.info(
        "%s: unigram over %d words (%d tokens, %d sentences%s)",
        out_arpa, len(counts), total - sentences, sentences,
        f", {counts[oov]} OOV tokens" if oov in counts and words is not None else "",
    )  # fmt: skip
    return dict(counts)
