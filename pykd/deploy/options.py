"""Options of ``pykd export-model`` and their defaults (torch-free, so ``--help`` is quick)."""

from __future__ import annotations

from dataclasses import dataclass

CMVN_SOURCES = ("speaker", "online")  # stats of the whole speaker, or accumulated frame by frame
DEFAULT_CMVN_SOURCE = "online"
ONLINE_PER = ("speaker", "utterance")  # online CMVN stats kept over a speaker's utterances or not
DEFAULT_ONLINE_PER = "speaker"
DEFAULT_PRIOR_FRAMES = 200.0  # weight (frames) of the global stats that start online CMVN
FP32_NAME = "model.onnx"
INT8_NAME = "model.int8.onnx"


@dataclass(frozen=True)
class ExportOptions:
    """How to export (``pykd export-model`` options)."""

    prior_counts: str | None = None  # pdf counts (analyze-counts format) for the prior division
    prior_scale: float = 1.0
    cmvn_source: str = DEFAULT_CMVN_SOURCE  # speaker | online
    global_cmvn_data: str | None = None  # data dir whose cmvn.scp (summed) starts online CMVN
    prior_frames: float = DEFAULT_PRIOR_FRAMES
    int8: bool = True
