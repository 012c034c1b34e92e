"""Plan and build the embedded corpus: speakers, meetings, sentences, wavs, Kaldi data dirs.

Layout written (``data`` is ``--data-dir``)::

    <corpus-dir>/wav/<split>/<utt>.wav        16 kHz 16-bit mono PCM
    <corpus-dir>/wav/<split>/manifest.tsv     "<utt> <settings hash>" of every finished wav
    data/<split>/{wav.scp,text,utt2spk,spk2utt,spk2gender,utt2dur}
    data/local/lm/train_text.txt              train sentences only (LM training text)
    data/local/corpus_words.txt               the vocabulary, one word per line
    data/local/corpus_speakers.txt            speaker -> settings
    data/local/corpus_stats.txt               hours, speakers, utterances, words per split

Paths in ``wav.scp`` are written as ``--corpus-dir`` is given: a relative corpus dir gives paths
relative to the directory the command runs in (the recipe root), which survive moving the repo.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from pykd.io.atomic import atomic_write, atomic_write_text
from pykd.io.datadir import DataDir, c_sorted

from .grammar import SentenceGenerator, load_vocab
from .speakers import Speaker, make_speakers
from .synth import SAMPLE_RATE, UttSpec, synthesize

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "eval")
UNTRANSCRIBED = "untrans"  # the optional split of untranscribed speech

#: Rough seconds per word and per utterance (pads, pauses) at tempo 1, for planning only.
SECONDS_PER_WORD = 0.31
SECONDS_PER_UTT = 0.85


@dataclass(frozen=True)
class SizeConfig:
    """How much to generate."""

    train_minutes: float
    dev_minutes: float
    eval_minutes: float
    train_speakers: int
    dev_speakers: int
    eval_speakers: int
    min_words: int = 4
    max_words: int = 18
    # untranscribed speech (new speakers, new sentences; data/untrans has no text): 0 = none
    untrans_minutes: float = 0.0
    untrans_speakers: int = 24

    def minutes(self, split: str) -> float:
        return float(getattr(self, f"{split}_minutes"))

    def speakers(self, split: str) -> int:
        return int(getattr(self, f"{split}_speakers"))


SIZES: dict[str, SizeConfig] = {
    "tiny": SizeConfig(1.3, 1.1, 1.1, 4, 3, 3, min_words=4, max_words=8),
    "default": SizeConfig(60.0, 18.0, 18.0, 24, 8, 8),
    # twice default's training hours (same speakers, same dev/eval): how each stage's cost grows
    "double": SizeConfig(120.0, 18.0, 18.0, 24, 8, 8),
}


def size_config(size: str, **overrides: float | int | None) -> SizeConfig:
    """A named size with some fields overridden (``None`` values are ignored)."""
    if size not in SIZES:
        raise ValueError(f"unknown corpus size {size!r} (known: {', '.join(SIZES)})")
    changes = {k: v for k, v in overrides.items() if v is not None}
    cfg = replace(SIZES[size], **changes)
    for split in SPLITS:
        if cfg.minutes(split) <= 0 or cfg.speakers(split) <= 0:
            raise ValueError(f"{split}: minutes and speakers must be positive")
    if cfg.untrans_minutes < 0 or cfg.untrans_speakers <= 0:
        raise ValueError("untrans: minutes must be >= 0 and speakers positive")
    if not 1 <= cfg.min_words <= cfg.max_words:
        raise ValueError(f"bad sentence length range {cfg.min_words}..{cfg.max_words}")
    return cfg


@dataclass(frozen=True)
class Utterance:
    spec: UttSpec
    speaker: Speaker
    sentence_type: str


def plan_split(
    split: str,
    speakers: list[Speaker],
    minutes: float,
    gen: SentenceGenerator,
    rng: np.random.Generator,
    seed: int,
    exclude: set[str],
) -> list[Utterance]:
    """Utterances of one split: in each meeting its speakers take turns (every one once per
    round, in random order) until the meeting's share of the time is used."""
    meetings: dict[str, list[Speaker]] = {}
    for spk in speakers:
        meetings.setdefault(spk.meeting, []).append(spk)
    budget = minutes * 60.0 / len(meetings)
    utts: list[Utterance] = []
    for meeting, members in meetings.items():
        used = 0.0
        turn = 0
        queue: list[Speaker] = []
        while used < budget:
            if not queue:  # every member speaks once per round, in a random order
                queue = [members[i] for i in rng.permutation(len(members))]
            spk = queue.pop()
            for _ in range(100):
                sentence_type, text = gen.sentence()
                if text not in exclude:
                    break
            turn += 1
            tempo = spk.tempo * float(rng.uniform(0.97, 1.03))
            spec = UttSpec(
                utt_id=f"{spk.spk_id}_{meeting}_{turn:04d}",
                text=text,
                voice=spk.voice,
                stretch=round(1.0 / tempo, 4),
                pitch_cents=round(spk.pitch_cents + float(rng.uniform(-30, 30)), 1),
                channel=spk.channel,
                reverb=spk.reverb,
                gain_db=round(float(rng.uniform(-3, 3)), 2),
                noise=("pink", "brown")[int(rng.integers(2))],
                snr_db=round(float(rng.uniform(10, 25)), 2),
                pad_start=round(float(rng.uniform(0.1, 0.4)), 3),
                pad_end=round(float(rng.uniform(0.1, 0.4)), 3),
                seed=seed,
            )
            utts.append(Utterance(spec, spk, sentence_type))
            used += SECONDS_PER_WORD * len(text.split()) / tempo + SECONDS_PER_UTT
    return utts


