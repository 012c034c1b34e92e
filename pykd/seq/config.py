"""Sequence-training options (torch-free: the command line shows these defaults without
importing torch)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pykd.train.options import OPTIMIZERS, PRECISIONS, SEQ_CRITERIA, KdOptions

CRITERIA = tuple(SEQ_CRITERIA)


class SeqTrainError(ValueError):
    """A configuration or input problem found before training starts."""


@dataclass
class SeqTrainConfig:
    """Sequence-training options (Kaldi nnet1 ``train_mpe.sh`` defaults where it has them)."""

    criterion: str = "smbr"  # smbr | mpfe | mmi
    acwt: float = 0.1  # kappa: acoustic scale of the lattice posteriors
    lm_scale: float = 1.0
    old_acoustic_scale: float = 0.0  # 0: the lattice's acoustic costs are discarded (nnet1)
    boost: float = 0.0  # boosted MMI factor b
    one_silence_class: bool = True  # sMBR/MPFE: all silence phones count as one class
    drop_frames: bool = True
    kd_q: float = 0.0  # weight of the teacher's soft CE (needs a teacher)
    kd_temperature: float = KdOptions.temperature
    params: str = "all"  # all | gates (HDNN shared gates only)
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.01  # SGD, loss per frame (docs/sequence.md)
    momentum: float = 0.0
    epochs: int = 4
    utts_per_step: int = 32  # utterances per update, one batched forward-backward (1: nnet1)
    seed: int = 0
    shuffle: bool = True
    prior_scale: float = 1.0
    checkpoint_every: int = 200  # utterances; 0 = only at epoch ends
    log_every: int = 100  # utterances
    device: str = "cpu"
    precision: str = "float32"  # the network's matrix products: float32 | bfloat16 | auto
    stop_after_utts: int = 0  # >0: checkpoint and return after this many updates (tests)

    def validate(self) -> None:
        if self.criterion not in CRITERIA:
            raise SeqTrainError(f"criterion must be one of {', '.join(CRITERIA)}")
        if self.boost and self.criterion != "mmi":
            raise SeqTrainError("--boost is for MMI only")
        if not 0.0 <= self.kd_q <= 1.0:
            raise SeqTrainError(f"kd_q must be in [0, 1], got {self.kd_q}")
        if self.kd_temperature <= 0:
            raise SeqTrainError("kd_temperature must be positive")
        if self.params not in ("all", "gates"):
            raise SeqTrainError("params must be 'all' or 'gates'")
        if self.optimizer not in OPTIMIZERS:
            raise SeqTrainError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise SeqTrainError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.lr <= 0 or self.epochs < 1 or self.acwt <= 0 or self.utts_per_step < 1:
            raise SeqTrainError("lr, epochs, utts_per_step and acwt must be positive")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SeqTrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
