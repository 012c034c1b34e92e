"""Builtin monophone GMM training and alignment (pykd.gmm: feats, em, mono, align).

Data: a few sentences of kaldi-ref/gmm's corpus synthesised with flite (2 voices = 2 speakers),
MFCC + per-speaker CMVN by pykd.features, Kaldi's lang_full; plus one utterance far too short
for its transcript, which must be skipped and counted, never crash the training.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import kaldi_hmm_gmm as khg
import kaldiio
import numpy as np
import pytest
import soundfile

from pykd.features import compute_cmvn_stats, compute_to_ark, load_config
from pykd.features.ark import read_matrices
from pykd.features.cmvn import read_spk2utt, write_cmvn
from pykd.gmm import em
from pykd.gmm.feats import add_deltas, load_gmm_feats
from pykd.kaldi import model_io

VOICES = ("awb", "slt")
NUM_SENTS = 14
SHORT_UTT = "awb-999"  # 0.15 s of audio for an 8-word transcript
NUM_ITERS = 8
TOTGAUSS = 240


def run_script(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KALDI_ROOT"}
    cmd = f". ./path.sh && {' '.join(args)}"
    proc = subprocess.run(
        ["bash", "-c", cmd], cwd=repo_root, env=env, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise AssertionError(f"{args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def corpus(kaldi_ref: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """data/train (features, CMVN) + lang for a 2-speaker flite corpus."""
    if shutil.which("flite") is None:
        pytest.skip("flite not installed")
    work = tmp_path_factory.mktemp("gmm_mono")
    sents = (kaldi_ref / "gmm" / "lm_full" / "text_full.txt").read_text().splitlines()[:NUM_SENTS]
    data = work / "data" / "train"
    wavs = work / "wav"
    data.mkdir(parents=True)
    wavs.mkdir()
    text, wav_scp, utt2spk = {}, {}, {}
    for voice in VOICES:
        for n, sent in enumerate(sents, 1):
            utt = f"{voice}-{n:03d}"
            wav = wavs / f"{utt}.wav"
            subprocess.run(["flite", "-voice", voice, "-t", sent, "-o", str(wav)], check=True)
            text[utt], wav_scp[utt], utt2spk[utt] = sent, str(wav), voice
    rng = np.random.default_rng(0)
    short = wavs / f"{SHORT_UTT}.wav"
    soundfile.write(short, (rng.standard_normal(2400) * 300).astype(np.int16), 16000)
    text[SHORT_UTT], wav_scp[SHORT_UTT], utt2spk[SHORT_UTT] = sents[3], str(short), "awb"

    def write(name: str, table: dict[str, str]) -> None:
        (data / name).write_text("".join(f"{k} {table[k]}\n" for k in sorted(table)))

    write("text", text)
    write("wav.scp", wav_scp)
    write("utt2spk", utt2spk)
    write("spk2utt", {v: " ".join(sorted(u for u in utt2spk if utt2spk[u] == v)) for v in VOICES})
    cfg = load_config("mfcc", kaldi_ref / "gmm" / "mfcc.conf")
    compute_to_ark(cfg, data / "wav.scp", work / "mfcc.ark", data / "feats.scp")
    stats = compute_cmvn_stats(
        read_matrices(str(data / "feats.scp")), read_spk2utt(data / "spk2utt")
    )
    write_cmvn(stats, work / "cmvn.ark", data / "cmvn.scp")
    return {"data": data, "lang": kaldi_ref / "gmm" / "lang_full", "work": work}


REALIGN_ITERS = (1, 2, 3, 4, 6)


@pytest.fixture(scope="module")
def mono(corpus: dict[str, Path], repo_root: Path) -> Path:
    """steps_kd/train_mono.sh on the corpus (2 jobs, a few iterations), its jobs through a
    recording job runner (``--cmd``) that hands them on to run.pl."""
    exp = corpus["work"] / "exp" / "mono"
    runner = corpus["work"] / "recording_runner.sh"
    runner.write_text(
        f'#!/usr/bin/env bash\necho "$*" >> {corpus["work"]}/runner_calls.txt\n'
        f'exec {repo_root}/utils_kd/run.pl "$@"\n'
    )
    runner.chmod(0o755)
    proc = run_script(
        repo_root,
        "steps_kd/train_mono.sh",
        f"--nj 2 --cmd {runner}",
        f"--num-iters {NUM_ITERS} --max-iter-inc 5 --totgauss {TOTGAUSS}",
        f'--realign-iters "{" ".join(map(str, REALIGN_ITERS))}"',
        str(corpus["data"]),
        str(corpus["lang"]),
        str(exp),
    )
    assert "align prob=" in proc.stdout
    return exp


def test_add_deltas_matches_kaldi(kaldi_ref: Path) -> None:
    ref = kaldi_ref / "features"
    mfcc = dict(kaldiio.load_ark(str(ref / "mfcc.ark")))
    cmvn = dict(kaldiio.load_ark(str(ref / "cmvn.ark")))
    want = dict(kaldiio.load_ark(str(ref / "mfcc_cmvn_deltas.txt")))
    from pykd.features import apply_cmvn

    for utt, mat in mfcc.items():
        got = add_deltas(apply_cmvn(mat, cmvn[utt]))
        assert got.shape == want[utt].shape == (mat.shape[0], 39)
        np.testing.assert_allclose(got, want[utt], atol=2e-5, rtol=1e-5)
    # edge frames repeat: a constant input has zero deltas everywhere
    np.testing.assert_allclose(add_deltas(np.ones((5, 3), np.float32))[:, 3:], 0, atol=1e-6)


def test_mono_tree_is_kaldis(kaldi_ref: Path, tmp_path: Path) -> None:
    """gmm-init-mono --shared-phones=sets.int: same tree text and HMM structure as Kaldi's."""
    from pykd.gmm.mono import init_mono

    lang = kaldi_ref / "gmm" / "lang_full"
    feats = {"u": np.random.default_rng(0).standard_normal((50, 39)).astype(np.float32)}
    ctx_dep, tm, am = init_mono(lang, feats, 10)
    model_io.write_tree(ctx_dep, tmp_path / "tree.txt", binary=False)
    assert (tmp_path / "tree.txt").read_text() == (kaldi_ref / "gmm/mono/tree.txt").read_text()
    assert (tm.num_pdfs, tm.num_transition_ids, tm.num_transition_states) == (118, 1284, 602)
    assert am.num_pdfs == 118 and am.num_gauss == 118 and am.dim == 39


