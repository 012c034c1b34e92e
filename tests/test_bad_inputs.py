"""Bad inputs: each case checks that the message names the file or utterance and the problem,
that the exit status is non-zero where the result would be wrong, and that no earlier output was
damaged. Inputs are copies of Kaldi's golden files (tests/data/kaldi-ref) with one fault each."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_helpers import recipe_env

from pykd.io.jobs import IncompleteJobsError
from pykd.kaldi.lattice_io import LatticeFormatError, read_lattices
from pykd.kaldi.model_io import alignment_files

STEPS_ENV = recipe_env(None)  # builtin backend: these cases test pykd's own checks


def run(repo_root: Path, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", ". ./path.sh && " + " ".join(cmd)],
        cwd=repo_root, env=STEPS_ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture
def decode_dir(kaldi_ref: Path, tmp_path: Path) -> Path:
    """A copy of Kaldi's tri1 decode of the test set (3 jobs) beside its graph and data."""
    ref = kaldi_ref / "gmm"
    (tmp_path / "exp").mkdir()
    shutil.copytree(ref / "tri1" / "graph", tmp_path / "exp" / "graph")
    shutil.copytree(ref / "data" / "test", tmp_path / "data")
    ddir = tmp_path / "exp" / "decode"
    ddir.mkdir()
    for j in (1, 2, 3):
        shutil.copy(ref / "tri1" / "decode_test" / f"lat.{j}.gz", ddir)
    (ddir / "num_jobs").write_text("3\n")
    return ddir


def score(repo_root: Path, ddir: Path) -> subprocess.CompletedProcess:
    graph, data = ddir.parent / "graph", ddir.parent.parent / "data"
    return run(repo_root, "steps_kd/score.sh", str(data), str(graph), str(ddir))


def test_scoring_a_complete_decode_works(repo_root: Path, decode_dir: Path) -> None:
    proc = score(repo_root, decode_dir)
    assert proc.returncode == 0, proc.stderr
    assert (decode_dir / "scoring_kaldi" / "best_wer").read_text().startswith("%WER 0.00")


def test_scoring_refuses_a_decode_with_a_missing_job(repo_root: Path, decode_dir: Path) -> None:
    """A killed decode leaves fewer lat.N.gz than num_jobs: no WER over part of the test set."""
    assert score(repo_root, decode_dir).returncode == 0
    best = (decode_dir / "scoring_kaldi" / "best_wer").read_bytes()
    (decode_dir / "lat.3.gz").unlink()
    proc = score(repo_root, decode_dir)
    assert proc.returncode != 0
    assert f"{decode_dir}/lat.3.gz missing (num_jobs 3)" in proc.stderr, proc.stderr
    assert (decode_dir / "scoring_kaldi" / "best_wer").read_bytes() == best  # earlier result kept


def test_scoring_refuses_a_truncated_lattice_archive(repo_root: Path, decode_dir: Path) -> None:
    truncate(decode_dir / "lat.2.gz")
    proc = score(repo_root, decode_dir)
    assert proc.returncode != 0
    assert f"{decode_dir}/lat.2.gz is truncated or corrupt" in proc.stderr, proc.stderr
    assert not list(decode_dir.glob("wer_*"))


def test_truncated_lattice_is_named_by_the_reader(decode_dir: Path) -> None:
    lat = decode_dir / "lat.1.gz"
    truncate(lat)
    with pytest.raises(LatticeFormatError, match=f"{lat}: truncated or corrupt archive"):
        list(read_lattices(f"ark:{lat}"))