def plan_corpus(cfg: SizeConfig, seed: int) -> dict[str, list[Utterance]]:
    """The whole corpus as settings, before any audio (deterministic in ``seed`` and ``cfg``)."""
    counts = {s: cfg.speakers(s) for s in SPLITS}
    if cfg.untrans_minutes > 0:
        counts[UNTRANSCRIBED] = cfg.untrans_speakers
    speakers = make_speakers(counts, seed)
    plan: dict[str, list[Utterance]] = {}
    seen: set[str] = set()
    for index, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, 101, index])
        gen = SentenceGenerator(
            np.random.default_rng([seed, 202, index]),
            min_words=cfg.min_words,
            max_words=cfg.max_words,
        )
        # dev/eval sentences never repeat a train sentence (held-out text)
        exclude = set() if split == "train" else seen
        plan[split] = plan_split(
            split, speakers[split], cfg.minutes(split), gen, rng, seed, exclude
        )
        if split == "train":
            seen = {u.spec.text for u in plan[split]}
    if cfg.untrans_minutes > 0:  # after the others, so that they stay as they were
        index = len(SPLITS)
        gen = SentenceGenerator(
            np.random.default_rng([seed, 202, index]),
            min_words=cfg.min_words,
            max_words=cfg.max_words,
        )
        every = {u.spec.text for split in SPLITS for u in plan[split]}
        plan[UNTRANSCRIBED] = plan_split(
            UNTRANSCRIBED, speakers[UNTRANSCRIBED], cfg.untrans_minutes, gen,
            np.random.default_rng([seed, 101, index]), seed, every,
        )  # fmt: skip
    return plan


# ---- synthesis with a resumable cache -----------------------------------------------------------


def _read_manifest(path: Path) -> dict[str, str]:
    """utt -> hash of finished wavs; a torn last line (killed run) is ignored."""
    done: dict[str, str] = {}
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[1]) == 20:
            done[parts[0]] = parts[1]
    return done


def _synth_job(args: tuple[UttSpec, str]) -> tuple[str, int]:
    spec, path = args
    return spec.utt_id, synthesize(spec, path)


def synthesize_split(utts: list[Utterance], wav_dir: Path, nj: int) -> tuple[int, int]:
    """Render the wavs of one split that are missing or stale; returns (rendered, cached)."""
    wav_dir.mkdir(parents=True, exist_ok=True)
    manifest = wav_dir / "manifest.tsv"
    done = _read_manifest(manifest)
    todo = [
        u.spec
        for u in utts
        if done.get(u.spec.utt_id) != u.spec.digest()
        or not (wav_dir / f"{u.spec.utt_id}.wav").exists()
    ]
    for spec in todo:
        done.pop(spec.utt_id, None)
    # wavs of utterances no longer in the plan (another seed or size) would end up in no data
    # dir: remove them, and temp files of killed runs
    planned = {u.spec.utt_id for u in utts}
    stale = [p for p in wav_dir.glob("*.wav") if p.stem not in planned]
    stale += list(wav_dir.glob(".*.tmp"))
    for path in stale:
        path.unlink()
    if stale:
        log.info("%s: removed %d stale files", wav_dir, len(stale))
    done = {utt: h for utt, h in done.items() if utt in planned}
    # rewrite the manifest without stale entries, then append as wavs finish
    with atomic_write(manifest) as handle:
        for utt in c_sorted(done):
            handle.write(f"{utt} {done[utt]}\n")
    jobs = [(spec, str(wav_dir / f"{spec.utt_id}.wav")) for spec in todo]
    digests = {spec.utt_id: spec.digest() for spec in todo}
    with open(manifest, "a", encoding="utf-8") as handle:
        if nj <= 1 or len(jobs) < 2:
            results = map(_synth_job, jobs)
            for utt, _ in results:
                handle.write(f"{utt} {digests[utt]}\n")
                handle.flush()
        else:
            with ProcessPoolExecutor(max_workers=nj) as pool:
                for utt, _ in pool.map(_synth_job, jobs, chunksize=8):
                    handle.write(f"{utt} {digests[utt]}\n")
                    handle.flush()
    final = _read_manifest(manifest)
    with atomic_write(manifest) as handle:
        for utt in c_sorted(final):
            handle.write(f"{utt} {final[utt]}\n")
    return len(todo), len(utts) - len(todo)


