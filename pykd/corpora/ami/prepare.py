"""AMI -> Kaldi data directories ``data/<mic>/{train,dev,eval}`` (IHM and SDM).

Ids follow Kaldi's AMI s5b recipe (times in centiseconds, ``int(100 * t + 0.5)``):

* IHM: recording ``AMI_<MEET>_H0<n>`` (n = headset channel of the speaker in meetings.xml),
  utterance ``AMI_<MEET>_H0<n>_<SPK>_<start:07d>_<end:07d>``, speaker ``AMI_<MEET>_H0<n>_<SPK>``;
* SDM: recording ``AMI_<MEET>_SDM``, utterance ``AMI_<MEET>_SDM_<SPK>_<start>_<end>``, speaker
  ``AMI_<MEET>_SDM_<SPK>``.

The speaker id is a prefix of its utterance ids, so sorting utt2spk by utterance and by speaker
agree (Kaldi's validate_data_dir.sh requires it; s5b's final IHM utt2spk does the same).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import soundfile

from pykd.corpora.ami.annotations import (
    AmiError,
    AnnotationSource,
    Segment,
    Speaker,
    Word,
    read_meetings,
    read_segments,
    read_words,
    segment_words,
    segments_file,
    words_file,
)
from pykd.corpora.ami.normalise import word_tokens
from pykd.corpora.ami.splits import SPLITS, split_of
from pykd.io.atomic import atomic_write_text
from pykd.io.datadir import DataDir

log = logging.getLogger(__name__)

SENTENCE_END = frozenset(".?!")
_MIC = re.compile(r"^(ihm|sdm[1-8])$")


@dataclass(frozen=True)
class PrepConfig:
    """Options of the AMI data preparation."""

    mic: str = "ihm"  # ihm | sdm1 (sdm2..sdm8: other mics of array 1)
    max_words: int = 30  # split segments with more words than this
    keep_truncated: bool = False  # keep trunc="true" words in the transcript


@dataclass(frozen=True)
class Utterance:
    utt: str
    reco: str
    spk: str
    start_cs: int
    end_cs: int
    words: tuple[str, ...]


@dataclass
class PrepReport:
    """What the preparation did and what it left out (for logs and tests)."""

    counts: Counter = field(default_factory=Counter)
    missing_meetings: dict[str, list[str]] = field(default_factory=dict)
    no_split: list[str] = field(default_factory=list)
    missing_audio: list[str] = field(default_factory=list)
    stats: dict[str, dict[str, float]] = field(default_factory=dict)


def to_cs(seconds: float) -> int:
    """Seconds -> centiseconds, rounded half up like s5b's ``int(100*t+0.5)``."""
    return int(100 * seconds + 0.5)


# ---------------------------------------------------------------------------- segment splitting


def _cut_time(left: list[Word], right: list[Word], fallback: float) -> float:
    ends = [w.end for w in left if w.is_lexical and w.end is not None]
    starts = [w.start for w in right if w.is_lexical and w.start is not None]
    if ends and starts:
        return (ends[-1] + starts[0]) / 2
    return fallback


def split_segment(
    items: list[Word], start: float, end: float, max_words: int, keep_truncated: bool = False
) -> list[tuple[list[str], float, float]]:
    """Split a segment with more than ``max_words`` words, recursively, into pieces.

    Cut points, best first: after a sentence end (``. ? !``), after other punctuation (``,``
    ...), then at the longest pause between two spoken words; among equals the one nearest the
    middle (by word count). The cut time is the middle of the pause between the last spoken word
    before and the first after it. A piece is never empty and its times never collapse.
    """
    toks = [word_tokens(w, keep_truncated=keep_truncated) for w in items]
    words = [t for ts in toks for t in ts]
    n = len(words)
    if n <= max_words:
        return [(words, start, end)]
    candidates = []
    left_n = 0
    last_spoken_end: float | None = None
    for i in range(1, len(items)):
        left_n += len(toks[i - 1])
        prev, here = items[i - 1], items[i]
        if prev.is_lexical and prev.end is not None:
            last_spoken_end = prev.end
        if not 0 < left_n < n:
            continue
        balance = abs(left_n - n / 2)
        if prev.tag == "w" and prev.punc:
            rank = 0 if prev.text.strip() in SENTENCE_END else 1
            fallback = prev.start if prev.start is not None else start + (end - start) * left_n / n
            candidates.append(((rank, 0.0, balance, i), fallback))
        elif toks[i] and here.is_lexical:
            pause = 0.0
            if here.start is not None and last_spoken_end is not None:
                pause = here.start - last_spoken_end
            fallback = start + (end - start) * left_n / n
            candidates.append(((2, -pause, balance, i), fallback))
    for key, fallback in sorted(candidates):
        i = key[3]
        cut = _cut_time(items[:i], items[i:], fallback)
        if to_cs(start) < to_cs(cut) < to_cs(end):
            return split_segment(items[:i], start, cut, max_words, keep_truncated) + split_segment(
                items[i:], cut, end, max_words, keep_truncated
            )
    return [(words, start, end)]