def test_alignments_missing_or_truncated_job(kaldi_ref: Path, tmp_path: Path) -> None:
    ali_dir = tmp_path / "ali"
    ali_dir.mkdir()
    shutil.copy(kaldi_ref / "gmm" / "tri1" / "ali.1.gz", ali_dir / "ali.1.gz")
    shutil.copy(kaldi_ref / "gmm" / "tri1" / "ali.1.gz", ali_dir / "ali.2.gz")
    (ali_dir / "num_jobs").write_text("3\n")
    with pytest.raises(IncompleteJobsError, match=r"1 of 3 job outputs missing .*ali\.3\.gz"):
        alignment_files(ali_dir)
    (ali_dir / "num_jobs").write_text("2\n")
    assert len(alignment_files(ali_dir)) == 2
    truncate(ali_dir / "ali.2.gz")
    with pytest.raises(IncompleteJobsError, match=r"ali\.2\.gz is truncated or corrupt"):
        alignment_files(ali_dir)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--stage", "abc"], "--stage must be an integer, got 'abc'"),
        (["--stop-stage", "xyz"], "--stop-stage must be an integer, got 'xyz'"),
        (["--mic", "sdm9"], "--mic must be one of ihm, sdm1, got 'sdm9'"),
        (["--nj", "0"], "--nj must be an integer > 0, got '0'"),
        (["--kd-temperature", "-1"], "--kd-temperature must be a number > 0, got '-1'"),
        (["--nnet-lattice-beam", "0"], "--nnet-lattice-beam must be a number > 0, got '0'"),
        (["--seq-decode-epochs", "yes"], "option --seq-decode-epochs expects true or false"),
        (["--kd-speed-perturb", "0.9 1"], "--kd-speed-perturb must list speed factors"),
    ],
)
def test_run_sh_rejects_bad_option_values(repo_root: Path, args: list[str], message: str) -> None:
    """Checked where parsed: an error and a non-zero exit before anything runs (no 'done')."""
    proc = subprocess.run(
        ["./run.sh", *args], cwd=repo_root, env=STEPS_ENV, capture_output=True, text=True
    )
    assert proc.returncode != 0 and f"./run.sh: {message}" in proc.stderr, proc.stderr
    assert "done" not in proc.stdout


@pytest.mark.parametrize(
    "script,args,message",
    [
        ("decode.sh", ["--beam", "-1"], "--beam must be a number > 0, got '-1'"),
        ("decode_nnet.sh", ["--nj", "two"], "--nj must be an integer > 0, got 'two'"),
        ("score.sh", ["--min-lmwt", "x"], "--min-lmwt must be an integer > 0, got 'x'"),
        ("train_seq.sh", ["--criterion", "mpe"], "--criterion must be one of smbr, mpfe, mmi"),
        ("adapt_hdnn.sh", ["--method", "foo"], "--method must be one of teacher, decode, oracle"),
    ],
)
def test_steps_reject_bad_option_values(
    repo_root: Path, script: str, args: list[str], message: str
) -> None:
    proc = run(repo_root, f"steps_kd/{script}", *args, "a", "b", "c", "d", "e")
    assert proc.returncode != 0 and f"steps_kd/{script}: {message}" in proc.stderr, proc.stderr


# ----------------------------------------------------------------- network training inputs


@pytest.fixture
def nnet_inputs(kaldi_ref: Path, tmp_path: Path) -> dict[str, Path]:
    """A small data dir (synthetic 8-dim features, per-speaker CMVN) on 12 of Kaldi's tri1
    alignments, the tri1 model and a 2-layer HDNN config."""
    import numpy as np

    from pykd.features.cmvn import acc_cmvn_stats
    from pykd.io.compressed import kaldiio
    from pykd.kaldi.model_io import read_alignments, write_alignments

    tri1 = kaldi_ref / "gmm" / "tri1"
    alis = read_alignments(tri1 / "ali.1.gz")
    utts = sorted(alis)[:12]
    data, ali, gmm = tmp_path / "data", tmp_path / "ali", tmp_path / "gmm"
    for d in (data, ali, gmm):
        d.mkdir()
    shutil.copy(tri1 / "final.mdl", gmm / "final.mdl")
    rng = np.random.default_rng(0)
    feats = {u: rng.standard_normal((len(alis[u]), 8)).astype(np.float32) for u in utts}
    kaldiio.save_ark(str(data / "feats.ark"), feats, scp=str(data / "feats.scp"))
    utt2spk = {u: f"spk{i % 3}" for i, u in enumerate(utts)}
    (data / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in utt2spk.items()))
    stats: dict[str, np.ndarray] = {}
    for u, s in utt2spk.items():
        stats[s] = acc_cmvn_stats(feats[u], stats.get(s))
    kaldiio.save_ark(str(data / "cmvn.ark"), stats, scp=str(data / "cmvn.scp"))
    write_alignments(ali / "ali.1.gz", {u: alis[u] for u in utts})
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("model:\n  type: hdnn\n  hdnn:\n    num_layers: 2\n    hidden_dim: 16\n")
    return {"data": data, "ali": ali, "gmm": gmm, "cfg": cfg, "feats": feats, "utts": utts}


