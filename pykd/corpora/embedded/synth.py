"""Render one utterance: flite (voice, rate) -> sox (pitch, channel, reverb) -> numpy (noise).

Deterministic: flite is deterministic, sox runs with ``-R`` (repeatable) and ``-D`` (no dither)
and writes 32-bit float, and the noise comes from a ``numpy.random.Generator`` seeded by
``(seed, hash(utt_id))``, so the result does not depend on which worker renders it, or when.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from pykd.io.atomic import atomic_path

from .speakers import CHANNELS, VOICES

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
#: Bump when the rendering changes, so cached wavs from older code are regenerated.
RENDER_VERSION = 1
#: Active-speech level (dBFS) the clean speech is scaled to before gain jitter and noise.
SPEECH_LEVEL_DB = -24.0


#: A flite or sox call taking longer than this (seconds) is an error.
COMMAND_TIMEOUT_S = 120


class SynthesisError(RuntimeError):
    """A flite/sox call failed; the message names the utterance and the command."""


@dataclass(frozen=True)
class UttSpec:
    """Everything needed to render one utterance (its hash keys the wav cache)."""

    utt_id: str
    text: str
    voice: str
    stretch: float  # flite duration_stretch (speaker tempo and jitter)
    pitch_cents: float  # speaker pitch plus jitter
    channel: str
    reverb: int
    gain_db: float
    noise: str  # "pink" | "brown"
    snr_db: float
    pad_start: float  # seconds of silence before the speech (noise fills it)
    pad_end: float
    seed: int

    def digest(self) -> str:
        """Stable hash of the settings and the renderer version."""
        payload = json.dumps({"v": RENDER_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:20]


def _run(cmd: list[str], utt_id: str) -> None:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=COMMAND_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SynthesisError(f"utterance {utt_id}: cannot run {shlex.join(cmd)}: {err}") from err
    if proc.returncode != 0:
        raise SynthesisError(
            f"utterance {utt_id}: command failed (exit {proc.returncode}): {shlex.join(cmd)}\n"
            f"{proc.stderr.strip()}"
        )


def flite_command(spec: UttSpec, out: Path) -> list[str]:
    return [
        "flite",
        "-voice",
        spec.voice,
        "--setf",
        f"duration_stretch={spec.stretch:.4f}",
        "-t",
        spec.text,
        "-o",
        str(out),
    ]


def sox_command(spec: UttSpec, src: Path, out: Path) -> list[str]:
    effects = ["gain", "-12", "pitch", f"{spec.pitch_cents:.1f}", *CHANNELS[spec.channel]]
    if spec.reverb > 0:
        effects += ["reverb", str(spec.reverb)]
    effects += ["rate", "-v", str(SAMPLE_RATE)]
    return [
        "sox",
        "-D",
        "-R",
        "-V1",
        str(src),
        "-e",
        "floating-point",
        "-b",
        "32",
        "-c",
        "1",
        str(out),
        *effects,
    ]


def render_clean(spec: UttSpec) -> np.ndarray:
    """flite + sox; float64 samples at 16 kHz, scaled to the speech level plus gain jitter."""
    # flite silently falls back to its default voice on an unknown name: check first
    if spec.voice not in VOICES or spec.channel not in CHANNELS:
        raise SynthesisError(
            f"utterance {spec.utt_id}: unknown voice {spec.voice!r} or channel {spec.channel!r}"
        )
    # sox can hang on a non-finite pitch: check the numbers too
    numbers = (spec.stretch, spec.pitch_cents, spec.gain_db, spec.snr_db)
    if not all(np.isfinite(numbers)) or not 0.25 <= spec.stretch <= 4:
        raise SynthesisError(f"utterance {spec.utt_id}: bad settings {spec}")
    with tempfile.TemporaryDirectory(prefix="pykd_synth_") as tmp:
        raw = Path(tmp) / "flite.wav"
        shaped = Path(tmp) / "sox.wav"
        _run(flite_command(spec, raw), spec.utt_id)
        if not raw.exists() or raw.stat().st_size <= 44:
            cmd = shlex.join(flite_command(spec, raw))
            raise SynthesisError(f"utterance {spec.utt_id}: flite wrote no audio: {cmd}")
        _run(sox_command(spec, raw, shaped), spec.utt_id)
        audio, rate = sf.read(shaped, dtype="float64", always_2d=False)
    if rate != SAMPLE_RATE or audio.ndim != 1 or audio.size == 0:
        raise SynthesisError(
            f"utterance {spec.utt_id}: sox gave {rate} Hz, shape {audio.shape} (want 16 kHz mono)"
        )
    level = speech_power(audio)
    if level <= 0:
        raise SynthesisError(f"utterance {spec.utt_id}: synthesised audio is silent")
    target = 10 ** ((SPEECH_LEVEL_DB + spec.gain_db) / 10)
    audio = audio * np.sqrt(target / level)
    pad = [np.zeros(int(round(s * SAMPLE_RATE))) for s in (spec.pad_start, spec.pad_end)]
    return np.concatenate([pad[0], audio, pad[1]])


def speech_power(audio: np.ndarray, frame: int = 400, hop: int = 160) -> float:
    """Mean power over speech frames: frames within 30 dB of the loudest 5% of frames."""
    if audio.size < frame:
        return float(np.mean(audio**2))
    n = 1 + (audio.size - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    energy = np.mean(audio[idx] ** 2, axis=1)
    ref = np.percentile(energy, 95)
    if ref <= 0:
        return 0.0
    return float(np.mean(energy[energy >= ref * 1e-3]))


def coloured_noise(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """Unit-power pink (1/f) or brown (1/f^2) noise, shaped in the frequency domain."""
    white = rng.standard_normal(n)
    spec = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    freqs = np.maximum(freqs, 20.0)  # no DC blow-up
    if kind == "pink":
        spec /= np.sqrt(freqs)
    elif kind == "brown":
        spec /= freqs
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    noise = np.fft.irfft(spec, n)
    return noise / np.sqrt(np.mean(noise**2))


def noise_rng(seed: int, utt_id: str) -> np.random.Generator:
    """Per-utterance generator: independent of the order utterances are rendered in."""
    key = int.from_bytes(hashlib.sha256(utt_id.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, key])


def add_noise(clean: np.ndarray, spec: UttSpec) -> np.ndarray:
    """Add noise at ``spec.snr_db`` relative to the speech-frame power of ``clean``."""
    noise = coloured_noise(noise_rng(spec.seed, spec.utt_id), clean.size, spec.noise)
    power = speech_power(clean) / 10 ** (spec.snr_db / 10)
    return clean + noise * np.sqrt(power)


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Scale down if it would clip, then round (no dither) to 16-bit PCM."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    return np.round(audio * 32767.0).astype(np.int16)


def render(spec: UttSpec) -> np.ndarray:
    """The final 16-bit samples of one utterance."""
    return to_int16(add_noise(render_clean(spec), spec))


def write_wav(path: Path, samples: np.ndarray) -> None:
    """Write 16 kHz 16-bit mono PCM atomically."""
    with atomic_path(path) as tmp:
        sf.write(tmp, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")


def synthesize(spec: UttSpec, path: str | Path) -> int:
    """Render ``spec`` into ``path``; returns the number of samples."""
    samples = render(spec)
    write_wav(Path(path), samples)
    return int(samples.size)