# ---------------------------------------------------------------------------- one meeting


def _segment_times(segment: Segment, items: list[Word]) -> tuple[float | None, float | None]:
    start, end = segment.start, segment.end
    if start is None:
        start = next((w.start for w in items if w.start is not None), None)
    if end is None:
        end = next((w.end for w in reversed(items) if w.end is not None), None)
    return start, end


def speaker_pieces(
    src: AnnotationSource, meeting: str, speaker: Speaker, config: PrepConfig, counts: Counter
) -> list[tuple[list[str], float, float]] | None:
    """All (words, start, end) pieces of one speaker of a meeting; None if files are missing."""
    wrel, srel = words_file(meeting, speaker.agent), segments_file(meeting, speaker.agent)
    for rel in (wrel, srel):
        if not src.exists(rel):
            log.warning(
                "meeting %s agent %s: %s missing", meeting, speaker.agent, src.describe(rel)
            )
            counts["missing_annotation_files"] += 1
            return None
    words = read_words(src, wrel)
    index = {w.id: i for i, w in enumerate(words)}
    pieces = []
    for segment in read_segments(src, srel):
        items = segment_words(segment, words, index, src.describe(srel))
        start, end = _segment_times(segment, items)
        if start is None or end is None or end <= start:
            counts["bad_times"] += 1
            log.debug("%s: segment %s has no usable times", src.describe(srel), segment.id)
            continue
        counts["segments"] += 1
        split = split_segment(items, start, end, config.max_words, config.keep_truncated)
        counts["split_pieces_added"] += len(split) - 1
        pieces.extend(split)
    return pieces


@dataclass(frozen=True)
class Recording:
    reco: str
    wav: Path
    file_and_channel: str  # "<file> <channel>" of reco2file_and_channel


def recordings(ami_dir: Path, meeting: str, speaker: Speaker, mic: str) -> Recording:
    audio = ami_dir / "amicorpus" / meeting / "audio"
    if mic == "ihm":
        name = f"{meeting}.Headset-{speaker.channel}"
        return Recording(f"AMI_{meeting}_H0{speaker.channel}", audio / f"{name}.wav", f"{name} A")
    name = f"{meeting}.Array1-0{mic[3:]}"
    return Recording(f"AMI_{meeting}_SDM", audio / f"{name}.wav", f"{name} A")


def _duration(wav: Path) -> float:
    try:
        info = soundfile.info(str(wav))
    except RuntimeError as err:
        raise AmiError(f"{wav}: unreadable audio ({err})") from err
    if info.samplerate != 16000:
        log.warning("%s: sample rate %d, expected 16000", wav, info.samplerate)
    return info.frames / info.samplerate


def meeting_utterances(
    src: AnnotationSource,
    ami_dir: Path,
    meeting: str,
    speakers: dict[str, Speaker],
    config: PrepConfig,
    report: PrepReport,
) -> tuple[list[Utterance], dict[str, Recording]]:
    """Utterances and recordings of one meeting for the configured microphone."""
    utts: list[Utterance] = []
    recos: dict[str, Recording] = {}
    counts = report.counts
    for agent in sorted(speakers):
        speaker = speakers[agent]
        pieces = speaker_pieces(src, meeting, speaker, config, counts)
        if pieces is None:
            continue
        rec = recordings(ami_dir, meeting, speaker, config.mic)
        if not rec.wav.is_file():
            channel = rec.file_and_channel.split()[0]
            if channel not in report.missing_audio:
                report.missing_audio.append(channel)
            log.warning(
                "meeting %s channel %s (speaker %s): missing %s; its %d utterances dropped",
                meeting,
                channel.split(".", 1)[1],
                speaker.global_name,
                rec.wav,
                len(pieces),
            )
            counts["dropped_missing_audio"] += len(pieces)
            continue
        duration_cs = to_cs(_duration(rec.wav))
        mic_tag = rec.reco.rsplit("_", 1)[1]
        spk = f"AMI_{meeting}_{mic_tag}_{speaker.global_name}"
        for words, start, end in pieces:
            start_cs, end_cs = to_cs(start), min(to_cs(end), duration_cs)
            if end_cs <= start_cs:
                counts["dropped_outside_audio"] += 1
                continue
            if not words:
                counts["dropped_empty"] += 1
                continue
            utt = f"{spk}_{start_cs:07d}_{end_cs:07d}"
            utts.append(Utterance(utt, rec.reco, spk, start_cs, end_cs, tuple(words)))
        recos[rec.reco] = rec
    return utts, recos


# ---------------------------------------------------------------------------- whole corpus


