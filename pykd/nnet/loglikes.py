"""Hybrid-decoding log-likelihoods from an acoustic network, and their validation.

Per frame ``t`` and pdf ``j``: ``loglike[t, j] = log_softmax(logits[t])[j] - s * log_prior[j]``
(``s`` = prior scale, natural log, unscaled by the acoustic weight), the input
``latgen-faster-mapped`` / ``steps_kd/decode_loglikes.sh`` expect. Matrices are float32, written
as a Kaldi binary ark + scp (kaldiio), atomically: a killed job leaves no ark that looks complete.

The network and its input come from the front end (:mod:`pykd.frontend`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pykd.features.ark import ArkScpWriter
from pykd.frontend.model import ModelForward
from pykd.io.compressed import kaldiio
from pykd.io.datadir import read_table

log = logging.getLogger(__name__)

MAX_NAMED = 10  # utterances named per kind of problem in a validation error


class LoglikesError(ValueError):
    """Bad log-likelihood input or output (the message names the utterance / file)."""


# ----------------------------------------------------------------------------- maths
def loglikes_from_logits(
    logits: np.ndarray | torch.Tensor,
    log_priors: np.ndarray | None = None,
    prior_scale: float = 1.0,
) -> np.ndarray:
    """``log_softmax(logits) - prior_scale * log_priors`` per row, as float32 ``(T, num_pdfs)``.

    The softmax is computed in float64 so that large logits lose no precision.
    """
    x = torch.as_tensor(logits).detach().to("cpu", torch.float64)
    if x.ndim != 2:
        raise LoglikesError(f"logits must be a (frames, pdfs) matrix, got shape {tuple(x.shape)}")
    out = torch.log_softmax(x, dim=1)
    if log_priors is not None and prior_scale != 0.0:
        lp = torch.as_tensor(np.asarray(log_priors, dtype=np.float64))
        if lp.shape != (x.shape[1],):
            raise LoglikesError(f"{lp.numel()} log-priors for {x.shape[1]} network outputs")
        out = out - prior_scale * lp
    return out.numpy().astype(np.float32)


# ----------------------------------------------------------------------------- writing
def write_loglikes(
    model_forward: ModelForward,
    utterances: Iterable[tuple[str, np.ndarray]],
    log_priors: np.ndarray | None,
    prior_scale: float,
    out_ark: str | os.PathLike,
    out_scp: str | os.PathLike,
    splice_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    forward_for_utt: Callable[[str], ModelForward] | None = None,
) -> dict[str, int]:
    """Write log-likelihoods of each ``(utt, features)`` to ``out_ark`` + ``out_scp``.

    ``model_forward`` maps a ``(T, input_dim)`` float32 matrix to ``(T, num_pdfs)`` logits;
    ``splice_fn`` (optional) is applied to the features first (e.g. CMVN'd, unspliced input).
    ``log_priors`` None means no prior division. ``forward_for_utt`` (optional) gives the
    ``model_forward`` of each utterance (e.g. per-speaker adapted parameters), replacing
    ``model_forward``. Returns frames per utterance written.
    """
    frames: dict[str, int] = {}
    with ArkScpWriter(out_ark, out_scp) as writer:
        for utt, feats in utterances:
            x = np.asarray(feats, dtype=np.float32)
            if splice_fn is not None:
                x = np.asarray(splice_fn(x), dtype=np.float32)
            if x.ndim != 2 or x.shape[0] == 0:
                raise LoglikesError(f"utterance {utt}: bad input shape {x.shape}")
            forward = model_forward if forward_for_utt is None else forward_for_utt(utt)
            logits = forward(x)
            if tuple(logits.shape[:1]) != (x.shape[0],):
                raise LoglikesError(
                    f"utterance {utt}: model gave {logits.shape[0]} rows for {x.shape[0]} frames"
                )
            mat = loglikes_from_logits(logits, log_priors, prior_scale)
            if not np.isfinite(mat).all():
                raise LoglikesError(f"utterance {utt}: non-finite log-likelihoods (NaN/inf)")
            writer.write(utt, mat)
            frames[utt] = mat.shape[0]
    log.info("wrote log-likelihoods of %d utterances to %s", len(frames), out_ark)
    return frames


# ----------------------------------------------------------------------------- validation
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
