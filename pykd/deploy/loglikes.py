"""Log-likelihoods of a data dir's utterances from an exported model (``pykd make-loglikes
--exported``), whole utterances or chunk by chunk, written as the ark + scp decoders read."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from pykd.deploy.runtime import ExportedModel, ExportedModelError
from pykd.features.ark import ArkScpWriter
from pykd.frontend.features import SpeakerCmvn, iter_features

log = logging.getLogger(__name__)


def stream_utterance(
    model: ExportedModel, feats: np.ndarray, chunk_frames: int,
    speaker_stats: np.ndarray | None = None, where: str = "input",
) -> np.ndarray:  # fmt: skip
    """``feats`` fed to a :class:`LoglikeStream` ``chunk_frames`` at a time (0: in one call)."""
    if chunk_frames <= 0:
        return model.utterance(feats, speaker_stats, where)
    stream = model.stream(speaker_stats)
    parts = [stream.accept(feats[t : t + chunk_frames], where) for t in
             range(0, feats.shape[0], chunk_frames)]  # fmt: skip
    parts.append(stream.finish())
    return np.concatenate(parts, 0)


def write_exported_loglikes(
    model_path: str | os.PathLike, data_dir: str | os.PathLike, out_ark: str | os.PathLike,
    out_scp: str | os.PathLike, chunk_frames: int = 0, num_threads: int = 1,
) -> dict[str, int]:  # fmt: skip
    """Write the log-likelihoods of every utterance of ``data_dir`` (raw ``feats.scp``; the
    speaker's ``cmvn.scp`` stats when the model normalises per speaker); frames per utterance."""
    model = ExportedModel(model_path, num_threads)
    info = model.info
    speaker_cmvn = None
    if info.cmvn != "none" and info.cmvn_source == "speaker":
        speaker_cmvn = SpeakerCmvn.of_data_dir(data_dir, info.cmvn)
    frames: dict[str, int] = {}
    start = time.perf_counter()
    feats_scp = Path(data_dir) / "feats.scp"
    with ArkScpWriter(out_ark, out_scp) as writer:
        for utt, feats in iter_features(data_dir, "none"):
            where = f"utterance {utt} of {feats_scp}"
            stats = None
            if speaker_cmvn is not None:
                spk = (speaker_cmvn.utt2spk or {}).get(utt, utt)
                if spk not in speaker_cmvn.stats:
                    raise ExportedModelError(f"{where}: no CMVN stats for speaker {spk!r}")
                stats = speaker_cmvn.stats[spk]
            mat = stream_utterance(model, feats, chunk_frames, stats, where)
            if mat.shape != (feats.shape[0], info.num_pdfs) or not np.isfinite(mat).all():
                raise ExportedModelError(f"{where}: bad log-likelihoods, shape {mat.shape}")
            writer.write(utt, mat)
            frames[utt] = mat.shape[0]
    secs = time.perf_counter() - start
    total = sum(frames.values())
    log.info(
        "%s: %d utterances, %d frames in %.1f s (%.0f frames/s, %s); %s", model_path, len(frames),
        total, secs, total / max(secs, 1e-9),
        f"chunks of {chunk_frames} frames" if chunk_frames > 0 else "whole utterances",
        info.describe(),
    )  # fmt: skip
    return frames