def find_annotations(ami_dir: Path) -> Path:
    """``ami_public_manual_1.6*`` (folder, then zip) or ``annotations/`` inside ``ami_dir``."""
    found = sorted(p for p in ami_dir.glob("ami_public_manual_1.6*") if p.is_dir())
    found += sorted(ami_dir.glob("ami_public_manual_1.6*.zip"))
    if (ami_dir / "annotations").is_dir():
        found.append(ami_dir / "annotations")
    if not found:
        raise FileNotFoundError(
            f"{ami_dir}: no ami_public_manual_1.6*/ folder or .zip (pass --annotations)"
        )
    return found[0]


def build_datadir(utts: list[Utterance], recos: dict[str, Recording]) -> DataDir:
    used = {u.reco for u in utts}
    for reco in used:
        if re.search(r"\s", str(recos[reco].wav)):
            raise AmiError(f"{recos[reco].wav}: whitespace in a wav path breaks wav.scp")
    return DataDir(
        wav_scp={r: str(recos[r].wav) for r in used},
        text={u.utt: " ".join(u.words) for u in utts},
        utt2spk={u.utt: u.spk for u in utts},
        segments={u.utt: f"{u.reco} {u.start_cs / 100:.2f} {u.end_cs / 100:.2f}" for u in utts},
        extra={"reco2file_and_channel": {r: recos[r].file_and_channel for r in used}},
    )


def split_stats(utts: list[Utterance]) -> dict[str, float]:
    return {
        "meetings": len({u.utt.split("_")[1] for u in utts}),
        "utterances": len(utts),
        "hours": round(sum(u.end_cs - u.start_cs for u in utts) / 360000, 3),
        "speakers": len({u.spk for u in utts}),
    }


def prepare_ami(
    ami_dir: str | Path,
    data_dir: str | Path,
    config: PrepConfig = PrepConfig(),
    annotations: str | Path | None = None,
) -> PrepReport:
    """Write ``<data_dir>/<mic>/<split>/`` for every split that has data; return a report."""
    if not _MIC.match(config.mic):
        raise ValueError(f"--mic must be ihm or sdm1..sdm8, got '{config.mic}'")
    ami_dir = Path(ami_dir).resolve()
    if not (ami_dir / "amicorpus").is_dir():
        raise FileNotFoundError(
            f"{ami_dir}: no amicorpus/ folder (expected amicorpus/<MEET>/audio)"
        )
    src = AnnotationSource(annotations if annotations else find_annotations(ami_dir))
    log.info("annotations: %s", src.path)
    meetings = read_meetings(src)
    report = PrepReport()
    audio_meetings = {p.name for p in (ami_dir / "amicorpus").iterdir() if p.is_dir()}
    report.no_split = sorted(m for m in set(meetings) | audio_meetings if split_of(m) is None)
    if report.no_split:
        log.warning("meetings in no split, left out: %s", " ".join(report.no_split))
    out_root = Path(data_dir) / config.mic
    for split, listed in SPLITS.items():
        utts: list[Utterance] = []
        recos: dict[str, Recording] = {}
        missing = []
        for meeting in listed:
            if meeting not in meetings or meeting not in audio_meetings:
                missing.append(meeting)
                continue
            m_utts, m_recos = meeting_utterances(
                src, ami_dir, meeting, meetings[meeting], config, report
            )
            utts.extend(m_utts)
            recos.update(m_recos)
        report.missing_meetings[split] = missing
        if missing:
            shown = " ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
            log.warning(
                "%s: %d of %d meetings missing (no annotations or no audio): %s",
                split,
                len(missing),
                len(listed),
                shown,
            )
        unique: dict[str, Utterance] = {}
        for u in utts:
            if u.utt in unique:
                report.counts["dropped_duplicate"] += 1
            else:
                unique[u.utt] = u
        utts = list(unique.values())
        if not utts:
            log.warning("%s: no utterances; %s not written", split, out_root / split)
            continue
        out = out_root / split
        data = build_datadir(utts, recos)
        data.write(out)
        stats = split_stats(utts)
        report.stats[split] = stats
        atomic_write_text(out / "stats.txt", "".join(f"{k} {v}\n" for k, v in stats.items()))
        log.info(
            "%s: %d meetings, %d utterances, %.2f hours, %d speakers -> %s",
            split,
            stats["meetings"],
            stats["utterances"],
            stats["hours"],
            stats["speakers"],
            out,
        )
    c = report.counts
    log.info(
        "segments %d (+%d from splitting); dropped: %d empty, %d duplicate, %d bad times, "
        "%d outside audio, %d with missing audio",
        c["segments"],
        c["split_pieces_added"],
        c["dropped_empty"],
        c["dropped_duplicate"],
        c["bad_times"],
        c["dropped_outside_audio"],
        c["dropped_missing_audio"],
    )
    return report


__all__ = ["PrepConfig", "PrepReport", "prepare_ami", "split_segment"]
