"""Speaker adaptation of a trained network (gate-only for the HDNN student), per-speaker files.

See ``docs/adaptation.md``. Names are loaded on first use (PEP 562), so that building the
``pykd`` command line does not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AdaptConfig": "pykd.adapt.config",
    "AdaptError": "pykd.adapt.config",
    "AdaptResult": "pykd.adapt.core",
    "AdaptStats": "pykd.adapt.core",
    "SpeakerFrames": "pykd.adapt.core",
    "adapt_speaker": "pykd.adapt.core",
    "evaluate_loss": "pykd.adapt.core",
    "speaker_frames": "pykd.adapt.core",
    "best_path_pdfs": "pykd.adapt.targets",
    "decode_targets": "pykd.adapt.targets",
    "oracle_targets": "pykd.adapt.targets",
    "read_best_wer": "pykd.adapt.targets",
    "split_utterances": "pykd.adapt.targets",
    "adapt_speakers": "pykd.adapt.cli",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
