"""Audio input with Kaldi's semantics: wav.scp entries, pipes, segments.

A ``wav.scp`` value is a file name or a command ending in ``|`` (run through ``bash -c``; its
stdout is the WAV data). Samples keep Kaldi's integer scale: 16-bit PCM values become floats in
[-32768, 32767], never normalised to [-1, 1]. ``segments`` lines are cut out of the recording
exactly as Kaldi's ``extract-segments`` does (sample index = trunc(time * rate), end = -1 means
end of file, overshoot up to 0.5 s truncated, segments of <= 0.1 s dropped).
"""

from __future__ import annotations

import io
import logging
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

MIN_SEGMENT_LENGTH = 0.1  # extract-segments --min-segment-length default (seconds)
MAX_OVERSHOOT = 0.5  # extract-segments --max-overshoot default (seconds)


class WavError(RuntimeError):
    """One recording could not be read (missing, corrupt, unsupported, failed pipe)."""


class SegmentError(ValueError):
    """One segments line is invalid or does not fit its recording."""


@dataclass
class Wave:
    """Audio at Kaldi's integer scale: ``data`` is ``(channels, samples)`` float32."""

    samp_freq: float
    data: np.ndarray

    @property
    def num_channels(self) -> int:
        return int(self.data.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration(self) -> float:
        return self.num_samples / self.samp_freq


@dataclass(frozen=True)
class Segment:
    """One ``segments`` line: ``utt rec start end [channel]`` (times in seconds)."""

    utt: str
    recording: str
    start: float
    end: float
    channel: int = -1


def is_pipe(spec: str) -> bool:
    return spec.rstrip().endswith("|")


def read_wav_bytes(spec: str) -> bytes:
    """Return the raw bytes of a wav.scp value (file or ``cmd |`` pipe)."""
    spec = spec.strip()
    if is_pipe(spec):
        cmd = spec.rstrip()[:-1]
        proc = subprocess.run(["bash", "-c", cmd], capture_output=True, check=False)
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise WavError(f"command '{cmd}' failed (exit {proc.returncode}): {' | '.join(tail)}")
        return proc.stdout
    path = Path(spec)
    if not path.is_file():
        raise WavError(f"no such file '{spec}'")
    return path.read_bytes()


def decode_wav(data: bytes, spec: str) -> Wave:
    """Decode RIFF/WAVE 16-bit PCM bytes into a :class:`Wave` at int16 scale."""
    if not data:
        raise WavError(f"'{spec}' gave no data")
    try:
        info = sf.info(io.BytesIO(data))
        if info.format not in ("WAV", "WAVEX"):
            raise WavError(f"'{spec}' is {info.format}, not WAV (convert it with 'sox ... |')")
        if info.subtype != "PCM_16":
            raise WavError(
                f"'{spec}' has sample format {info.subtype}; only 16-bit PCM is supported "
                "(convert it with 'sox ... -b 16 -t wav - |')"
            )
        samples, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    except sf.LibsndfileError as err:
        raise WavError(f"'{spec}' is not a readable WAV file: {err.error_string}") from None
    if samples.shape[0] == 0:
        raise WavError(f"'{spec}' contains no samples")
    return Wave(samp_freq=float(rate), data=np.ascontiguousarray(samples.T, dtype=np.float32))


def read_wave(spec: str) -> Wave:
    """Read one wav.scp value."""
    return decode_wav(read_wav_bytes(spec), spec)


def parse_segments(path: str | Path) -> Iterator[Segment | SegmentError]:
    """Yield the lines of a segments file; an invalid line yields a :class:`SegmentError`."""
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, 1):
            fields = raw.split()
            where = f"{path}:{lineno}"
            if len(fields) not in (4, 5):
                yield SegmentError(f"{where}: expected 'utt rec start end [channel]': {raw!r}")
                continue
            utt, rec = fields[0], fields[1]
            try:
                start, end = float(fields[2]), float(fields[3])
                channel = int(fields[4]) if len(fields) == 5 else -1
            except ValueError:
                yield SegmentError(f"{where}: bad number in segment '{utt}': {raw.strip()!r}")
                continue
            if start < 0 or (end != -1.0 and end <= 0) or (end > 0 and start >= end):
                yield SegmentError(f"{where}: empty or invalid segment '{utt}' ({start}, {end})")
                continue
            if len(fields) == 5 and channel < 0:
                yield SegmentError(f"{where}: bad channel in segment '{utt}'")
                continue
            yield Segment(utt, rec, start, end, channel)


def cut_segment(wave: Wave, seg: Segment) -> np.ndarray:
    """Samples of ``seg`` (1-D float32), following extract-segments' rules."""
    rate = wave.samp_freq
    n = wave.num_samples
    start_samp = int(seg.start * rate)
    end_samp = int(seg.end * rate) if seg.end != -1.0 else n
    if start_samp >= n:
        raise SegmentError(
            f"segment '{seg.utt}': start sample {start_samp} is beyond the end of "
            f"recording '{seg.recording}' ({n} samples)"
        )
    if end_samp > n:
        if end_samp >= n + int(MAX_OVERSHOOT * rate):
            raise SegmentError(
                f"segment '{seg.utt}': end sample {end_samp} too far beyond the end of "
                f"recording '{seg.recording}' ({n} samples)"
            )
        end_samp = n
    if end_samp <= start_samp + int(MIN_SEGMENT_LENGTH * rate):
        raise SegmentError(f"segment '{seg.utt}' is too short (<= {MIN_SEGMENT_LENGTH} s)")
    channel = seg.channel
    if channel == -1:
        if wave.num_channels != 1:
            raise SegmentError(
                f"segment '{seg.utt}': recording '{seg.recording}' has {wave.num_channels} "
                "channels; give the channel in the segments file"
            )
        channel = 0
    elif channel >= wave.num_channels:
        raise SegmentError(
            f"segment '{seg.utt}': channel {channel} >= {wave.num_channels} channels "
            f"of recording '{seg.recording}'"
        )
    return wave.data[channel, start_samp:end_samp]
