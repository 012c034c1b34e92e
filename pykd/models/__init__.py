"""Acoustic models: the teacher DNN and the highway (HDNN) student, built from YAML configs.

``build_model(cfg, input_dim, num_pdfs)`` gives an ``nn.Module`` whose ``forward(x)`` maps
(..., input_dim) spliced features to (..., num_pdfs) logits. ``count_parameters`` and
``mflops_per_frame`` give the figures reported in RESULTS.md.
"""

# Names are loaded on first use (PEP 562), so that `pykd` commands that need no network
# (and `pykd model-info --help`) do not import torch.
from __future__ import annotations

import importlib

_EXPORTS = {
    "DNN": "pykd.models.dnn",
    "DNNConfig": "pykd.models.config",
    "HDNN": "pykd.models.hdnn",
    "HDNNConfig": "pykd.models.config",
    "ModelConfig": "pykd.models.config",
    "build_model": "pykd.models.build",
    "count_parameters": "pykd.models.build",
    "describe_model": "pykd.models.build",
    "hdnn_parameter_count": "pykd.models.hdnn",
    "load_model_config": "pykd.models.config",
    "macs_per_frame": "pykd.models.build",
    "mflops_per_frame": "pykd.models.build",
    "model_config_from_dict": "pykd.models.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
