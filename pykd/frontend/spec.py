"""A network's input contract: how its input rows are made from a data dir's features.

The contract is written into every checkpoint's ``meta`` (``meta["input"] = {"splice": S,
"cmvn": MODE}``, beside ``meta["input_dim"]``) by :meth:`InputSpec.to_meta` and read back by
:meth:`InputSpec.from_meta`, the only two places that know the layout and the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_SPLICE = 5  # frames each side: 11 x 40 fbank = 440 inputs (docs/design.md §1)
DEFAULT_CMVN = "mean"  # Kaldi apply-cmvn's default
CMVN_MODES = ("mean", "meanvar", "none")


@dataclass(frozen=True)
class InputSpec:
    """Per-speaker CMVN mode and +-``splice`` frames of context around each frame."""

    splice: int = DEFAULT_SPLICE
    cmvn: str = DEFAULT_CMVN

    def __post_init__(self) -> None:
        if self.cmvn not in CMVN_MODES:
            raise ValueError(f"unknown CMVN mode {self.cmvn!r} (one of {', '.join(CMVN_MODES)})")
        if self.splice < 0:
            raise ValueError(f"splice must be >= 0, got {self.splice}")

    @property
    def norm_vars(self) -> bool:
        """Whether CMVN also normalises variances."""
        return self.cmvn == "meanvar"

    def input_dim(self, feat_dim: int) -> int:
        """Network input dimension for features of ``feat_dim``."""
        return feat_dim * (2 * self.splice + 1)

    def to_meta(self) -> dict[str, Any]:
        """The ``meta["input"]`` entry of a checkpoint."""
        return {"splice": self.splice, "cmvn": self.cmvn}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> InputSpec:
        """The contract of a checkpoint's ``meta`` (defaults for entries it lacks)."""
        inp = meta.get("input") or {}
        return cls(int(inp.get("splice", DEFAULT_SPLICE)), str(inp.get("cmvn", DEFAULT_CMVN)))

    def describe(self) -> str:
        return f"splice +-{self.splice}, cmvn {self.cmvn}"
