"""End-to-end: ./run.sh on the tiny embedded corpus (stages 1-14), in a scratch recipe dir, with
the builtin backend and (Kaldi tier) inside a real Kaldi install.

Marked slow: runs with ``--run-slow`` (tools/test.sh and CI pass it).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path
from sys import executable

import kaldifst
import kaldiio
import numpy as np
import pytest
from recipe_helpers import (
    TINY_DECODE_OPTS,
    make_recipe_dir,
    recipe_env,
    run_recipe,
    run_tiny_recipe_all_stages,
)

from pykd.decode.decoder import load_graph
from pykd.io.datadir import read_table
from pykd.kaldi.model_io import read_alignments


def digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_tiny_recipe_builtin(tiny_builtin_recipe: Path) -> None:
    """Stages 1-14 with the builtin backend; re-running a stage is safe."""
    recipe = tiny_builtin_recipe
    check_gmm_stages(recipe)
    check_network_stages(recipe)
    check_sequence_and_adaptation_stages(recipe)
    check_deploy_stage(recipe)

    # Re-running a stage is safe and gives the same lang.
    lang_files = sorted(p for p in (recipe / "data" / "lang").rglob("*") if p.is_file())
    before = digest(lang_files)
    run_recipe(recipe, "--stage", "2", "--stop-stage", "2")
    assert digest(lang_files) == before


@pytest.mark.slow
def test_half_set_si_decode_is_its_full_decode(tiny_builtin_recipe: Path, tmp_path: Path) -> None:
    """Stage 13's SI decode of the second halves (steps_kd/subset_decode.sh: stage 9's lattices
    of those utterances) scores as decoding the half data dir again does, WER for WER; a decode
    without the subset's utterances is refused, naming the counts."""
    recipe = tiny_builtin_recipe
    out = tmp_path / "decode_dev_half"
    decode = (
        f". ./path.sh && steps_kd/decode_nnet.sh --nj 2 {TINY_DECODE_OPTS[1]} --gmm-dir exp/tri1 "
        f"exp/tri1/graph data/dev_fbank_half exp/hdnn_kd {out}"
    )
    subprocess.run(["bash", "-c", decode], cwd=recipe, env=recipe_env(), check=True,
                   capture_output=True)  # fmt: skip

    def wers(d: Path) -> dict[str, str]:
        return {f.name: re.search(r"%WER .*", f.read_text()).group(0) for f in d.glob("wer_*")}

    def hyps(d: Path) -> dict[str, str]:  # every setting's 1-best word sequences
        files = d.glob("scoring_kaldi/penalty_*/*.txt")
        return {str(f.relative_to(d)): f.read_text() for f in files}

    subset = recipe / "exp/hdnn_kd/decode_dev_half"
    assert len(wers(subset)) == 36 and wers(subset) == wers(out)  # LM weights 4-15 x 3 penalties
    assert len(hyps(subset)) == 36 and hyps(subset) == hyps(out)
    bad = subprocess.run(
        ["bash", "-c", ". ./path.sh && steps_kd/subset_decode.sh data/dev_fbank_half "
         f"exp/tri1/graph exp/hdnn_kd/decode_eval {tmp_path}/bad"],
        cwd=recipe, env=recipe_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode != 0 and "has lattices for 0 of the" in bad.stderr, bad.stderr
    assert not (tmp_path / "bad/lat.1.gz").exists()


@pytest.mark.slow
def test_kd_over_seeds(tiny_builtin_recipe: Path, repo_root: Path, tmp_path: Path) -> None:
    """local/run_seeds.sh: the main seed's networks are kept, another seed's are trained into
    exp/seeds/, and RESULTS.md gets the tables over seeds (without and with untranscribed
    audio, with speed-perturbed copies; the network table keeps its rows)."""
    import shutil

    import torch

    recipe = make_recipe_dir(repo_root, tmp_path)
    for name in ("data", "exp"):
        shutil.copytree(tiny_builtin_recipe / name, recipe / name, symlinks=True)
    (recipe / "corpus").symlink_to(tiny_builtin_recipe / "corpus")  # (the speed-perturbed copies)
    main_teacher = (recipe / "exp/dnn/final.pt").read_bytes()
    proc = subprocess.run(
        ["local/run_seeds.sh", "--seeds", "1 2", "--size", "tiny", "--nj", "2",
         "--nnet-max-epochs", "2", "--decode-opts", "--beam 8 --lattice-beam 4",
         "--kd-speed-perturb", "0.9 1.1"],
        cwd=recipe, env=recipe_env(None), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "exp/dnn/final.pt is complete: not trained again" in proc.stdout
    assert (recipe / "exp/dnn/final.pt").read_bytes() == main_teacher
    seed2 = recipe / "exp/seeds/seed2"
    a = torch.load(recipe / "exp/dnn/final.pt", weights_only=False)["model"]
    b = torch.load(seed2 / "dnn/final.pt", weights_only=False)["model"]
    assert any(not torch.equal(a[k], b[k]) for k in a)  # another seed, another network
    assert (seed2 / "hdnn_kd/decode_eval/scoring_kaldi/best_wer").is_file()
    results = (recipe / "RESULTS.md").read_text()
    # the tiny recipe has untranscribed audio: each seed's stage 10 KD student, its own table
    assert (seed2 / "hdnn_kd_untrans/decode_eval/scoring_kaldi/best_wer").is_file()
    plain = results.index("## Knowledge distillation over 2 seeds")
    untrans = results.index("## Knowledge distillation from transcribed + untranscribed audio")
    sp = results.index("## Knowledge distillation from the transcribed audio + its speed-pert")
    assert plain < untrans < sp
    for table in (results[plain:untrans], results[untrans:sp], results[sp:]):
        for row in ("| 1 |", "| 2 |", "| mean +- sd |"):
            assert sum(ln.startswith(row) for ln in table.splitlines()) == 1, results
        assert re.search(
            r"- dev: KD beats CE in [012] of 2 seeds; in [012] of them with a paired bootstrap "
            r"probability >= 0\.95 .*; one WER near",
            table,
        )
        assert "P(KD better) dev" in table
    assert sum(ln.startswith("| dnn |") for ln in results.splitlines()) == 1
    # --kd-speed-perturb: both seeds' hdnn_kd_sp learnt from the same copies of train less its
    # CV speakers (Kaldi's sp<factor>- ids), which had no alignment: the teacher's targets only
    sp_utts = read_table(recipe / "data/train_sp_fbank/utt2uniq")
    cv = set((recipe / "exp/dnn/cv_utts").read_text().split())
    train = set(read_table(recipe / "data/train/utt2spk"))
    assert set(sp_utts.values()) == train - cv and cv
    assert sorted(sp_utts) == sorted(f"sp{f}-{u}" for f in ("0.9", "1.1") for u in train - cv)
    for seed_dir in (recipe / "exp", seed2):
        meta = torch.load(seed_dir / "hdnn_kd_sp/final.pt", weights_only=False)["meta"]
        assert meta["untranscribed_utts"] == len(sp_utts), meta
        assert (seed_dir / "hdnn_kd_sp/decode_eval/scoring_kaldi/best_wer").is_file()
        assert set((seed_dir / "hdnn_kd_sp/cv_utts").read_text().split()) == cv

    # Stage 12 for another seed's networks, with a q sweep of the teacher-regularised student:
    # one student per q in that seed's dir, none declared in the main tables, read by
    # bench/seq_kd_q.py (the main seed has no sweep: left out, named).
    systems_before = (recipe / "exp/systems.txt").read_text()
    run_recipe(recipe, "--stage", "12", "--stop-stage", "12", "--seed", "2", "--nnet-exp",
               "exp/seeds/seed2", "--seq-nets", "teacher student student_kd", "--seq-kd-q",
               "0.2 0.8", "--seq-epochs", "1", *TINY_DECODE_OPTS)  # fmt: skip
    for q in ("0.2", "0.8"):
        student = seed2 / f"hdnn_smbr_kd_q{q}"
        meta = torch.load(student / "final.pt", weights_only=False)["meta"]
        assert meta["seq"]["kd_q"] == float(q), meta["seq"]
        assert (student / "decode_eval/scoring_kaldi/best_wer").is_file()
    assert not (seed2 / "hdnn_smbr_kd").exists() and not (recipe / "exp/hdnn_smbr_kd_q0.2").exists()
    assert (recipe / "exp/systems.txt").read_text() == systems_before
    report = subprocess.run(
        [executable, str(repo_root / "bench/seq_kd_q.py"), str(recipe), "--qs", "0.2 0.8"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert re.search(r"^\| 2 \| [0-9.]+ / [0-9.]+ \|", report, re.M), report
    assert "seed 1 (exp): hdnn_smbr_kd_q0.2, hdnn_smbr_kd_q0.8 not decoded, left out" in report


def test_other_untranscribed_amount_replaces_its_features(repo_root: Path, tmp_path: Path) -> None:
    """Stages 1 and 4 again with another --untrans-minutes: data/untrans_fbank is made afresh
    for the new utterances (a stale copy of the old ones used to fail its validation)."""
    recipe = make_recipe_dir(repo_root, tmp_path)
    counts = []
    for minutes in ("0.3", "0.6"):
        for stage in ("1", "4"):
            run_recipe(
                recipe, "--stage", stage, "--stop-stage", stage, "--untrans-minutes", minutes
            )
        feats = read_table(recipe / "data/untrans_fbank/feats.scp")
        assert sorted(feats) == sorted(read_table(recipe / "data/untrans/utt2spk"))
        counts.append(len(feats))
    assert counts[1] > counts[0] > 0, counts


# Kaldi binaries whose LOG lines must appear in the logs of a run with KALDI_ROOT: proof that
# each step handed over to Kaldi (log file glob under exp/ -> binary).
KALDI_STEPS = {
    "make_mfcc/train/make_mfcc_train.1.log": "compute-mfcc-feats",
    "make_fbank/train/make_fbank_train_fbank.1.log": "compute-fbank-feats",
    "mono/log/acc.1.1.log": "gmm-acc-stats-ali",
    "tri1/log/build_tree.log": "build-tree",
    "tri1/decode_dev/log/decode.1.log": "gmm-latgen-faster",
    "tri1_ali/log/align.1.log": "gmm-align-compiled",
    "dnn/decode_dev/log/decode.1.log": "latgen-faster-mapped",
    "hdnn_kd/decode_eval/log/decode.1.log": "latgen-faster-mapped",
    "hdnn_kd/export/decode_dev_int8/log/decode.1.log": "latgen-faster-mapped",
    "dnn_denlats/log/decode_den.1.log": "latgen-faster-mapped",
}


@pytest.mark.slow
@pytest.mark.kaldi
def test_tiny_recipe_with_kaldi(repo_root: Path, tmp_path: Path, kaldi_root: Path) -> None:
    """KALDI_ROOT=<kaldi> ./run.sh: Kaldi's binaries and steps/ do features, GMMs, graphs, decoding,
    scoring and denominator lattices; pykd trains the networks on Kaldi's alignments, does sequence
    training on Kaldi's lattices and adapts the student from Kaldi's first-pass lattices. Stage 12
    with sMBR only: MMI takes the same path through Kaldi's tools (the builtin run has both)."""
    recipe = make_recipe_dir(repo_root, tmp_path)
    run_tiny_recipe_all_stages(recipe, kaldi_root=kaldi_root, seq_criteria="smbr")
    exp = recipe / "exp"
    for log, binary in KALDI_STEPS.items():
        text = (exp / log).read_text()
        assert f"LOG ({binary}[" in text, (log, binary, text[-2000:])
    check_gmm_stages(recipe)
    check_network_stages(recipe)
    check_sequence_and_adaptation_stages(recipe, criteria=("smbr",))
    check_deploy_stage(recipe)


def check_gmm_stages(recipe: Path) -> None:
    """What stages 1-7 leave: data, lang, LM, features, mono and triphone GMMs, decoded, scored."""
    data = recipe / "data"

    for split in ("train", "dev", "eval"):
        utts = read_table(data / split / "utt2spk")
        assert utts, f"{split} has no utterances"
        # MFCC (13) for the GMM and fbank (40) for the networks, one matrix per utterance.
        for sub, dim in ((split, 13), (f"{split}_fbank", 40)):
            feats = kaldiio.load_scp(str(data / sub / "feats.scp"))
            assert set(feats) == set(utts)
            for key in list(feats)[:5]:
                mat = feats[key]
                assert mat.shape[1] == dim and mat.shape[0] > 10 and np.isfinite(mat).all()
            cmvn = kaldiio.load_scp(str(data / sub / "cmvn.scp"))
            spks = set(read_table(data / sub / "spk2utt"))
            assert set(cmvn) == spks
            for stats in cmvn.values():
                assert stats.shape == (2, dim + 1) and stats[0, -1] > 0
    # train and dev/eval speakers are disjoint (adaptation needs unseen speakers).
    train_spk = set(read_table(data / "train" / "spk2utt"))
    assert not train_spk & set(read_table(data / "dev" / "spk2utt"))
    assert not train_spk & set(read_table(data / "eval" / "spk2utt"))

    # lang and lang_test: L.fst / G.fst load with kaldifst; every train word is in words.txt.
    words = {line.split()[0] for line in (data / "lang" / "words.txt").read_text().splitlines()}
    for line in (data / "train" / "text").read_text().splitlines():
        assert set(line.split()[1:]) <= words, line
    assert kaldifst.StdVectorFst.read(str(data / "lang" / "L.fst")).num_states > 1
    assert kaldifst.StdVectorFst.read(str(data / "lang_test" / "G.fst")).num_states > 1
    ppl_report = (data / "local" / "lm" / "perplexity.txt").read_text()
    assert re.search(r"OOV=[0-9.]+ .* ppl=[0-9.]+", ppl_report), ppl_report

    # GMM systems: Kaldi-format models and alignments, lattices, sclite WERs in RESULTS.md.
    exp = recipe / "exp"
    for sys in ("mono", "tri1"):
        # (Kaldi's mkgraph writes a ConstFst, ours a VectorFst: load_graph reads both)
        assert load_graph(exp / sys / "graph" / "HCLG.fst").num_states > 1
        for split in ("dev", "eval"):
            decode = exp / sys / f"decode_{split}"
            assert sorted(decode.glob("lat.*.gz")), decode
            best = (decode / "scoring_kaldi" / "best_wer").read_text()
            assert re.match(r"%WER [0-9.]+ \[ \d+ / \d+, \d+ ins, \d+ del, \d+ sub \]", best)
            # the recipe's lattice beam (6) comes first, the run's --decode-opts (4) win
            command = (decode / "log" / "decode.1.log").read_text().splitlines()[0]
            assert "--beam=8 --lattice-beam=4 " in command, command
    ali_utts = read_alignments(exp / "tri1_ali" / "ali.1.gz")
    assert ali_utts and all(v.ndim == 1 and v.min() > 0 for v in ali_utts.values())
    results = (recipe / "RESULTS.md").read_text()
    rows = [
        ln for ln in results.splitlines() if ln.startswith("| mono ") or ln.startswith("| tri1 ")
    ]
    assert len(rows) == 2, results
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert int(cells[1]) > 0 and int(cells[2]) > 0
        # "<WER> (<LMWT>_<WIP>)": the WER scored at that setting (above 100 is possible: the
        # tiny corpus's GMMs are near chance and insertions count), eval at dev's setting.
        dev_setting = cells[3].split()[1]
        for split, cell in (("dev", cells[3]), ("eval", cells[4])):
            wer, setting = cell.split()
            assert setting == dev_setting and re.fullmatch(r"\(\d+_[0-9.]+\)", setting), row
            scored = (exp / cells[0] / f"decode_{split}" / f"wer_{setting[1:-1]}").read_text()
            match = re.search(r"%WER ([0-9.]+) ", scored)
            assert match and abs(float(match.group(1)) - float(wer)) < 0.051, (row, scored)


def check_network_stages(recipe: Path) -> None:
    """What stages 8-11 leave: trained networks, validated decodes, the network WER table."""
    import torch

    exp = recipe / "exp"
    teacher = torch.load(exp / "dnn" / "final.pt", map_location="cpu", weights_only=False)
    student = torch.load(exp / "hdnn_kd" / "final.pt", map_location="cpu", weights_only=False)
    assert teacher["meta"]["loss"] == "ce" and student["meta"]["loss"] == "kd"
    assert student["meta"]["teacher"].endswith("exp/dnn/final.pt")
    assert student["meta"]["params"] < teacher["meta"]["params"]
    for sys in ("dnn", "hdnn_ce", "hdnn_kd"):
        assert (exp / sys / "prior.counts").is_file()
        assert (exp / sys / "learning_curve.png").stat().st_size > 1000
        for split in ("dev", "eval"):
            decode = exp / sys / f"decode_{split}"
            assert sorted(decode.glob("lat.*.gz")), decode
            best = (decode / "scoring_kaldi" / "best_wer").read_text()
            assert re.match(r"%WER [0-9.]+ \[ \d+ / \d+, \d+ ins, \d+ del, \d+ sub \]", best)
            # the recipe's lattice beam (6) comes first, the run's --decode-opts (4) win
            command = (decode / "log" / "decode.1.log").read_text().splitlines()[0]
            assert "--beam=8 --lattice-beam=4 " in command, command
    results = (recipe / "RESULTS.md").read_text()
    for sys in ("dnn", "hdnn_ce", "hdnn_kd"):
        rows = [ln for ln in results.splitlines() if ln.startswith(f"| {sys} ")]
        assert len(rows) == 1, results
        assert re.search(r"\| \d+\.\d+ \(\d+_[0-9.]+\) \|", rows[0]), rows[0]
    assert "KD gain" in results, results
    if (recipe / "data/untrans").is_dir():  # KD from untranscribed audio (stage 10)
        assert not (recipe / "data/untrans/text").exists()
        rows = [ln for ln in results.splitlines() if ln.startswith("| hdnn_kd_untrans ")]
        assert len(rows) == 1 and re.search(r"\+ \d+ utts without alignment", rows[0]), results
        meta = torch.load(exp / "hdnn_kd_untrans/final.pt", weights_only=False)["meta"]
        untrans = read_table(recipe / "data/untrans/utt2spk")
        assert meta["untranscribed_utts"] == len(untrans) > 0
        cv = set((exp / "hdnn_kd_untrans/cv_utts").read_text().split())
        assert cv and not cv & set(untrans)


def check_sequence_and_adaptation_stages(
    recipe: Path, criteria: tuple[str, ...] = ("smbr", "mmi")
) -> None:
    """What stages 12-13 leave: denominator lattices, sMBR networks decoded per epoch, adapted
    speaker files, and their tables in RESULTS.md."""
    import json
    import math

    import torch

    from pykd.kaldi.lattice_io import read_lattices

    exp = recipe / "exp"
    cwd = os.getcwd()
    os.chdir(recipe)  # lat.scp's archive paths are relative to the recipe dir, as in Kaldi
    try:
        lats = list(read_lattices("scp:exp/hdnn_kd_denlats/lat.scp"))
    finally:
        os.chdir(cwd)
    assert lats and all(lat.num_states > 1 for _utt, lat in lats)
    # the teacher's lattices came from stage 9's log-likelihoods (no forward pass of its own,
    # which would have left make_loglikes logs), removed once used; the student's had their own
    assert not (exp / "dnn_denlats" / "loglikes" / "log").exists()
    assert not (exp / "dnn" / "loglikes_train").exists()
    assert list((exp / "hdnn_kd_denlats" / "loglikes" / "log").glob("make_loglikes.*.log"))
    base = torch.load(exp / "hdnn_kd" / "final.pt", map_location="cpu", weights_only=False)
    seq_systems = [
        s.format(c) for c in criteria for s in ("dnn_{}", "hdnn_{}", "hdnn_{}_kd", "hdnn_{}_gates")
    ]
    for sys in seq_systems:
        ckpt = torch.load(exp / sys / "final.pt", map_location="cpu", weights_only=False)
        assert ckpt["meta"]["loss"].startswith(sys.split("_")[1]), (sys, ckpt["meta"]["loss"])
        assert ckpt["meta"]["loss"].endswith("+kd") == sys.endswith("_kd"), ckpt["meta"]["loss"]
        assert (exp / sys / "epoch1.pt").is_file() and (exp / sys / "epoch2.pt").is_file()
        assert (exp / sys / "decode_dev_ep1" / "scoring_kaldi" / "best_wer").is_file()
        assert (exp / sys / "decode_eval" / "scoring_kaldi" / "best_wer").is_file()
    for sys in (s for s in seq_systems if s.startswith("hdnn_")):
        seq = torch.load(exp / sys / "final.pt", map_location="cpu", weights_only=False)
        changed = [k for k, v in seq["model"].items() if not torch.equal(v, base["model"][k])]
        # The tiny networks are near chance: their lattices miss the reference on most frames
        # (~99% dropped), and on the few kept frames a near-chance student's denominator
        # lattice can hold one path only (every path equally accurate: no sMBR/MMI gradient).
        # The KD term always has a gradient: a student regularised by the teacher must change.
        history = json.loads((exp / sys / "summary.json").read_text())["history"]
        kept = sum(h["frames"] - h["dropped_frames"] for h in history)
        assert all(math.isfinite(h["loss_per_frame"]) for h in history), history
        if sys.endswith("_kd"):
            assert changed, f"{sys} did not change the student ({kept} frames kept)"
        if sys.endswith("_gates"):  # only the shared gates (gates.*) were updated
            assert seq["meta"]["seq"]["params"] == "gates"
            assert all(k.startswith("gates.") for k in changed), changed
    for x in ("dev", "eval"):
        for m in ("teacher", "decode"):
            base_dir = exp / "hdnn_kd"
            summary = json.loads((base_dir / f"adapt_{m}_{x}" / "summary.json").read_text())
            assert summary["num_adapted"] + summary["num_skipped"] > 0
            for decode in (f"decode_{x}_adapt_{m}", f"decode_{x}_half_adapt_{m}"):
                assert (base_dir / decode / "scoring_kaldi" / "best_wer").is_file(), decode
    results = (recipe / "RESULTS.md").read_text()
    assert all(f"| {sys} " in results for sys in seq_systems) and "per epoch" in results, results
    assert "Speaker adaptation" in results and "| teacher |" in results, results


def check_deploy_stage(recipe: Path) -> None:
    """What stage 14 leaves: the KD student exported (fp32 + int8 ONNX), both decoded from their
    own log-likelihoods, and their rows in RESULTS.md."""
    import json

    export = recipe / "exp/hdnn_kd/export"
    summary = json.loads((export / "export.json").read_text())
    assert summary["max_abs_diff_fp32_vs_torch"] < 1e-3
    sizes = {k: v["bytes"] for k, v in summary["files"].items()}
    assert sizes["int8"] < 0.5 * sizes["fp32"], sizes
    for kind in ("fp32", "int8"):
        for x in ("dev", "eval"):
            best = (export / f"decode_{x}_{kind}" / "scoring_kaldi" / "best_wer").read_text()
            assert re.match(r"%WER [0-9.]+ \[ \d+ / \d+,", best), best
    results = (recipe / "RESULTS.md").read_text()
    rows = [ln for ln in results.splitlines() if ln.startswith("| hdnn_kd/export | model.")]
    assert len(rows) == 2 and "| int8 |" in rows[1], results


@pytest.mark.slow
@pytest.mark.parametrize("mic", ["ihm", "sdm1"])
@pytest.mark.parametrize("backend", ["builtin", pytest.param("kaldi", marks=pytest.mark.kaldi)])
def test_mini_ami_through_data_lang_lm_feature_stages(
    repo_root: Path, tmp_path: Path, mic: str, backend: str, request: pytest.FixtureRequest
) -> None:
    from ami_fixture import make_ami_tree

    kaldi_root = request.getfixturevalue("kaldi_root") if backend == "kaldi" else None
    ami_dir = make_ami_tree(tmp_path / "ami")
    recipe = make_recipe_dir(repo_root, tmp_path)
    run_recipe(
        recipe, "--corpus", "ami", "--ami-dir", str(ami_dir), "--mic", mic,
        "--stage", "1", "--stop-stage", "4", kaldi_root=kaldi_root,
    )  # fmt: skip
    if kaldi_root is not None:
        log = (recipe / "exp" / "make_fbank" / "train" / "make_fbank_train_fbank.1.log").read_text()
        assert "LOG (compute-fbank-feats[" in log, log[-2000:]
    data = recipe / "data" / mic
    for split in ("train", "dev", "eval"):
        segments = read_table(data / split / "segments")
        feats = kaldiio.load_scp(str(data / f"{split}_fbank" / "feats.scp"))
        assert set(feats) == set(segments)
        for utt, value in segments.items():
            _, start, end = value.split()
            frames = feats[utt].shape[0]
            # 10 ms shift, 25 ms window, snip-edges: about 100 frames per second of segment.
            assert abs(frames - 100 * (float(end) - float(start))) <= 3, utt
    assert (recipe / "data" / "lang_test" / "G.fst").is_file()


def test_path_sh_links_kaldi_utils_and_steps_when_kaldi_is_built(
    repo_root: Path, tmp_path: Path
) -> None:
    recipe = make_recipe_dir(repo_root, tmp_path)
    fake_kaldi = tmp_path / "kaldi"
    for sub in ("src/featbin", "egs/wsj/s5/utils", "egs/wsj/s5/steps"):
        (fake_kaldi / sub).mkdir(parents=True)
    tool = fake_kaldi / "src/featbin/compute-fbank-feats"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)

    def source_path_sh(kaldi_root: str | None) -> str:
        env = recipe_env(Path(kaldi_root) if kaldi_root else None)
        script = ". ./path.sh; echo $PYKD_KALDI; command -v compute-fbank-feats || true"
        return subprocess.run(
            ["bash", "-c", script], cwd=recipe, env=env, capture_output=True, text=True, check=True
        ).stdout

    out = source_path_sh(str(fake_kaldi))
    assert out.split()[0] == "1" and str(tool) in out
    assert os.readlink(recipe / "utils") == str(fake_kaldi / "egs/wsj/s5/utils")
    assert os.readlink(recipe / "steps") == str(fake_kaldi / "egs/wsj/s5/steps")
    # Without a built Kaldi: our own utils again.
    assert source_path_sh(None).split()[0] == "0"
    assert os.readlink(recipe / "utils") == "utils_kd"


def test_path_sh_repairs_flattened_kaldi_links(repo_root: Path, tmp_path: Path) -> None:
    """A Kaldi tree whose symbolic links became plain files holding the target (git with
    core.symlinks=false, link-dropping copies): the recipe gets a mirror with real links."""
    recipe = make_recipe_dir(repo_root, tmp_path)
    s5 = tmp_path / "kaldi" / "egs" / "wsj" / "s5"
    for sub in ("utils/parallel", "steps/scoring", "steps/nnet3/chain"):
        (s5 / sub).mkdir(parents=True)
    for script in ("utils/parallel/run.pl", "steps/scoring/score_kaldi_wer.sh"):
        (s5 / script).write_text("#!/bin/sh\necho ran $0\n")
        (s5 / script).chmod(0o755)
    (s5 / "steps/nnet3/chain/train.py").write_text("")
    stand_ins = {
        "utils/run.pl": "parallel/run.pl",
        "steps/score_kaldi.sh": "scoring/score_kaldi_wer.sh",
        "steps/chain": "nnet3/chain",  # a link to a folder
    }
    for name, target in stand_ins.items():
        (s5 / name).write_text(target)  # no newline, as git writes them
    featbin = tmp_path / "kaldi" / "src" / "featbin"
    featbin.mkdir(parents=True)
    (featbin / "compute-fbank-feats").write_text("#!/bin/sh\n")
    (featbin / "compute-fbank-feats").chmod(0o755)
    before = {p: p.read_bytes() for p in s5.rglob("*") if p.is_file()}

    script = ". ./path.sh && utils/run.pl && steps/score_kaldi.sh && ls steps/chain/"
    out = subprocess.run(
        ["bash", "-c", script], cwd=recipe, env=recipe_env(tmp_path / "kaldi"),
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "ran utils/run.pl" in out.stdout and "ran steps/score_kaldi.sh" in out.stdout
    assert "train.py" in out.stdout
    assert "3 plain-file stand-ins" in out.stderr
    assert {p: p.read_bytes() for p in s5.rglob("*") if p.is_file()} == before  # untouched
    # sourced again: the mirror is reused, no second repair
    again = subprocess.run(
        ["bash", "-c", ". ./path.sh"], cwd=recipe, env=recipe_env(tmp_path / "kaldi"),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "stand-ins" not in again.stderr
