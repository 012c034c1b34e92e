"""Plain feed-forward DNN: the teacher (default 6 x 2048 sigmoid, as Kaldi nnet1)."""

from __future__ import annotations

import torch
from torch import nn

from pykd.models.config import DNNConfig


def make_activation(name: str) -> nn.Module:
    """``sigmoid`` | ``relu`` | ``tanh`` as a module."""
    table = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}
    if name not in table:
        raise ValueError(f"unknown activation {name!r} (expected one of {sorted(table)})")
    return table[name]()


class DNN(nn.Module):
    """``input_dim`` -> ``num_layers`` x (Linear, activation, [dropout]) -> Linear to pdf logits."""

    def __init__(self, input_dim: int, num_pdfs: int, cfg: DNNConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or DNNConfig()
        cfg.validate()
        self.cfg = cfg
        self.input_dim = input_dim
        self.num_pdfs = num_pdfs
        layers: list[nn.Module] = []
        dim = input_dim
        for _ in range(cfg.num_layers):
            layers += [nn.Linear(dim, cfg.hidden_dim), make_activation(cfg.activation)]
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            dim = cfg.hidden_dim
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(dim, num_pdfs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (..., input_dim) spliced features -> (..., num_pdfs) logits (pre-softmax)."""
        return self.output(self.hidden(x))
