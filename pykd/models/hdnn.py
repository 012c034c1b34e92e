"""Highway DNN student with gates shared by all hidden layers (docs/design.md §1).

    h_0 = sigma(W_in x + b_in)
    h_l = sigma(W_l h_{l-1} + b_l) * T(h_{l-1}) + h_{l-1} * C(h_{l-1}),   l = 1..L
    T(h) = sigmoid(W_T h + b_T),  C(h) = sigmoid(W_C h + b_C)  (or C = 1 - T)
    logits = W_out h_L + b_out

W_T, b_T, W_C, b_C are one pair of ``nn.Linear`` modules used by every layer, so speaker
adaptation can update only them (``gate_parameters()``).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from pykd.models.config import HDNNConfig
from pykd.models.dnn import make_activation


class SharedGates(nn.Module):
    """The transform gate T and (unless C = 1 - T) the carry gate C, shared by all layers."""

    def __init__(self, dim: int, cfg: HDNNConfig) -> None:
        super().__init__()
        self.one_minus_transform = cfg.carry == "one_minus_transform"
        self.transform = nn.Linear(dim, dim)
        nn.init.constant_(self.transform.bias, cfg.transform_bias_init)
        self.carry: nn.Linear | None = None
        if not self.one_minus_transform:
            self.carry = nn.Linear(dim, dim)
            nn.init.constant_(self.carry.bias, cfg.carry_bias_init)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(T(h), C(h))."""
        t = torch.sigmoid(self.transform(h))
        c = 1.0 - t if self.carry is None else torch.sigmoid(self.carry(h))
        return t, c


class HighwayLayer(nn.Module):
    """One highway layer: its own W_l, b_l; the gates are passed in (shared, not owned)."""

    def __init__(self, dim: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.act = make_activation(activation)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: torch.Tensor, gates: SharedGates) -> torch.Tensor:
        t, c = gates(h)
        return self.dropout(self.act(self.linear(h)) * t + h * c)


class HDNN(nn.Module):
    """Input projection to ``hidden_dim``, ``num_layers`` highway layers, pdf output layer."""

    def __init__(self, input_dim: int, num_pdfs: int, cfg: HDNNConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or HDNNConfig()
        cfg.validate()
        self.cfg = cfg
        self.input_dim = input_dim
        self.num_pdfs = num_pdfs
        d = cfg.hidden_dim
        self.input = nn.Linear(input_dim, d)
        self.input_act = make_activation(cfg.activation)
        self.gates = SharedGates(d, cfg)
        self.layers = nn.ModuleList(
            HighwayLayer(d, cfg.activation, cfg.dropout) for _ in range(cfg.num_layers)
        )
        self.output = nn.Linear(d, num_pdfs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (..., input_dim) spliced features -> (..., num_pdfs) logits (pre-softmax)."""
        h = self.input_act(self.input(x))
        for layer in self.layers:
            h = layer(h, self.gates)
        return self.output(h)

    def gate_parameters(self) -> Iterator[nn.Parameter]:
        """The shared gate parameters only: W_T, b_T (and W_C, b_C when C is independent)."""
        return self.gates.parameters()

    def non_gate_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter except the shared gates (to freeze them for gate-only adaptation)."""
        gate_ids = {id(p) for p in self.gates.parameters()}
        return (p for p in self.parameters() if id(p) not in gate_ids)


def hdnn_parameter_count(input_dim: int, num_pdfs: int, cfg: HDNNConfig) -> int:
    """Closed form: projection + L layers + shared gates (1 or 2) + output, weights and biases."""
    d = cfg.hidden_dim
    n_gates = 1 if cfg.carry == "one_minus_transform" else 2
    return (
        (input_dim + 1) * d
        + cfg.num_layers * (d + 1) * d
        + n_gates * (d + 1) * d
        + (d + 1) * num_pdfs
    )
