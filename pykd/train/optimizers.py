"""The optimisers of every trainer (frame level, sequence, adaptation): SGD or Adam.

Adam is ``OnePassAdam`` (``pykd/train/adam.py``): PyTorch's default update, bit for bit, done in
one compiled pass over memory on the CPU instead of PyTorch's ~8 (on the 5M-parameter embedded
teacher ~3.7 ms instead of ~8-13 ms of a ~50 ms step, ``bench/bench_train_step.py``), so the
recipe's networks are exactly those PyTorch's loop trains. ``fused=True`` asks for PyTorch's
fused Adam kernel instead, where the parameters live on a device that has it (CPU, CUDA): as fast,
but it rounds differently, and the teacher's newbob decisions (which epochs are rejected) follow
the rounding (docs/training.md, *The optimiser step*).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from pykd.train.adam import OnePassAdam
from pykd.train.options import OPTIMIZERS

FUSED_ADAM_DEVICES = ("cpu", "cuda")  # where torch.optim.Adam(fused=True) runs


def build_optimizer(
    params: Iterable[nn.Parameter],
    name: str,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """SGD (with optional momentum) or Adam (``fused``: PyTorch's fused kernel where the
    parameters' device has it; otherwise PyTorch's default update, in one pass on the CPU)."""
    params = list(params)
    kind = name.lower()
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if kind == "adam":
        fused = fused and all(
            p.device.type in FUSED_ADAM_DEVICES and p.is_floating_point() for p in params
        )
        if fused:
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
        return OnePassAdam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r} ({', '.join(OPTIMIZERS)})")