def test_train_mono_is_reproducible(mono: Path, corpus: dict[str, Path], repo_root: Path) -> None:
    """The same inputs give the same final.mdl, byte for byte (mixing-up is seeded)."""
    again = corpus["work"] / "exp" / "mono_again"
    run_script(
        repo_root, "steps_kd/train_mono.sh", "--nj 2",
        f"--num-iters {NUM_ITERS} --max-iter-inc 5 --totgauss {TOTGAUSS}",
        f'--realign-iters "{" ".join(map(str, REALIGN_ITERS))}"', str(corpus["data"]),
        str(corpus["lang"]), str(again),
    )  # fmt: skip
    assert (again / "final.mdl").read_bytes() == (mono / "final.mdl").read_bytes()


def test_rerun_moves_the_earlier_run_aside(corpus: dict[str, Path], repo_root: Path) -> None:
    """A re-run never mixes with the earlier run's files: they move to <dir>.previous, and
    <dir>/.incomplete marks a run until it finishes."""
    exp = corpus["work"] / "exp" / "mono_rerun"
    args = ("steps_kd/train_mono.sh", "--nj 2", "--num-iters 2 --totgauss 60",
            str(corpus["data"]), str(corpus["lang"]), str(exp))  # fmt: skip
    run_script(repo_root, *args)
    assert (exp / "final.mdl").is_file() and not (exp / ".incomplete").exists()
    (exp / "decode_dev").mkdir()
    (exp / "decode_dev" / "lat.1.gz").write_bytes(b"an earlier decode")
    run_script(repo_root, *args)
    assert not (exp / "decode_dev").exists() and (exp / "final.mdl").is_file()
    assert (exp.parent / "mono_rerun.previous" / "decode_dev" / "lat.1.gz").is_file()
    assert not (exp / ".incomplete").exists()


def test_train_mono_outputs(mono: Path, corpus: dict[str, Path], kaldi_ref: Path) -> None:
    for name in ("final.mdl", "final.occs", "tree", "ali.1.gz", "ali.2.gz", "cmvn_opts"):
        assert (mono / name).is_file(), name
    assert (mono / "num_jobs").read_text().strip() == "2"
    assert os.readlink(mono / "final.mdl") == f"{NUM_ITERS}.mdl"
    # as train_mono.sh: 0.mdl and the last model are kept, the others deleted
    assert sorted(p.name for p in mono.glob("*.mdl")) == ["0.mdl", f"{NUM_ITERS}.mdl", "final.mdl"]
    tm, am = model_io.read_model(mono / "final.mdl")
    assert tm.num_pdfs == am.num_pdfs == 118 and am.dim == 39
    assert 118 < am.num_gauss <= TOTGAUSS + 10
    # The HMM part of the text model equals Kaldi's (same topology and tree).
    ours = model_io.model_bytes(tm, am, binary=False).decode()
    theirs = (kaldi_ref / "gmm" / "mono" / "final.mdl.txt").read_text()
    assert ours.split("<LogProbs>")[0] == theirs.split("<LogProbs>")[0]
    ctx_dep = model_io.read_tree(mono / "tree")
    assert ctx_dep.__getstate__() == model_io.read_tree(mono / "tree").__getstate__()