def train_nnet(inputs: dict, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "pykd", "train-nnet", "--model-config", str(inputs["cfg"]),
        "--max-epochs", "1", "--device", "cpu", "--num-threads", "1", *extra,
        str(inputs["data"]), str(inputs["ali"]), str(inputs["gmm"]), str(out),
    ]  # fmt: skip
    return subprocess.run(cmd, env=STEPS_ENV, capture_output=True, text=True, timeout=300)


def rewrite_feats(inputs: dict, utt: str, matrix) -> None:
    from pykd.io.compressed import kaldiio

    feats = dict(inputs["feats"])
    feats[utt] = matrix
    data = inputs["data"]
    kaldiio.save_ark(str(data / "feats.ark"), feats, scp=str(data / "feats.scp"))


def test_non_finite_features_name_the_utterance(nnet_inputs: dict, tmp_path: Path) -> None:
    utt = nnet_inputs["utts"][4]
    bad = nnet_inputs["feats"][utt].copy()
    bad[3, 2] = float("nan")
    rewrite_feats(nnet_inputs, utt, bad)
    proc = train_nnet(nnet_inputs, tmp_path / "out")
    assert proc.returncode != 0
    assert f"utterance {utt} of {nnet_inputs['data']}/feats.scp: 1 of" in proc.stderr, proc.stderr
    assert "NaN/inf features" in proc.stderr and "Traceback" not in proc.stderr


def test_feature_dim_against_cmvn_names_the_utterance(nnet_inputs: dict, tmp_path: Path) -> None:
    utt = nnet_inputs["utts"][0]  # the first utterance read: sets the dimension
    rewrite_feats(nnet_inputs, utt, nnet_inputs["feats"][utt][:, :6])
    proc = train_nnet(nnet_inputs, tmp_path / "out")
    assert proc.returncode != 0
    assert f"utterance {utt} of {nnet_inputs['data']}/feats.scp, CMVN of speaker" in proc.stderr
    assert "features have dim 6" in proc.stderr, proc.stderr


