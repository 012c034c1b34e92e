"""Dataclass configs for the acoustic models, loaded from YAML (``conf/*.yaml``).

A config file holds a ``model:`` mapping (other top-level sections, e.g. ``train:``, are left for
their own readers); a file without a ``model:`` key is read as the model mapping itself.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

ACTIVATIONS = ("sigmoid", "relu", "tanh")
CARRY_MODES = ("independent", "one_minus_transform")


@dataclass
class DNNConfig:
    """Plain feed-forward DNN (the teacher): ``num_layers`` x ``hidden_dim`` then a pdf layer."""

    num_layers: int = 6
    hidden_dim: int = 2048
    activation: str = "sigmoid"  # sigmoid as Kaldi nnet1, or relu / tanh
    dropout: float = 0.0  # dropout after each hidden activation (0 = off)

    def validate(self) -> None:
        _check_positive(self, "num_layers", "hidden_dim")
        _check_choice(self, "activation", ACTIVATIONS)
        _check_prob(self, "dropout")


@dataclass
class HDNNConfig:
    """Highway DNN (the student), docs/design.md §1: one projection, ``num_layers`` highway layers.

    The transform gate T and carry gate C are one pair of linear maps shared by all layers.
    """

    num_layers: int = 10
    hidden_dim: int = 128
    activation: str = "sigmoid"  # sigma in h = sigma(W h + b) * T + h * C (and the projection)
    carry: str = "independent"  # independent C = sigmoid(W_C h + b_C), or C = 1 - T
    transform_bias_init: float = -2.0  # b_T at init: T ~ 0.12, layers start near identity
    carry_bias_init: float = 2.0  # b_C at init (independent mode): C ~ 0.88, mirrors 1 - T
    dropout: float = 0.0  # dropout on each layer's output (0 = off)

    def validate(self) -> None:
        _check_positive(self, "num_layers", "hidden_dim")
        _check_choice(self, "activation", ACTIVATIONS)
        _check_choice(self, "carry", CARRY_MODES)
        _check_prob(self, "dropout")


@dataclass
class ModelConfig:
    """Which model, and its settings (only the one for ``type`` is used)."""

    type: Literal["dnn", "hdnn"] = "dnn"
    dnn: DNNConfig = field(default_factory=DNNConfig)
    hdnn: HDNNConfig = field(default_factory=HDNNConfig)

    def validate(self) -> None:
        _check_choice(self, "type", ("dnn", "hdnn"))
        self.arch.validate()

    @property
    def arch(self) -> DNNConfig | HDNNConfig:
        """The settings of the selected model type."""
        return self.dnn if self.type == "dnn" else self.hdnn

    def to_dict(self) -> dict[str, Any]:
        """``{"type": ..., "<type>": {...}}``: what ``model_config_from_dict`` takes back."""
        return {"type": self.type, self.type: dataclasses.asdict(self.arch)}


def model_config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Build and validate a ``ModelConfig``; unknown keys are an error (catches typos)."""
    data = dict(data)
    mtype = data.pop("type", "dnn")
    cfg = ModelConfig(type=mtype)
    for key, value in data.items():
        if key == "dnn":
            cfg.dnn = _dataclass_from_dict(DNNConfig, value, "model.dnn")
        elif key == "hdnn":
            cfg.hdnn = _dataclass_from_dict(HDNNConfig, value, "model.hdnn")
        else:
            raise ValueError(f"unknown key model.{key} (expected type, dnn, hdnn)")
    cfg.validate()
    return cfg


def load_model_config(path: str | os.PathLike) -> ModelConfig:
    """Read the ``model:`` section of a YAML file (or the whole file if it has none)."""
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping")
    section = data.get("model", data)
    if not isinstance(section, dict):
        raise ValueError(f"{path}: 'model' must be a mapping")
    try:
        return model_config_from_dict(section)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from err


def _dataclass_from_dict(cls: type, value: Any, where: str) -> Any:
    if value is None:
        return cls()
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a mapping")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ValueError(f"unknown key(s) in {where}: {', '.join(unknown)}")
    return cls(**value)


def _check_positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_choice(obj: Any, name: str, choices: tuple[str, ...]) -> None:
    if getattr(obj, name) not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {getattr(obj, name)!r}")


def _check_prob(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
