"""Adaptation options (torch-free: ``pykd adapt-speakers --help`` shows these defaults without
importing torch)."""

from __future__ import annotations

from dataclasses import dataclass

from pykd.frontend.groups import PARAM_SETS
from pykd.train.options import OPTIMIZERS


class AdaptError(ValueError):
    """Bad adaptation input, or a speaker file that does not fit the base model."""


@dataclass
class AdaptConfig:
    """Adaptation settings (see ``pykd adapt-speakers --help``)."""

    params: str = "gates"
    epochs: int = 3
    lr: float = 5e-4
    optimizer: str = "adam"
    batch_size: int = 256
    kl_weight: float = 0.0
    seed: int = 777
    device: str = "cpu"
    teacher_cache_mb: float = 1024.0  # keep a speaker's teacher posteriors up to this size

    def validate(self) -> None:
        if self.params not in PARAM_SETS:
            raise AdaptError(f"params must be one of {PARAM_SETS}, got {self.params!r}")
        if self.optimizer not in OPTIMIZERS:
            raise AdaptError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.epochs < 0 or self.batch_size < 1:
            raise AdaptError("epochs must be >= 0 and batch_size >= 1")
        if not self.lr > 0 or self.kl_weight < 0 or self.teacher_cache_mb < 0:
            raise AdaptError("lr must be > 0, kl_weight and teacher_cache_mb >= 0")