def test_utterances_without_alignment_are_named(nnet_inputs: dict, tmp_path: Path) -> None:
    from pykd.kaldi.model_io import read_alignments, write_alignments

    alis = read_alignments(nnet_inputs["ali"] / "ali.1.gz")
    dropped = nnet_inputs["utts"][7]
    del alis[dropped]
    write_alignments(nnet_inputs["ali"] / "ali.1.gz", alis)
    proc = train_nnet(nnet_inputs, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "1 of 12 utterances" in proc.stderr and dropped in proc.stderr, proc.stderr


def test_truncated_checkpoint_is_named(nnet_inputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert train_nnet(nnet_inputs, out).returncode == 0
    truncate(out / "final.pt")
    proc = subprocess.run(
        [sys.executable, "-m", "pykd", "make-loglikes", str(out / "final.pt"),
         str(nnet_inputs["data"]), str(tmp_path / "ll.ark"), str(tmp_path / "ll.scp")],
        env=STEPS_ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"{out}/final.pt: not a readable checkpoint, truncated or corrupt" in proc.stderr
    assert not (tmp_path / "ll.scp").exists()


def test_unwritable_output_dir_is_named(nnet_inputs: dict, tmp_path: Path) -> None:
    """The output dir is a file (as root, a read-only dir would still be writable): a one-line
    error naming the path, not a traceback, and the file is left as it was."""
    out = tmp_path / "taken"
    out.write_text("not a directory\n")
    proc = train_nnet(nnet_inputs, out)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert str(out) in proc.stderr and "ERROR" in proc.stderr, proc.stderr
    assert out.read_text() == "not a directory\n"


def test_validate_data_dir_rejects_mixed_feature_dims(
    repo_root: Path, kaldi_ref: Path, tmp_path: Path
) -> None:
    """feats.scp whose utterances differ in dimension (an MFCC matrix among fbank ones)."""
    ref = kaldi_ref / "features"
    data = tmp_path / "data"
    data.mkdir()
    fbank = dict(line.split() for line in (ref / "fbank.scp").read_text().splitlines())
    from pykd.io.compressed import kaldiio

    mats = dict(kaldiio.load_ark(str(ref / "mfcc.ark")))
    kaldiio.save_ark(str(tmp_path / "mfcc.ark"), mats, scp=str(tmp_path / "mfcc.scp"))
    mfcc = dict(line.split() for line in (tmp_path / "mfcc.scp").read_text().splitlines())
    lines = [f"{u} {ref}/{loc}" if u != "u3" else f"{u} {mfcc[u]}" for u, loc in fbank.items()]
    (data / "feats.scp").write_text("\n".join(lines) + "\n")
    (data / "utt2spk").write_text("".join(f"{u} {u}\n" for u in fbank))
    (data / "spk2utt").write_text("".join(f"{u} {u}\n" for u in fbank))
    proc = run(repo_root, "utils/validate_data_dir.sh", "--no-text", "--no-wav", str(data))
    assert proc.returncode != 0
    assert "utterance 'u3' has 13-dim features, 'u1' 40-dim" in proc.stderr, proc.stderr


# ----------------------------------------------------------------- decoder inputs


@pytest.fixture
def loglikes_dir(decode_dir: Path, kaldi_ref: Path) -> dict[str, Path]:
    """Random log-likelihoods (one row per frame, the tri1 model's pdf count) of the test set,
    beside the decode dir of ``decode_dir`` (whose lat.N.gz stand for an earlier decode)."""
    import numpy as np

    from pykd.kaldi.model_io import read_transition_model

    exp, data = decode_dir.parent, decode_dir.parent.parent / "data"
    shutil.copy(kaldi_ref / "gmm" / "tri1" / "final.mdl", exp / "final.mdl")
    spk2utt: dict[str, list[str]] = {}
    for line in (data / "utt2spk").read_text().splitlines():
        utt, spk = line.split()
        spk2utt.setdefault(spk, []).append(utt)
    (data / "spk2utt").write_text("".join(f"{s} {' '.join(u)}\n" for s, u in spk2utt.items()))
    frames = dict(line.split() for line in (data / "utt2num_frames").read_text().splitlines())
    num_pdfs = read_transition_model(exp / "final.mdl").num_pdfs
    rng = np.random.default_rng(0)
    mats = {
        u: rng.standard_normal((int(n), num_pdfs)).astype(np.float32) for u, n in frames.items()
    }
    return {"exp": exp, "data": data, "decode": decode_dir, "mats": mats}


def decode_loglikes(
    repo_root: Path, inputs: dict, mats: dict, *opts: str
) -> subprocess.CompletedProcess:
    from pykd.io.compressed import kaldiio

    scp = inputs["exp"] / "loglikes.scp"
    kaldiio.save_ark(str(inputs["exp"] / "loglikes.ark"), mats, scp=str(scp))
    return run(
        repo_root, "steps_kd/decode_loglikes.sh", "--nj", "3", *opts, "--model",
        str(inputs["exp"] / "final.mdl"), str(inputs["exp"] / "graph"), str(inputs["data"]),
        str(scp), str(inputs["decode"]),
    )  # fmt: skip


@pytest.mark.parametrize("fault", ["nan", "pdf_count"])
def test_bad_loglikes_are_named_before_decoding(
    repo_root: Path, loglikes_dir: dict, fault: str
) -> None:
    """NaN in one utterance's log-likelihoods, or a matrix with one column too many (a network
    of another tree): refused before decoding, naming the utterance; earlier lattices kept."""
    import numpy as np

    mats = dict(loglikes_dir["mats"])
    utt = sorted(mats)[2]
    num_pdfs = mats[utt].shape[1]
    if fault == "nan":
        mats[utt] = mats[utt].copy()
        mats[utt][5, 7] = np.nan
        message = f"{utt} has NaN/inf in 1 rows (first row 5)"
    else:
        mats[utt] = np.hstack([mats[utt], mats[utt][:, :1]])
        message = f"{utt} has {num_pdfs + 1} columns, model has {num_pdfs} pdfs"
    earlier = {p.name: p.read_bytes() for p in loglikes_dir["decode"].glob("lat.*.gz")}
    proc = decode_loglikes(repo_root, loglikes_dir, mats)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert "invalid log-likelihoods" in proc.stderr
    assert {p.name: p.read_bytes() for p in loglikes_dir["decode"].glob("lat.*.gz")} == earlier


def test_valid_loglikes_decode(repo_root: Path, loglikes_dir: dict) -> None:
    """The same inputs without a fault decode (the check refuses only bad matrices). Random
    scores: narrow beams keep the search short."""
    opts = ("--beam", "2", "--max-active", "200", "--lattice-beam", "1")
    proc = decode_loglikes(repo_root, loglikes_dir, loglikes_dir["mats"], *opts)
    assert proc.returncode == 0, proc.stderr
    assert (loglikes_dir["decode"] / "scoring_kaldi" / "best_wer").is_file()


# ----------------------------------------------------------------- transcripts and data dirs


def test_oov_words_and_empty_transcripts_are_named(
    kaldi_ref: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Training graphs: an OOV word is trained as the lang's OOV word and an empty transcript as
    silence (as Kaldi does), each named in a warning."""
    from pykd.gmm import em
    from pykd.kaldi import model_io

    ref = kaldi_ref / "gmm"
    tm, _ = model_io.read_model(ref / "tri1" / "final.mdl")
    compiler = em.GraphCompiler.load(
        ref / "lang_full", model_io.read_tree(ref / "tri1" / "tree"), tm
    )
    texts = {"a": "the marketing expert", "b": "", "c": "the zzqx expert"}
    with caplog.at_level("WARNING"):
        graphs, failed = compiler.compile_texts(texts)
    assert sorted(graphs) == ["a", "b", "c"] and not failed
    assert (
        "1 words of 1 utterances are not in words.txt" in caplog.text and "c: zzqx" in caplog.text
    )
    assert "1 utterances have an empty transcript and are aligned as silence: b" in caplog.text


def small_data_dir(kaldi_ref: Path, where: Path) -> Path:
    """A data dir of the four reference wavs (one speaker each)."""
    ref = kaldi_ref / "features"
    where.mkdir()
    utts = ("u1", "u2", "u3", "u4")
    (where / "wav.scp").write_text("".join(f"{u} {ref}/{u}.wav\n" for u in utts))
    (where / "utt2spk").write_text("".join(f"{u} {u}\n" for u in utts))
    (where / "spk2utt").write_text("".join(f"{u} {u}\n" for u in utts))
    (where / "text").write_text("".join(f"{u} hello\n" for u in utts))
    return where


def test_unsorted_keys_are_refused(repo_root: Path, kaldi_ref: Path, tmp_path: Path) -> None:
    """An utt2spk out of C order: validate_data_dir.sh and split_data.sh name file, line and key
    (Kaldi's tools read the tables in step: unsorted keys would pair the wrong lines)."""
    data = small_data_dir(kaldi_ref, tmp_path / "data")
    lines = (data / "utt2spk").read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    (data / "utt2spk").write_text("\n".join(lines) + "\n")
    for cmd in (["utils/validate_data_dir.sh", "--no-feats"], ["utils/split_data.sh"]):
        args = [*cmd, str(data)] + (["2"] if "split" in cmd[0] else [])
        proc = run(repo_root, *args)
        assert proc.returncode != 0, args
        assert f"{data}/utt2spk:3: not sorted in C order: key 'u2' comes after 'u3'" in proc.stderr
    assert not (data / "split2").exists()


def test_corrupt_wav_is_named_and_skipped(kaldi_ref: Path, tmp_path: Path) -> None:
    """A recording that is not a WAV file: skipped with a warning naming utterance and file (as
    Kaldi's compute-fbank-feats); the others get features. Every recording bad: an error."""
    data = small_data_dir(kaldi_ref, tmp_path / "data")
    bad = tmp_path / "u2.wav"
    bad.write_bytes(b"RIFF" + bytes(range(200)))
    wav = (data / "wav.scp").read_text().replace(str(kaldi_ref / "features" / "u2.wav"), str(bad))
    (data / "wav.scp").write_text(wav)
    cmd = [sys.executable, "-m", "pykd", "compute-feats", "--kind", "fbank"]
    out = [str(tmp_path / "f.ark"), str(tmp_path / "f.scp")]
    proc = subprocess.run([*cmd, str(data), *out], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"skipping utterance 'u2': '{bad}' is not a readable WAV file" in proc.stderr
    assert [ln.split()[0] for ln in (tmp_path / "f.scp").read_text().splitlines()] == [
        "u1", "u3", "u4"
    ]  # fmt: skip
    (data / "wav.scp").write_text(f"u2 {bad}\n")
    proc = subprocess.run([*cmd, str(data), *out], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert len((tmp_path / "f.scp").read_text().splitlines()) == 3  # the earlier output is kept


@pytest.mark.parametrize("damage", ["overwritten", "truncated"])
def test_corrupt_feature_archive_is_named(kaldi_ref: Path, tmp_path: Path, damage: str) -> None:
    """A feature archive overwritten in the middle or cut short: the reader names the scp, the
    utterance and the location (kaldiio alone gives a bare decode or reshape error)."""
    ref = kaldi_ref / "features"
    scp_lines = (ref / "fbank.scp").read_text().splitlines()
    ark = tmp_path / "fbank.ark"
    data = bytearray((ref / "fbank.ark").read_bytes())
    utt, loc = scp_lines[2].split()
    offset = int(loc.rsplit(":", 1)[1])
    if damage == "overwritten":
        data[offset : offset + 12] = b"XXXXXXXXXXXX"
    else:
        data = data[: offset + 100]
    ark.write_bytes(bytes(data))
    scp = tmp_path / "fbank.scp"
    scp.write_text("".join(f"{u} {ark}:{loc.rsplit(':', 1)[1]}\n" for u, loc in
                           (ln.split() for ln in scp_lines)))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "pykd", "feat-to-len", f"scp:{scp}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"{scp}: utterance '{utt}': cannot read {ark}:{offset}" in proc.stderr, proc.stderr


def test_full_disk_names_the_file_and_keeps_the_earlier_output(
    kaldi_ref: Path, tmp_path: Path
) -> None:
    """Writing features into a file system with no room left (a file-size limit: EFBIG, as a
    full disk gives ENOSPC): one line naming the file; the earlier ark/scp are untouched."""
    data = small_data_dir(kaldi_ref, tmp_path / "data")
    ark, scp = tmp_path / "f.ark", tmp_path / "f.scp"
    ark.write_bytes(b"earlier ark")
    scp.write_text("earlier scp\n")
    proc = subprocess.run(
        ["bash", "-c", f"ulimit -f 16 && exec {sys.executable} -m pykd compute-feats "
         f"--kind fbank {data} {ark} {scp}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"cannot write {ark}: File too large" in proc.stderr, proc.stderr
    assert ark.read_bytes() == b"earlier ark" and scp.read_text() == "earlier scp\n"
    assert not list(tmp_path.glob(".f.*.tmp"))


# ----------------------------------------------------------------- kill -9 and resume


def test_kill_9_during_training_then_resume_gives_the_same_network(
    nnet_inputs: dict, tmp_path: Path
) -> None:
    """kill -9 right after a mid-epoch checkpoint, resume: final.pt equals an uninterrupted run's
    (same seed, CPU, one thread), tensor for tensor."""
    import signal
    import time

    import torch

    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        "train:\n  optimizer: adam\n  lr: 0.001\n  batch_size: 64\n  checkpoint_every_steps: 3\n"
        "  newbob:\n    max_epochs: 3\n    min_epochs: 3\n"
    )
    extra = ("--train-config", str(cfg), "--seed", "3")
    whole = tmp_path / "whole"
    assert train_nnet(nnet_inputs, whole, *extra).returncode == 0
    killed = tmp_path / "killed"
    cmd = [
        sys.executable, "-m", "pykd", "train-nnet", "--model-config", str(nnet_inputs["cfg"]),
        "--device", "cpu", "--num-threads", "1", *extra, str(nnet_inputs["data"]),
        str(nnet_inputs["ali"]), str(nnet_inputs["gmm"]), str(killed),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=STEPS_ENV, stderr=subprocess.PIPE, text=True)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.exists() and not (killed / "final.pt").exists(), "not killed mid-training"
    resumed = train_nnet(nnet_inputs, killed, *extra, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    ref = torch.load(whole / "final.pt", weights_only=False)["model"]
    got = torch.load(killed / "final.pt", weights_only=False)["model"]
    assert ref.keys() == got.keys()
    for name in ref:
        assert torch.equal(ref[name], got[name]), name