def test_alignment_jobs_go_through_cmd(mono: Path, corpus: dict[str, Path]) -> None:
    """Every alignment pass (equal alignment, then each realignment) is one `$cmd JOB=1:2` call,
    so a cluster runner spreads the jobs; each job logs under the runner's header."""
    calls = (corpus["work"] / "runner_calls.txt").read_text().splitlines()
    align_calls = [c for c in calls if "gmm-align-job" in c]
    assert len(align_calls) == 1 + len(REALIGN_ITERS), calls
    assert all(c.startswith("JOB=1:2 ") for c in align_calls), align_calls
    assert "--equal" in align_calls[0] and "--equal" not in align_calls[1]
    for x in (0, *REALIGN_ITERS):
        for job in (1, 2):
            text = (mono / "log" / f"align.{x}.{job}.log").read_text()
            assert text.startswith("# ") and f"split2/{job}" in text
            assert "# Ended (code 0)" in text, text


def test_likelihood_increases(mono: Path) -> None:
    lines = [ln for ln in (mono / "log" / "train.log").read_text().splitlines() if " iter " in ln]
    assert len(lines) == NUM_ITERS
    likes = [float(ln.split("(Gaussian only) ")[1].split()[0]) for ln in lines]
    assert likes[-1] > likes[0] + 2.0, likes
    drops = [b - a for a, b in zip(likes, likes[1:], strict=False) if b < a]
    assert all(d > -0.5 for d in drops), likes
    update = (mono / "log" / f"update.{NUM_ITERS - 1}.log").read_text()
    assert "GMM update: Overall" in update and "Transition model update" in update


def test_short_utterance_skipped_and_counted(mono: Path) -> None:
    alis = {}
    for j in (1, 2):
        alis.update(model_io.read_alignments(mono / f"ali.{j}.gz"))
    assert SHORT_UTT not in alis
    equal_logs = " ".join((mono / "log" / f"align.0.{j}.log").read_text() for j in (1, 2))
    assert f"Failed utterances: {SHORT_UTT}" in equal_logs and "errors on 1" in equal_logs
    realign = " ".join((mono / "log" / f"align.6.{j}.log").read_text() for j in (1, 2))
    assert SHORT_UTT in realign


def _prons(lang: Path) -> dict[int, list[list[int]]]:
    out: dict[int, list[list[int]]] = {}
    for line in (lang / "phones" / "align_lexicon.int").read_text().splitlines():
        f = [int(x) for x in line.split()]
        out.setdefault(f[0], []).append(f[2:])
    return out


def _matches(phones: list[int], words: list[int], prons: dict[int, list[list[int]]]) -> bool:
    """Whether ``phones`` is a concatenation of one pronunciation per word."""
    if not words:
        return not phones
    return any(
        phones[: len(p)] == p and _matches(phones[len(p) :], words[1:], prons)
        for p in prons[words[0]]
    )


def test_alignments_map_to_lexicon_phones(mono: Path, corpus: dict[str, Path]) -> None:
    lang = corpus["lang"]
    tm, _ = model_io.read_model(mono / "final.mdl")
    tid2phone = model_io.tid_to_phone(tm)
    silence = {int(x) for x in (lang / "phones" / "silence.csl").read_text().strip().split(":")}
    words = {w: int(i) for w, i in (ln.split() for ln in (lang / "words.txt").open())}
    prons = _prons(lang)
    prons = {w: [[p for p in pr if p not in silence] for pr in ps] for w, ps in prons.items()}
    feats = load_gmm_feats(corpus["data"])
    text = dict(ln.split(maxsplit=1) for ln in (corpus["data"] / "text").read_text().splitlines())
    alis = {}
    for j in (1, 2):
        alis.update(model_io.read_alignments(mono / f"ali.{j}.gz"))
    assert len(alis) >= len(feats) - 3  # the short one (and at most 2 others) may fail
    for utt, ali in alis.items():
        assert len(ali) == feats[utt].shape[0]
        per_frame = tid2phone[ali]
        seq = [int(p) for i, p in enumerate(per_frame) if i == 0 or p != per_frame[i - 1]]
        seq = [p for p in seq if p not in silence]
        assert _matches(seq, [words[w] for w in text[utt].split()], prons), utt


