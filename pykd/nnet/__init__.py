"""Network-side hybrid decoding: log-likelihoods from an acoustic model, and their validation."""

# Names are loaded on first use (PEP 562), so that importing a light submodule (e.g. for
# the `pykd` command line) does not import torch.
from __future__ import annotations

import importlib

_EXPORTS = {
    "LoglikesError": "pykd.nnet.validate",
    "ValidationReport": "pykd.nnet.validate",
    "loglikes_from_logits": "pykd.nnet.loglikes",
    "num_pdfs_of_model": "pykd.nnet.validate",
    "validate_loglikes": "pykd.nnet.validate",
    "write_loglikes": "pykd.nnet.loglikes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
