"""Acoustic models as the network commands load and modify them: checkpoint loading, the
parameter groups that training / adaptation may update, and per-speaker parameter files.

Checkpoints (``final.pt``) are read by :func:`load_acoustic_model`; two layouts are accepted:

* ``{"model_config": {...}, "state_dict": {...}, "num_pdfs": N, "input_dim": D,
  "input": {"splice": 5, "cmvn": "mean"}}``
* the trainer's ``{"model": state_dict, "meta": {same keys as above, without state_dict}}``.

``input_dim`` may be omitted: it is then read from the first layer's weight in the state dict.

A speaker file (``<dir>/spk/<spk>.pt``) holds only the adapted tensors, by name, with the sha256
of the base checkpoint it was adapted from; :func:`apply_speaker_params` puts them over the base
model and refuses another base. :class:`SpeakerModels` does that per utterance at decode time
(``pykd make-loglikes --spk-params``).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pykd.frontend.groups import PARAM_SETS
from pykd.frontend.spec import InputSpec
from pykd.io.atomic import atomic_path
from pykd.train.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

ModelForward = Callable[[np.ndarray], "np.ndarray | torch.Tensor"]
FILE_FORMAT = "pykd-speaker-params/1"


class ModelError(ValueError):
    """A checkpoint, parameter group or speaker file that does not fit (the message says which)."""


# ----------------------------------------------------------------------------- loading
def _first_weight_in_dim(state_dict: Mapping[str, torch.Tensor]) -> int:
    for name, tensor in state_dict.items():
        if name.endswith("weight") and getattr(tensor, "ndim", 0) == 2:
            return int(tensor.shape[1])
    raise ModelError("cannot infer input_dim: no 2-D weight in the state dict")


def load_acoustic_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Read a checkpoint (layouts: module docstring) -> (model in eval mode, meta).

    ``meta`` holds ``model_config``, ``num_pdfs``, ``input_dim`` and ``input`` (splice, cmvn; read
    with :meth:`InputSpec.from_meta`).
    """
    from pykd.models import build_model, model_config_from_dict  # noqa: PLC0415 (torch-heavy)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model checkpoint not found: {path}")
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict):
        raise ModelError(f"{path}: not a checkpoint dictionary")
    if "state_dict" in ckpt:
        meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
        state = ckpt["state_dict"]
    elif "model" in ckpt and isinstance(ckpt.get("meta"), dict):
        meta, state = dict(ckpt["meta"]), ckpt["model"]
    else:
        raise ModelError(f"{path}: expected keys state_dict or model+meta, got {sorted(ckpt)}")
    for key in ("model_config", "num_pdfs"):
        if key not in meta:
            raise ModelError(f"{path}: checkpoint has no '{key}'")
    cfg = meta["model_config"]
    cfg = model_config_from_dict(cfg) if isinstance(cfg, Mapping) else cfg
    input_dim = int(meta.get("input_dim") or _first_weight_in_dim(state))
    model = build_model(cfg, input_dim, int(meta["num_pdfs"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ModelError(f"{path}: state dict does not fit the model config: {err}") from err
    model.to(device).eval()
    meta["input_dim"] = input_dim
    meta["num_pdfs"] = int(meta["num_pdfs"])
    meta["input"] = InputSpec.from_meta(meta).to_meta()
    return model, meta


def checkpoint_num_pdfs(path: str | os.PathLike) -> int:
    """``num_pdfs`` stored in a network checkpoint (either layout), without building the model."""
    ckpt = load_checkpoint(path)
    meta = ckpt.get("meta", ckpt) if isinstance(ckpt, dict) else {}
    if "num_pdfs" not in meta:
        raise ModelError(f"{path}: checkpoint has no 'num_pdfs'")
    return int(meta["num_pdfs"])


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


# ----------------------------------------------------------------------------- parameter groups
def select_parameters(model: nn.Module, which: str) -> dict[str, nn.Parameter]:
    """The parameters to adapt, by name: ``gates`` (HDNN shared gates), ``output_bias``, ``all``."""
    named = dict(model.named_parameters())
    if which == "all":
        return named
    if which == "gates":
        gate_params = getattr(model, "gate_parameters", None)
        if gate_params is None:
            raise ModelError(f"--params gates needs an HDNN; this is a {type(model).__name__}")
        ids = {id(p) for p in gate_params()}
        return {n: p for n, p in named.items() if id(p) in ids}
    if which == "output_bias":
        out = getattr(model, "output", None)
        if not isinstance(out, nn.Linear) or out.bias is None:
            raise ModelError(f"{type(model).__name__} has no output layer bias")
        return {n: p for n, p in named.items() if p is out.bias}
    raise ModelError(f"unknown parameter set {which!r} (one of {', '.join(PARAM_SETS)})")


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes: the identity of a base checkpoint."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- speaker files
def speaker_file(out_dir: str | os.PathLike, speaker: str) -> Path:
    """``<out_dir>/spk/<speaker>.pt``."""
    if not speaker or "/" in speaker or speaker.startswith("."):
        raise ModelError(f"speaker id {speaker!r} cannot name a file")
    return Path(out_dir) / "spk" / f"{speaker}.pt"


def save_speaker_params(
    path: str | os.PathLike,
    state: Mapping[str, torch.Tensor],
    *,
    speaker: str,
    base_sha256: str,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write the adapted tensors (only those) + the base's identity, atomically."""
    payload = {
        "format": FILE_FORMAT,
        "speaker": speaker,
        "base_sha256": base_sha256,
        "params": {k: v.detach().to("cpu").clone() for k, v in state.items()},
        "meta": dict(meta or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_speaker_params(path: str | os.PathLike) -> dict[str, Any]:
    """Read a speaker file written by :func:`save_speaker_params`."""
    data = load_checkpoint(path, weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
        raise ModelError(f"{path}: not a pykd speaker-parameter file ({FILE_FORMAT})")
    return data


def _check_fits(model: nn.Module, spk: Mapping[str, Any], base_sha256: str, where: str) -> None:
    if spk["base_sha256"] != base_sha256:
        raise ModelError(
            f"{where}: adapted from base {spk['base_sha256'][:12]}..., not this model "
            f"({base_sha256[:12]}...)"
        )
    named = dict(model.named_parameters())
    for name, tensor in spk["params"].items():
        if name not in named:
            raise ModelError(f"{where}: the model has no parameter {name}")
        if tuple(named[name].shape) != tuple(tensor.shape):
            raise ModelError(
                f"{where}: {name} is {tuple(tensor.shape)}, the model's {tuple(named[name].shape)}"
            )


def apply_speaker_params(
    base_model: nn.Module,
    spk: Mapping[str, Any] | str | os.PathLike,
    base_sha256: str,
) -> nn.Module:
    """A copy of ``base_model`` with a speaker file's tensors put over it (eval mode).

    ``base_sha256``: identity of ``base_model``'s checkpoint; a file adapted from another
    base is an :class:`ModelError`.
    """
    where = str(spk) if not isinstance(spk, Mapping) else f"speaker {spk.get('speaker')}"
    data = spk if isinstance(spk, Mapping) else load_speaker_params(spk)
    _check_fits(base_model, data, base_sha256, where)
    model = copy.deepcopy(base_model).eval()
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in data["params"].items():
            named[name].copy_(tensor)
    return model


class SpeakerModels:
    """Per-utterance model for decoding: base + ``<spk_dir>/spk/<spk>.pt`` of its speaker.

    One working copy of the base is kept; switching speaker restores the previous speaker's
    tensors from the base and copies in the next one's (files cached per speaker). A speaker
    without a file (unknown, or skipped at adaptation) gets the base model and one warning.
    """

    def __init__(
        self,
        base_model: nn.Module,
        base_sha256: str,
        spk_dir: str | os.PathLike,
        utt2spk: Mapping[str, str],
    ) -> None:
        self.dir = Path(spk_dir) / "spk"
        if not self.dir.is_dir():
            raise ModelError(f"no speaker-parameter dir {self.dir}")
        self.base_sha256 = base_sha256
        self.utt2spk = dict(utt2spk)
        self.model = copy.deepcopy(base_model).eval()
        self._named = dict(self.model.named_parameters())
        self._base = {n: p.detach().clone() for n, p in self._named.items()}
        self._cache: dict[str, dict[str, Any] | None] = {}
        self._current: str | None = None
        self._changed: list[str] = []
        self.adapted_speakers: set[str] = set()
        self.base_speakers: set[str] = set()

    def _load(self, spk: str) -> dict[str, Any] | None:
        if spk not in self._cache:
            try:
                path = speaker_file(self.dir.parent, spk)
            except ModelError:
                path = None
            if path is None or not path.is_file():
                log.warning(
                    "speaker %s: no adapted parameters in %s, decoding with the base model",
                    spk, self.dir,
                )  # fmt: skip
                self._cache[spk] = None
            else:
                data = load_speaker_params(path)
                _check_fits(self.model, data, self.base_sha256, str(path))
                self._cache[spk] = data
        return self._cache[spk]

    def model_for(self, utt: str) -> nn.Module:
        """The model for ``utt`` (the same module object, its tensors set for the speaker)."""
        spk = self.utt2spk.get(utt, utt)
        if spk == self._current:
            return self.model
        data = self._load(spk)
        with torch.no_grad():
            for name in self._changed:
                self._named[name].copy_(self._base[name])
            self._changed = []
            if data is not None:
                for name, tensor in data["params"].items():
                    self._named[name].copy_(tensor)
                    self._changed.append(name)
        (self.adapted_speakers if data is not None else self.base_speakers).add(spk)
        self._current = spk
        return self.model
