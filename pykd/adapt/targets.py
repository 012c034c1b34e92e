"""Hard targets for supervised adaptation, and the utterance split of the split protocol.

* first-pass decoding: per utterance the best path of ``<decode-dir>/lat.N.gz`` at the LM weight
  and word insertion penalty of ``scoring_kaldi/best_wer`` (as Kaldi's scoring: lm_scale 1,
  acoustic_scale 1/LMWT, penalty added per word), transition-ids mapped to pdf-ids;
* oracle: forced alignments ``<ali-dir>/ali.N.gz`` of the reference transcripts.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from pykd.io.datadir import c_sorted
from pykd.io.jobs import job_files

log = logging.getLogger(__name__)

_WER_NAME = re.compile(r"wer_(\d+)_([^/\s]+)$")


def read_best_wer(decode_dir: str | os.PathLike) -> tuple[int, str]:
    """``(LMWT, WIP)`` of ``<decode-dir>/scoring_kaldi/best_wer`` (or ``<decode-dir>/best_wer``).

    The line's last token ends in ``wer_<LMWT>_<WIP>``; WIP is kept as written (e.g. ``0.0``).
    """
    ddir = Path(decode_dir)
    for path in (ddir / "scoring_kaldi" / "best_wer", ddir / "best_wer"):
        if path.is_file():
            tokens = path.read_text().split()
            m = _WER_NAME.search(tokens[-1]) if tokens else None
            if m is None:
                raise ValueError(f"{path}: last token does not end in wer_<LMWT>_<WIP>")
            float(m.group(2))  # a number
            return int(m.group(1)), m.group(2)
    raise FileNotFoundError(f"no scoring_kaldi/best_wer in {ddir} (score the decoding first)")


def best_path_pdfs(
    lattice_files: Iterable[str | os.PathLike],
    tid2pdf: np.ndarray,
    lmwt: float,
    wip: float = 0.0,
    utts: Iterable[str] | None = None,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """pdf-ids of each lattice's best path: ``({utt: pdf-ids}, utterances without a path)``.

    ``utts``: only these utterances (default: all in the archives).
    """
    from pykd.data.targets import ali_to_pdf  # noqa: PLC0415 (kaldi bindings)
    from pykd.decode.decoder import best_path  # noqa: PLC0415
    from pykd.kaldi.lattice_io import CompactLattice, read_lattices  # noqa: PLC0415

    wanted = None if utts is None else set(utts)
    out: dict[str, np.ndarray] = {}
    no_path: list[str] = []
    for f in lattice_files:
        for utt, lat in read_lattices(os.fspath(f)):
            if wanted is not None and utt not in wanted:
                continue
            if utt in out:
                raise ValueError(f"{f}: utterance {utt} appears in more than one lattice archive")
            if not isinstance(lat, CompactLattice):
                raise ValueError(f"{f}: utterance {utt} is not a CompactLattice")
            bp = best_path(lat, 1.0, 1.0 / lmwt, wip)
            if bp is None or not bp[1]:
                no_path.append(utt)
                continue
            out[utt] = ali_to_pdf(np.asarray(bp[1], dtype=np.int64), tid2pdf).astype(np.int64)
    if no_path:
        log.warning("%d lattices have no path (e.g. %s)", len(no_path), no_path[0])
    return out, no_path


def decode_targets(
    decode_dir: str | os.PathLike,
    model: str | os.PathLike,
    utts: Iterable[str] | None = None,
    lmwt: int | None = None,
    wip: str | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Best-path pdf targets of a first-pass decode dir; also ``{lmwt, wip, lattice_files, ...}``.

    ``lmwt`` / ``wip`` default to the decode dir's ``best_wer``.
    """
    from pykd.data.targets import pdf_map  # noqa: PLC0415 (kaldi bindings)

    ddir = Path(decode_dir)
    files = job_files(ddir, "lat")
    if lmwt is None or wip is None:
        best_lmwt, best_wip = read_best_wer(ddir)
        lmwt = best_lmwt if lmwt is None else lmwt
        wip = best_wip if wip is None else wip
    targets, no_path = best_path_pdfs(files, pdf_map(model), float(lmwt), float(wip), utts)
    info = {
        "lmwt": int(lmwt),
        "wip": str(wip),
        "lattice_files": len(files),
        "utts_with_path": len(targets),
        "utts_without_path": len(no_path),
    }
    log.info(
        "best paths of %d utterances from %s at LMWT %s, WIP %s", len(targets), ddir, lmwt, wip
    )
    return targets, info


def oracle_targets(ali_dir: str | os.PathLike, model: str | os.PathLike) -> dict[str, np.ndarray]:
    """pdf targets of the forced alignments ``<ali-dir>/ali.N.gz`` (reference transcripts)."""
    from pykd.data.targets import load_pdf_alignments  # noqa: PLC0415 (kaldi bindings)

    adir = Path(ali_dir)
    files = job_files(adir, "ali")
    return {u: a.astype(np.int64) for u, a in load_pdf_alignments(files, model).items()}


def split_utterances(
    spk2utts: Mapping[str, Iterable[str]],
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Split protocol: per speaker, utterances sorted (C order); the first ceil(n/2) adapt,
    the rest test. Returns ``(adapt, test)`` per speaker."""
    adapt: dict[str, list[str]] = {}
    test: dict[str, list[str]] = {}
    for spk, utts in spk2utts.items():
        ordered = c_sorted(set(utts))
        k = math.ceil(len(ordered) / 2)
        adapt[spk], test[spk] = ordered[:k], ordered[k:]
    return adapt, test
