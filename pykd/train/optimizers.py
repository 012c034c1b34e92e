"""The optimisers of every trainer (frame level, sequence, adaptation): SGD or Adam.

``fused=True`` asks for PyTorch's fused Adam kernel (one pass over each parameter's state per
step) where the parameters live on a device that has it (CPU, CUDA). PyTorch's default per-tensor
loop makes ~8 passes: on the 5M-parameter embedded teacher it took ~10 ms of a ~38 ms CPU step,
the fused step ~3 ms (``bench/bench_train_step.py``). The update is Adam's but rounds differently,
and the teacher's newbob decisions (which epochs are rejected) follow the rounding, so the
default stays PyTorch's loop: the recipe's networks stay those of earlier sessions
(docs/training.md, *The optimiser step*).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

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
    """SGD (with optional momentum) or Adam (``fused``: the fused kernel where the parameters'
    device has it, else PyTorch's default)."""
    params = list(params)
    kind = name.lower()
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if kind == "adam":
        fused = fused and all(
            p.device.type in FUSED_ADAM_DEVICES and p.is_floating_point() for p in params
        )
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
    raise ValueError(f"unknown optimizer {name!r} ({', '.join(OPTIMIZERS)})")
