"""Frame-level data for the networks: training batches, pdf targets, priors, CV split (splicing
and CMVN'd features come from :mod:`pykd.frontend`)."""

# Names are loaded on first use (PEP 562), so that importing a light submodule (e.g. for
# the `pykd` command line) does not import torch.
from __future__ import annotations

import importlib

_EXPORTS = {
    "EpochStats": "pykd.data.frames",
    "FrameShuffleDataset": "pykd.data.frames",
    "SequentialFrameDataset": "pykd.data.frames",
    "UtteranceSource": "pykd.data.frames",
    "ali_to_pdf": "pykd.data.targets",
    "load_pdf_alignments": "pykd.data.targets",
    "log_priors": "pykd.data.priors",
    "match_lengths": "pykd.data.targets",
    "num_pdfs": "pykd.data.targets",
    "pdf_counts": "pykd.data.priors",
    "pdf_map": "pykd.data.targets",
    "read_counts": "pykd.data.priors",
    "split_cv": "pykd.data.frames",
    "write_counts": "pykd.data.priors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
