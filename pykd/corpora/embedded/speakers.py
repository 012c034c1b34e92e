"""Synthetic speakers: a flite base voice shaped by sox levers (pitch, tempo, channel, reverb).

Train speakers take their lever values from one grid, dev/eval speakers from an interleaved grid
of values never used in training ("unseen settings of the same levers"); all splits share the
four base voices, since an unseen base voice makes triphones worse than monophones (DESIGN §4).
Every speaker is a distinct combination; no combination is shared between splits.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: flite voice -> gender of the base voice (used for spk2gender, whatever the pitch shift).
VOICES: dict[str, str] = {"rms": "m", "slt": "f", "awb": "m", "kal16": "m"}

#: Channel name -> sox effect arguments.
CHANNELS: dict[str, tuple[str, ...]] = {
    "none": (),
    "telephone": ("sinc", "300-3400"),
    "lowpass": ("sinc", "-5000"),
    "highpass": ("sinc", "150"),
}
REVERBS = (0, 15, 30)

TRAIN_PITCH = (-300, -200, -100, 0, 100, 200, 300)
HELDOUT_PITCH = (-250, -150, -50, 50, 150, 250)
TRAIN_TEMPO = (0.9, 0.95, 1.0, 1.05, 1.1)
HELDOUT_TEMPO = (0.925, 0.975, 1.025, 1.075)

SPLIT_PREFIX = {"train": "tr", "dev": "dv", "eval": "ev", "untrans": "un"}


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker of one split and the meeting it takes part in."""

    spk_id: str
    split: str
    voice: str
    pitch_cents: int
    tempo: float
    channel: str
    reverb: int
    meeting: str

    @property
    def gender(self) -> str:
        return VOICES[self.voice]

    def describe(self) -> str:
        return (
            f"voice={self.voice} gender={self.gender} pitch={self.pitch_cents:+d} "
            f"tempo={self.tempo:g} channel={self.channel} reverb={self.reverb} "
            f"meeting={self.meeting}"
        )


def _combos(pitches: tuple[int, ...], tempos: tuple[float, ...], voice: str) -> list[tuple]:
    return [
        (voice, p, t, c, r) for p, t, c, r in itertools.product(pitches, tempos, CHANNELS, REVERBS)
    ]


def meeting_sizes(n_speakers: int) -> list[int]:
    """Split ``n_speakers`` into meetings of 3-5 (one smaller meeting if fewer than 3 in all)."""
    if n_speakers <= 5:
        return [n_speakers]
    n_meetings = max(math.ceil(n_speakers / 5), round(n_speakers / 4))
    base, extra = divmod(n_speakers, n_meetings)
    return [base + (1 if i < extra else 0) for i in range(n_meetings)]


def make_speakers(counts: dict[str, int], seed: int) -> dict[str, list[Speaker]]:
    """Speakers per split (``counts``: split -> number), voices balanced round-robin.

    Deterministic in ``seed``; lever combinations are drawn without replacement, train from the
    train grid and dev/eval from the held-out grid.
    """
    rng = np.random.default_rng([seed, 7001])
    voices = list(VOICES)
    pools: dict[str, dict[str, list[tuple]]] = {"train": {}, "heldout": {}}
    for voice in voices:
        for name, pitches, tempos in (
            ("train", TRAIN_PITCH, TRAIN_TEMPO),
            ("heldout", HELDOUT_PITCH, HELDOUT_TEMPO),
        ):
            combos = _combos(pitches, tempos, voice)
            order = rng.permutation(len(combos))
            pools[name][voice] = [combos[i] for i in order]
    out: dict[str, list[Speaker]] = {}
    # untranscribed speech (drawn last: the other splits' speakers do not change) comes from new
    # speakers of the training grid
    for split in ("train", "dev", "eval", "untrans"):
        n = counts.get(split, 0)
        if n <= 0:
            continue
        pool = pools["heldout" if split in ("dev", "eval") else "train"]
        start = int(rng.integers(len(voices)))
        chosen = []
        for i in range(n):
            voice = voices[(start + i) % len(voices)]
            if not pool[voice]:
                raise ValueError(f"too many {split} speakers ({n}) for the lever grid")
            chosen.append(pool[voice].pop())
        order = rng.permutation(n)  # mix voices across meetings
        prefix = SPLIT_PREFIX[split]
        speakers: list[Speaker] = []
        pos = 0
        for m, size in enumerate(meeting_sizes(n), 1):
            meeting = f"m{prefix}{m:02d}"
            for _ in range(size):
                voice, pitch, tempo, channel, reverb = chosen[order[pos]]
                pos += 1
                speakers.append(
                    Speaker(
                        spk_id=f"{prefix}{pos:03d}",
                        split=split,
                        voice=voice,
                        pitch_cents=int(pitch),
                        tempo=float(tempo),
                        channel=channel,
                        reverb=int(reverb),
                        meeting=meeting,
                    )
                )
        out[split] = speakers
    return out