def test_align_si(mono: Path, corpus: dict[str, Path], repo_root: Path) -> None:
    ali_dir = corpus["work"] / "exp" / "mono_ali"
    run_script(
        repo_root,
        "steps_kd/align_si.sh --nj 2",
        str(corpus["data"]),
        str(corpus["lang"]),
        str(mono),
        str(ali_dir),
    )
    assert (ali_dir / "num_jobs").read_text().strip() == "2"
    assert (ali_dir / "final.mdl").read_bytes() == (mono / "final.mdl").read_bytes()
    alis = {}
    for j in (1, 2):
        alis.update(model_io.read_alignments(ali_dir / f"ali.{j}.gz"))
    assert SHORT_UTT not in alis and len(alis) >= 2 * NUM_SENTS - 2
    logs = " ".join((ali_dir / "log" / f"align.{j}.log").read_text() for j in (1, 2))
    assert SHORT_UTT in logs
    # tids are valid for the model, and ali-to-pdf works on them
    tm, _ = model_io.read_model(ali_dir / "final.mdl")
    pdfs = model_io.tid_to_pdf(tm)[np.concatenate(list(alis.values()))]
    assert pdfs.min() >= 0 and pdfs.max() < tm.num_pdfs


def test_equal_align_and_update_api(corpus: dict[str, Path]) -> None:
    """The em API as D2 uses it: equal alignment, accumulate, update with mixing up."""
    from pykd.gmm.mono import init_mono

    lang = corpus["lang"]
    feats = load_gmm_feats(corpus["data"])
    ctx_dep, tm, am = init_mono(lang, feats, 10)
    graphs, bad = em.GraphCompiler.load(lang, ctx_dep, tm).compile_texts(
        dict(ln.split(maxsplit=1) for ln in (corpus["data"] / "text").read_text().splitlines())
    )
    assert not bad
    alis, stats = em.equal_align(graphs, feats)
    assert stats.failed == [SHORT_UTT] and stats.num_done == len(feats) - 1
    acc, counts, acc_stats = em.accumulate(tm, am, feats, alis)
    assert acc_stats.num_frames == sum(len(a) for a in alis.values()) == counts.sum()
    upd = em.update(tm, am, acc, counts, em.GmmEstOptions(mixup=200, min_gaussian_occupancy=3))
    assert upd.gmm_objf_impr > 0 and am.num_gauss > 118
    acc2, _, st2 = em.accumulate(tm, am, feats, alis)
    assert st2.like_per_frame() > acc_stats.like_per_frame()
    # Viterbi realignment with the updated model beats the equal alignment
    alis2, ast = em.align_utterances(tm, am, graphs, feats, em.AlignOptions())
    assert SHORT_UTT in ast.failed and ast.num_done >= len(feats) - 3
    _, _, st3 = em.accumulate(tm, am, feats, alis2)
    assert st3.like_per_frame() > st2.like_per_frame()
    assert isinstance(acc2, khg.AccumAmDiagGmm)


def test_boost_silence_scales_silence_likelihoods(kaldi_ref: Path) -> None:
    from pykd.gmm.mono import init_mono

    lang = kaldi_ref / "gmm" / "lang_full"
    rng = np.random.default_rng(1)
    _, tm, am = init_mono(lang, {"u": rng.standard_normal((50, 39)).astype(np.float32)}, 10)
    boosted = em.boost_silence(am, tm, [1], 2.0)  # phone 1 = SIL -> pdfs 0..4
    x = rng.standard_normal(39).astype(np.float32)
    for pdf in range(5):
        assert boosted.log_likelihood(pdf, x) - am.log_likelihood(pdf, x) == pytest.approx(
            np.log(2.0), abs=1e-4
        )
    assert boosted.log_likelihood(20, x) == am.log_likelihood(20, x)


def test_missing_inputs_are_clear_errors(corpus: dict[str, Path], tmp_path: Path) -> None:
    from pykd.frontend.features import FeatureInputError
    from pykd.gmm.feats import CmvnOpts
    from pykd.gmm.mono import MonoOptions, train_mono

    data = tmp_path / "data"
    shutil.copytree(corpus["data"], data, ignore=shutil.ignore_patterns("split*"))
    (data / "cmvn.scp").unlink()
    with pytest.raises(FileNotFoundError, match="cmvn.scp"):
        train_mono(data, corpus["lang"], tmp_path / "exp", MonoOptions(nj=1, num_iters=1))
    with pytest.raises(FeatureInputError, match="--frobnicate"):
        CmvnOpts.parse("--norm-vars=true --frobnicate")
    assert CmvnOpts.parse("--norm-vars=true") == CmvnOpts(True, True)
