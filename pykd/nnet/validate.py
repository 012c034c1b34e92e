"""Checks of log-likelihood tables before decoding (finite, one row per frame, the model's pdfs,
every utterance) and of a network's pdfs against the GMM model. Free of torch: each network
decode runs ``pykd validate-loglikes`` once per set, and importing torch would triple its time."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pykd.io.compressed import kaldiio
from pykd.io.datadir import read_table

MAX_NAMED = 10  # utterances named per kind of problem in a validation error


class LoglikesError(ValueError):
    """Bad log-likelihood input or output (the message names the utterance / file)."""


@dataclass
class ValidationReport:
    """What :func:`validate_loglikes` checked."""

    num_utts: int = 0
    num_frames: int = 0
    problems: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, message: str) -> None:
        self.problems.setdefault(kind, []).append(message)

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self, where: str) -> str:
        lines = [f"{where}: invalid log-likelihoods"]
        for kind, msgs in self.problems.items():
            shown = "; ".join(msgs[:MAX_NAMED])
            more = f" (and {len(msgs) - MAX_NAMED} more)" if len(msgs) > MAX_NAMED else ""
            lines.append(f"  {kind} [{len(msgs)}]: {shown}{more}")
        return "\n".join(lines)


def _frame_counts(spec: str | os.PathLike | Mapping[str, int] | None) -> dict[str, int] | None:
    if spec is None or isinstance(spec, Mapping):
        return None if spec is None else {k: int(v) for k, v in spec.items()}
    path = Path(spec)
    if path.name.endswith(".scp"):  # a feats.scp: lengths from the matrix headers
        return {k: int(v.shape[0]) for k, v in kaldiio.load_scp(str(path)).items()}
    return {k: int(v) for k, v in read_table(path).items()}


def validate_loglikes(
    scp: str | os.PathLike,
    num_pdfs: int,
    utt2num_frames: str | os.PathLike | Mapping[str, int] | None = None,
    utts: Iterable[str] | None = None,
    raise_on_error: bool = True,
) -> ValidationReport:
    """Check an scp of log-likelihood matrices before decoding.

    Every row finite, ``dim == num_pdfs``, one row per frame (``utt2num_frames``: a file
    ``utt N``, a ``feats.scp`` or a mapping), every utterance of ``utts`` present (default: the
    keys of ``utt2num_frames``). Raises :class:`LoglikesError` naming the utterances, unless
    ``raise_on_error`` is False.
    """
    scp = Path(scp)
    if not scp.is_file():
        raise FileNotFoundError(f"log-likelihood scp not found: {scp}")
    counts = _frame_counts(utt2num_frames)
    wanted = list(utts) if utts is not None else (list(counts) if counts is not None else None)
    rep = ValidationReport()
    seen: set[str] = set()
    for utt, mat in kaldiio.load_scp_sequential(str(scp)):
        mat = np.asarray(mat)
        seen.add(utt)
        rep.num_utts += 1
        if mat.ndim != 2:
            rep.add("not a matrix", f"{utt} shape {mat.shape}")
            continue
        rep.num_frames += mat.shape[0]
        if mat.shape[1] != num_pdfs:
            rep.add("wrong dim", f"{utt} has {mat.shape[1]} columns, model has {num_pdfs} pdfs")
        bad = ~np.isfinite(mat)
        if bad.any():
            rows = np.flatnonzero(bad.any(axis=1))
            rep.add("non-finite", f"{utt} has NaN/inf in {len(rows)} rows (first row {rows[0]})")
        if counts is not None:
            if utt not in counts:
                rep.add("unknown utterance", f"{utt} is not in the data dir")
            elif counts[utt] != mat.shape[0]:
                rep.add("frame count", f"{utt} has {mat.shape[0]} rows for {counts[utt]} frames")
    if wanted is not None:
        missing = [u for u in wanted if u not in seen]
        for u in missing:
            rep.add("missing", f"{u} has no log-likelihoods")
    if not rep.ok and raise_on_error:
        raise LoglikesError(rep.message(str(scp)))
    return rep


def num_pdfs_of_model(path: str | os.PathLike) -> int:
    """Number of pdfs of a Kaldi model (final.mdl, transition model first)."""
    from pykd.kaldi.model_io import read_transition_model  # noqa: PLC0415 (kaldi bindings)

    return int(read_transition_model(path).num_pdfs)


def check_network_pdfs(
    meta: dict, model_path: str | os.PathLike, mdl_num_pdfs: int, mdl: str | os.PathLike
) -> None:
    """LoglikesError unless the network (its ``meta``) outputs the model's number of pdfs."""
    if int(meta["num_pdfs"]) != int(mdl_num_pdfs):
        raise LoglikesError(
            f"{model_path} outputs {meta['num_pdfs']} pdfs but {mdl} has {mdl_num_pdfs}"
        )
