"""Building acoustic models from configs, and their size and cost per frame."""

from __future__ import annotations

import torch
from torch import nn

from pykd.models.config import ModelConfig
from pykd.models.dnn import DNN
from pykd.models.hdnn import HDNN


def build_model(cfg: ModelConfig, input_dim: int, num_pdfs: int) -> nn.Module:
    """A fresh (randomly initialised) model for ``cfg``."""
    if input_dim < 1 or num_pdfs < 1:
        raise ValueError(f"input_dim and num_pdfs must be positive, got {input_dim}, {num_pdfs}")
    cfg.validate()
    if cfg.type == "dnn":
        return DNN(input_dim, num_pdfs, cfg.dnn)
    return HDNN(input_dim, num_pdfs, cfg.hdnn)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of distinct parameters (a shared tensor counts once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def macs_per_frame(model: nn.Module, input_dim: int | None = None) -> int:
    """Multiply-adds of the ``nn.Linear`` layers for one frame, counted by running one frame.

    Each call counts, so the HDNN's shared gates count once per layer they are applied in.
    Activations, gate products and biases are not counted (they are O(width), not O(width^2)).
    """
    input_dim = input_dim or model.input_dim  # type: ignore[assignment]
    total = 0

    def hook(module: nn.Module, _inp: object, _out: object) -> None:
        nonlocal total
        total += module.in_features * module.out_features  # type: ignore[operator]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Linear)]
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, input_dim, dtype=param.dtype, device=param.device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


def mflops_per_frame(model: nn.Module, input_dim: int | None = None) -> float:
    """MFLOPs per frame = 2 x multiply-adds of the linear layers / 1e6 (see ``macs_per_frame``)."""
    return 2.0 * macs_per_frame(model, input_dim) / 1e6


def describe_model(model: nn.Module) -> str:
    """One line: class, parameter count, MFLOPs/frame (2 x MACs of linear layers)."""
    return (
        f"{type(model).__name__}: {count_parameters(model):,} parameters, "
        f"{mflops_per_frame(model):.3f} MFLOPs/frame (2 x multiply-adds)"
    )
