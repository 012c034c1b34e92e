"""Compute fbank/MFCC features for a wav.scp (+ segments), like Kaldi's compute-*-feats.

Per-utterance problems (missing or corrupt audio, failed pipe, bad segment, too short) are
logged as warnings naming the utterance and file, skipped and counted; the job fails only if no
utterance succeeded. A sample-rate mismatch or NaN/inf in the output is an error that stops
the job (it means the configuration, not one file, is wrong).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np

from pykd.features.ark import ArkScpWriter, write_text_table
from pykd.features.kaldi_conf import FeatureConfig
from pykd.features.wav import (
    Segment,
    SegmentError,
    Wave,
    WavError,
    cut_segment,
    parse_segments,
    read_wave,
)
from pykd.io.datadir import read_table

log = logging.getLogger(__name__)


class FeatureError(RuntimeError):
    """A job-level failure: wrong sample rate, non-finite features, nothing succeeded."""


@dataclass
class ComputeStats:
    """Outcome of one extraction job."""

    num_done: int = 0
    num_failed: int = 0
    failed: list[str] = field(default_factory=list)
    num_frames: dict[str, int] = field(default_factory=dict)

    def fail(self, utt: str | None, msg: str) -> None:
        if utt is None:
            log.warning("skipping: %s", msg)
        else:
            log.warning("skipping utterance '%s': %s", utt, msg)
        self.num_failed += 1
        self.failed.append(utt or "<bad segments line>")


def compute_waveform(cfg: FeatureConfig, samples: np.ndarray, samp_freq: float) -> np.ndarray:
    """Features of one channel of samples (int16 scale) -> float32 ``(frames, dim)``."""
    if samp_freq != cfg.samp_freq:
        raise FeatureError(
            f"sample frequency mismatch: config {cfg.source} says {cfg.samp_freq:g} Hz "
            f"but the audio is {samp_freq:g} Hz"
        )
    comp = knf.OnlineFbank(cfg.knf_opts) if cfg.kind == "fbank" else knf.OnlineMfcc(cfg.knf_opts)
    comp.accept_waveform(float(samp_freq), np.ascontiguousarray(samples, dtype=np.float32))
    comp.input_finished()
    n = comp.num_frames_ready
    feats = np.empty((n, cfg.dim), dtype=np.float32)
    for i in range(n):
        feats[i] = comp.get_frame(i)
    if cfg.subtract_mean and n > 0:
        feats -= feats.mean(axis=0, dtype=np.float64).astype(np.float32)
    return feats


def check_finite(utt: str, spec: str, feats: np.ndarray) -> None:
    """Raise :class:`FeatureError` naming the utterance if ``feats`` has NaN or inf."""
    if not np.isfinite(feats).all():
        bad = int((~np.isfinite(feats)).any(axis=1).sum())
        raise FeatureError(f"utterance '{utt}' ({spec}): NaN or inf in {bad} frames")


def _pick_channel(cfg: FeatureConfig, wave: Wave) -> np.ndarray:
    """compute-*-feats --channel semantics (-1: expect mono, defaulting to channel 0)."""
    if cfg.channel == -1:
        if wave.num_channels != 1:
            log.warning("%d channels but --channel not given; using channel 0", wave.num_channels)
        return wave.data[0]
    if cfg.channel >= wave.num_channels:
        raise WavError(f"has {wave.num_channels} channels but --channel={cfg.channel}")
    return wave.data[cfg.channel]


def iter_utterances(
    wav_scp: str | Path, segments: str | Path | None, stats: ComputeStats, cfg: FeatureConfig
) -> Iterator[tuple[str, str, np.ndarray, float]]:
    """Yield ``(utt, wav spec, samples, samp_freq)``; failures are counted in ``stats``."""
    wavs = read_table(wav_scp)
    if segments is None:
        for utt, spec in wavs.items():
            try:
                wave = read_wave(spec)
                samples = _pick_channel(cfg, wave)
            except WavError as err:
                stats.fail(utt, f"{err} (wav.scp {wav_scp})")
                continue
            yield utt, spec, samples, wave.samp_freq
        return
    cached: tuple[str, Wave | WavError] | None = None
    for seg in parse_segments(segments):
        if isinstance(seg, SegmentError):
            stats.fail(None, str(seg))
            continue
        assert isinstance(seg, Segment)
        spec = wavs.get(seg.recording)
        if spec is None:
            stats.fail(seg.utt, f"recording '{seg.recording}' is not in {wav_scp}")
            continue
        if cached is None or cached[0] != seg.recording:
            try:
                cached = (seg.recording, read_wave(spec))
            except WavError as err:
                cached = (seg.recording, err)
        wave = cached[1]
        if isinstance(wave, WavError):
            stats.fail(seg.utt, f"recording '{seg.recording}': {wave}")
            continue
        try:
            samples = cut_segment(wave, seg)
        except SegmentError as err:
            stats.fail(seg.utt, str(err))
            continue
        yield seg.utt, spec, samples, wave.samp_freq


def compute_to_ark(
    cfg: FeatureConfig,
    wav_scp: str | Path,
    ark_path: str | Path,
    scp_path: str | Path,
    *,
    segments: str | Path | None = None,
    compression_method: int | None = None,
    utt2num_frames: str | Path | None = None,
) -> ComputeStats:
    """Extract features for every utterance and write ark + scp (+ utt2num_frames) atomically."""
    stats = ComputeStats()
    log.info(
        "compute-%s-feats: %s%s; non-default options %s",
        cfg.kind,
        wav_scp,
        f" + {segments}" if segments else "",
        cfg.non_default(),
    )
    with ArkScpWriter(ark_path, scp_path, compression_method) as writer:
        for utt, spec, samples, rate in iter_utterances(wav_scp, segments, stats, cfg):
            duration = len(samples) / rate
            if duration < cfg.min_duration:
                stats.fail(utt, f"too short ({duration:.3f} s < --min-duration)")
                continue
            try:
                feats = compute_waveform(cfg, samples, rate)
            except FeatureError as err:
                raise FeatureError(f"utterance '{utt}' ({spec}): {err}") from None
            if feats.shape[0] == 0:
                stats.fail(utt, f"no frames ({len(samples)} samples) from '{spec}'")
                continue
            check_finite(utt, spec, feats)
            writer.write(utt, feats)
            stats.num_done += 1
            stats.num_frames[utt] = int(feats.shape[0])
        if stats.num_done == 0:
            raise FeatureError(
                f"no utterance succeeded out of {stats.num_failed} in {wav_scp}; nothing written"
            )
    if utt2num_frames is not None:
        write_text_table(utt2num_frames, stats.num_frames)
    log.info(
        "Done %d out of %d utterances (%d failed%s).",
        stats.num_done,
        stats.num_done + stats.num_failed,
        stats.num_failed,
        f": {' '.join(stats.failed[:10])}{' ...' if stats.num_failed > 10 else ''}"
        if stats.failed
        else "",
    )
    return stats