# ---- data dirs and stats -----------------------------------------------------------------------


def _fmt_dur(n_samples: int) -> str:
    return f"{n_samples / SAMPLE_RATE:.6g}"


def write_split(
    utts: list[Utterance], wav_dir: Path, wav_prefix: str, out_dir: Path, with_text: bool = True
) -> dict:
    """Write the Kaldi data dir of one split (``text`` unless ``with_text`` is False); returns
    its stats."""
    data = DataDir()
    spk2gender: dict[str, str] = {}
    utt2dur: dict[str, str] = {}
    seconds = 0.0
    words = 0
    for u in utts:
        utt = u.spec.utt_id
        info = sf.info(str(wav_dir / f"{utt}.wav"))
        if info.samplerate != SAMPLE_RATE or info.channels != 1:
            raise ValueError(f"{wav_dir / utt}.wav: not 16 kHz mono")
        data.wav_scp[utt] = f"{wav_prefix}/{utt}.wav"
        if with_text:
            data.text[utt] = u.spec.text
        data.utt2spk[utt] = u.speaker.spk_id
        spk2gender[u.speaker.spk_id] = u.speaker.gender
        utt2dur[utt] = _fmt_dur(info.frames)
        seconds += info.frames / SAMPLE_RATE
        words += len(u.spec.text.split())
    data.extra = {"spk2gender": spk2gender, "utt2dur": utt2dur}
    data.write(out_dir)
    return {
        "hours": seconds / 3600.0,
        "minutes": seconds / 60.0,
        "speakers": len(spk2gender),
        "meetings": len({u.speaker.meeting for u in utts}),
        "utterances": len(utts),
        "words": words,
    }


def format_stats(stats: dict[str, dict], vocab_size: int, seed: int, size: str) -> str:
    lines = [
        f"# embedded corpus: size={size} seed={seed} vocabulary={vocab_size} words",
        "split  hours   minutes  speakers  meetings  utterances  words",
    ]
    for split, s in stats.items():
        lines.append(
            f"{split:<6} {s['hours']:.3f}  {s['minutes']:7.2f}  {s['speakers']:8d}  "
            f"{s['meetings']:8d}  {s['utterances']:10d}  {s['words']:5d}"
        )
    return "\n".join(lines) + "\n"


def make_corpus(
    corpus_dir: str | Path,
    data_dir: str | Path,
    size: str = "default",
    seed: int = 1,
    nj: int = 2,
    **overrides: float | int | None,
) -> str:
    """Generate (or complete) the corpus and its data dirs; returns the stats text."""
    cfg = size_config(size, **overrides)
    corpus_dir = Path(corpus_dir)
    data_dir = Path(data_dir)
    start = time.time()
    plan = plan_corpus(cfg, seed)
    stats: dict[str, dict] = {}
    for split in plan:
        wav_dir = corpus_dir / "wav" / split
        t0 = time.time()
        rendered, cached = synthesize_split(plan[split], wav_dir, nj)
        log.info(
            "%s: rendered %d wavs, %d cached (%.1f s)", split, rendered, cached, time.time() - t0
        )
        prefix = os.path.join(str(corpus_dir), "wav", split)
        stats[split] = write_split(
            plan[split], wav_dir, prefix, data_dir / split, with_text=split != UNTRANSCRIBED
        )
    vocab = load_vocab().words
    local = data_dir / "local"
    atomic_write_text(
        local / "lm" / "train_text.txt", "".join(u.spec.text + "\n" for u in plan["train"])
    )
    atomic_write_text(local / "corpus_words.txt", "".join(w + "\n" for w in vocab))
    speakers = {u.speaker.spk_id: u.speaker for split in plan for u in plan[split]}
    atomic_write_text(
        local / "corpus_speakers.txt",
        "".join(f"{s} {speakers[s].describe()}\n" for s in c_sorted(speakers)),
    )
    text = format_stats(stats, len(vocab), seed, size)
    atomic_write_text(local / "corpus_stats.txt", text)
    log.info("embedded corpus done in %.1f s", time.time() - start)
    return text
