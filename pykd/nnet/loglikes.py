"""Hybrid-decoding log-likelihoods from an acoustic network, and their validation.

Per frame ``t`` and pdf ``j``: ``loglike[t, j] = log_softmax(logits[t])[j] - s * log_prior[j]``
(``s`` = prior scale, natural log, unscaled by the acoustic weight), the input
``latgen-faster-mapped`` / ``steps_kd/decode_loglikes.sh`` expect. Matrices are float32, written
as a Kaldi binary ark + scp (kaldiio), atomically: a killed job leaves no ark that looks complete.

Checkpoints (``final.pt``) are read by :func:`load_acoustic_model`; two layouts are accepted:

* ``{"model_config": {...}, "state_dict": {...}, "num_pdfs": N, "input_dim": D,
  "input": {"splice": 5, "cmvn": "mean"}}``
* the trainer's ``{"model": state_dict, "meta": {same keys as above, without state_dict}}``.

``input_dim`` may be omitted: it is then read from the first layer's weight in the state dict.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pykd.features.ark import ArkScpWriter
from pykd.features.cmvn import apply_cmvn
from pykd.io.compressed import kaldiio
from pykd.io.datadir import read_table
from pykd.train.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

ModelForward = Callable[[np.ndarray], "np.ndarray | torch.Tensor"]
DEFAULT_INPUT = {"splice": 5, "cmvn": "mean"}
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


# ----------------------------------------------------------------------------- model
def _first_weight_in_dim(state_dict: Mapping[str, torch.Tensor]) -> int:
    for name, tensor in state_dict.items():
        if name.endswith("weight") and getattr(tensor, "ndim", 0) == 2:
            return int(tensor.shape[1])
    raise LoglikesError("cannot infer input_dim: no 2-D weight in the state dict")


def load_acoustic_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Read a checkpoint (layouts: module docstring) -> (model in eval mode, meta).

    ``meta`` holds ``model_config``, ``num_pdfs``, ``input_dim`` and ``input`` (splice, cmvn).
    """
    from pykd.models import build_model, model_config_from_dict  # noqa: PLC0415 (torch-heavy)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model checkpoint not found: {path}")
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict):
        raise LoglikesError(f"{path}: not a checkpoint dictionary")
    if "state_dict" in ckpt:
        meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
        state = ckpt["state_dict"]
    elif "model" in ckpt and isinstance(ckpt.get("meta"), dict):
        meta, state = dict(ckpt["meta"]), ckpt["model"]
    else:
        raise LoglikesError(f"{path}: expected keys state_dict or model+meta, got {sorted(ckpt)}")
    for key in ("model_config", "num_pdfs"):
        if key not in meta:
            raise LoglikesError(f"{path}: checkpoint has no '{key}'")
    cfg = meta["model_config"]
    cfg = model_config_from_dict(cfg) if isinstance(cfg, Mapping) else cfg
    input_dim = int(meta.get("input_dim") or _first_weight_in_dim(state))
    model = build_model(cfg, input_dim, int(meta["num_pdfs"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise LoglikesError(f"{path}: state dict does not fit the model config: {err}") from err
    model.to(device).eval()
    meta["input_dim"] = input_dim
    meta["num_pdfs"] = int(meta["num_pdfs"])
    meta["input"] = {**DEFAULT_INPUT, **dict(meta.get("input") or {})}
    return model, meta


def module_forward(
    model: nn.Module, device: str | torch.device = "cpu", chunk_frames: int = 4096
) -> ModelForward:
    """A ``model_forward`` for :func:`write_loglikes`: eval mode, no grad, chunks of frames."""
    model.eval()

    def forward(x: np.ndarray) -> torch.Tensor:
        outs = []
        with torch.no_grad():
            for t0 in range(0, x.shape[0], chunk_frames):
                xt = torch.from_numpy(np.ascontiguousarray(x[t0 : t0 + chunk_frames]))
                outs.append(model(xt.to(device)).float().cpu())
        return torch.cat(outs, 0)

    return forward


# ----------------------------------------------------------------------------- input features
def iter_features(
    data_dir: str | os.PathLike, cmvn: str = "mean"
) -> Iterator[tuple[str, np.ndarray]]:
    """``(utt, features)`` of ``data_dir/feats.scp`` with per-speaker CMVN from ``cmvn.scp``.

    ``cmvn``: ``mean`` (Kaldi apply-cmvn default), ``meanvar`` or ``none``.
    """
    data = Path(data_dir)
    if cmvn not in ("mean", "meanvar", "none"):
        raise LoglikesError(f"unknown cmvn mode {cmvn!r} (mean, meanvar, none)")
    stats: dict[str, np.ndarray] = {}
    utt2spk: dict[str, str] = {}
    if cmvn != "none":
        for f in ("cmvn.scp", "utt2spk"):
            if not (data / f).is_file():
                raise FileNotFoundError(f"{data / f} needed for cmvn={cmvn}")
        stats = dict(kaldiio.load_scp(str(data / "cmvn.scp")))
        utt2spk = read_table(data / "utt2spk")
    for utt, feats in kaldiio.load_scp_sequential(str(data / "feats.scp")):
        if cmvn != "none":
            spk = utt2spk.get(utt)
            if spk is None or spk not in stats:
                raise LoglikesError(f"utterance {utt}: no CMVN stats (speaker {spk!r})")
            feats = apply_cmvn(feats, stats[spk], norm_vars=cmvn == "meanvar")
        yield utt, np.asarray(feats, dtype=np.float32)


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


def checkpoint_num_pdfs(path: str | os.PathLike) -> int:
    """``num_pdfs`` stored in a network checkpoint (either layout), without building the model."""
    ckpt = load_checkpoint(path)
    meta = ckpt.get("meta", ckpt) if isinstance(ckpt, dict) else {}
    if "num_pdfs" not in meta:
        raise LoglikesError(f"{path}: checkpoint has no 'num_pdfs'")
    return int(meta["num_pdfs"])
