"""``pykd train-nnet``: CE then KD on a tiny data dir built from Kaldi's tri1 alignments."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from pykd.data import read_counts
from pykd.frontend.model import load_acoustic_model
from pykd.nnet import train_cli

N_UTTS = 20
N_PDFS = 272  # kaldi-ref tri1


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pykd")
    sub = parser.add_subparsers(dest="command", required=True)
    train_cli.register(sub)
    return parser.parse_args(["train-nnet", *argv])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, kaldi_ref: Path) -> dict[str, Path]:
    from pykd.kaldi.model_io import read_alignments, write_alignments  # noqa: PLC0415

    root = tmp_path_factory.mktemp("train_nnet")
    tri1 = kaldi_ref / "gmm" / "tri1"
    alis = read_alignments(tri1 / "ali.1.gz")
    utts = sorted(alis)[:: max(1, len(alis) // N_UTTS)][:N_UTTS]
    data, ali_dir, gmm = root / "data", root / "ali", root / "gmm"
    for d in (data, ali_dir, gmm):
        d.mkdir()
    shutil.copy(tri1 / "final.mdl", gmm / "final.mdl")
    rng = np.random.default_rng(0)
    feats = {u: rng.standard_normal((len(alis[u]), 8)).astype(np.float32) for u in utts}
    for u in utts:  # make the features predictable from the alignment (something to learn)
        feats[u][:, 0] += (alis[u] % 7).astype(np.float32)
    kaldiio.save_ark(str(data / "feats.ark"), feats, scp=str(data / "feats.scp"))
    (data / "utt2spk").write_text(
        "".join(f"{u} {u.split('-')[0]}{i % 3}\n" for i, u in enumerate(utts))
    )
    write_alignments(ali_dir / "ali.1.gz", {u: alis[u] for u in utts})
    cfg = root / "tiny.yaml"
    cfg.write_text("model:\n  type: hdnn\n  hdnn:\n    num_layers: 2\n    hidden_dim: 16\n")
    return {"root": root, "data": data, "ali": ali_dir, "gmm": gmm, "cfg": cfg}


def _args(s: dict[str, Path], out: Path, *extra: str) -> argparse.Namespace:
    return _parse(
        [
            "--model-config",
            str(s["cfg"]),
            "--max-epochs",
            "2",
            "--batch-size",
            "128",
            "--lr",
            "0.5",
            "--device",
            "cpu",
            "--num-threads",
            "1",
            *extra,
            str(s["data"]),
            str(s["ali"]),
            str(s["gmm"]),
            str(out),
        ]
    )


@pytest.fixture(scope="module")
def teacher(setup: dict[str, Path]) -> Path:
    out = setup["root"] / "ce"
    args = _args(setup, out)
    assert args.func(args) == 0
    return out


def test_ce_training(setup: dict[str, Path], teacher: Path) -> None:
    model, meta = load_acoustic_model(teacher / "final.pt")
    assert meta["num_pdfs"] == N_PDFS and meta["loss"] == "ce"
    assert meta["input"] == {"splice": 5, "cmvn": "none"} and meta["input_dim"] == 88
    with torch.no_grad():
        assert tuple(model(torch.zeros(3, 88)).shape) == (3, N_PDFS)
    counts = read_counts(teacher / "prior.counts")
    assert counts.shape == (N_PDFS,) and counts.min() == 0.5
    # analyze-counts style over the TRAIN split only: frames + 0.5 per pdf
    from pykd.data import split_cv  # noqa: PLC0415
    from pykd.io.datadir import read_table  # noqa: PLC0415
    from pykd.kaldi.model_io import read_alignments  # noqa: PLC0415

    alis = read_alignments(setup["ali"] / "ali.1.gz")
    train_utts, cv_utts = split_cv(read_table(setup["data"] / "utt2spk"), 0.1)
    assert len(train_utts) == meta["train_utts"] and len(cv_utts) == meta["cv_utts"] > 0
    assert counts.sum() == pytest.approx(sum(len(alis[u]) for u in train_utts) + 0.5 * N_PDFS)
    summary = torch.load(teacher / "final.pt", weights_only=False)["summary"]
    hist = summary["history"]
    assert len(hist) == 3 and hist[-1]["cv_loss"] < hist[0]["cv_loss"]
    assert meta["params"] > 0 and meta["mflops_per_frame"] > 0


def test_schedule_overrides(setup: dict[str, Path], tmp_path: Path) -> None:
    """--min-epochs / --max-epochs / --keep-lr-epochs override the YAML's newbob section and
    leave its other keys."""
    cfg = tmp_path / "train.yaml"
    cfg.write_text("train:\n  newbob:\n    end_halving_impr: 0.02\n    max_epochs: 9\n")
    args = _args(setup, tmp_path / "out", "--train-config", str(cfg), "--min-epochs", "4",
                 "--keep-lr-epochs", "3")  # fmt: skip
    config, _ = train_cli._train_config(args)
    newbob = config.newbob
    assert (newbob.min_epochs, newbob.max_epochs, newbob.keep_lr_epochs) == (4, 2, 3)
    assert newbob.end_halving_impr == 0.02


def test_kd_training(setup: dict[str, Path], teacher: Path) -> None:
    out = setup["root"] / "kd"
    args = _args(setup, out, "--teacher", str(teacher / "final.pt"), "--kd-p", "0.7")
    assert args.func(args) == 0
    model, meta = load_acoustic_model(out / "final.pt")
    assert meta["loss"] == "kd" and meta["kd_p"] == 0.7
    assert meta["teacher"] == str(teacher / "final.pt")
    summary = torch.load(out / "final.pt", weights_only=False)["summary"]
    # KD loss includes the soft term (entropy of the teacher): differs from plain CE's CV loss
    ce_hist = torch.load(teacher / "final.pt", weights_only=False)["summary"]["history"]
    assert summary["history"][0]["cv_loss"] != pytest.approx(ce_hist[0]["cv_loss"])
    assert summary["history"][-1]["cv_loss"] < summary["history"][0]["cv_loss"]


def test_cached_teacher_posteriors_train_the_same_student(
    setup: dict[str, Path], teacher: Path
) -> None:
    """KD from the teacher's cached posteriors (`pykd teacher-posts`, all pdfs kept) trains the
    same student as KD with the teacher run on every batch: the same CV losses and weights (to
    float rounding); with top-k the mass left out is reported and training runs."""
    from pykd.kaldi.posterior_io import PosteriorTable  # noqa: PLC0415
    from pykd.nnet.teacher_posts import write_teacher_posts  # noqa: PLC0415

    posts = setup["root"] / "posts_all"
    info = write_teacher_posts(teacher / "final.pt", setup["data"], posts, top_k=N_PDFS + 5)
    assert info["top_k"] == N_PDFS and info["kept_mass"] == pytest.approx(1.0, abs=1e-5)
    assert len(PosteriorTable(posts / "post.scp")) == info["utterances"] == N_UTTS
    runs = {}
    for name, extra in (
        ("online", ["--teacher", str(teacher / "final.pt")]),
        ("cached", ["--teacher-posts", str(posts)]),
    ):
        out = setup["root"] / f"kd_{name}"
        args = _args(setup, out, *extra, "--kd-p", "0.7", "--kd-temperature", "2")
        assert args.func(args) == 0
        runs[name] = torch.load(out / "final.pt", weights_only=False)
    hist = [[h["cv_loss"] for h in runs[n]["summary"]["history"]] for n in ("online", "cached")]
    assert hist[0] == pytest.approx(hist[1], rel=1e-4)
    for key, tensor in runs["online"]["model"].items():
        torch.testing.assert_close(runs["cached"]["model"][key], tensor, rtol=1e-3, atol=1e-4)
    assert runs["cached"]["meta"]["teacher"] == str(teacher / "final.pt")
    assert runs["cached"]["meta"]["teacher_top_k"] == N_PDFS

    top3 = write_teacher_posts(teacher / "final.pt", setup["data"], setup["root"] / "posts3", 3)
    assert top3["top_k"] == 3 and 0.0 < top3["kept_mass"] < 1.0
    assert top3["bytes_per_frame"] == pytest.approx(5 + 10 * 3, abs=1.0)
    out = setup["root"] / "kd_top3"
    args = _args(setup, out, "--teacher-posts", str(setup["root"] / "posts3"), "--kd-p", "1")
    assert args.func(args) == 0


def _dense_posts(posts_dir: Path) -> dict[str, np.ndarray]:
    """utt -> frames x pdfs posteriors of a teacher-posts dir (pdfs not kept: 0)."""
    from pykd.kaldi.posterior_io import PosteriorTable  # noqa: PLC0415

    table = PosteriorTable(posts_dir / "post.scp")
    dense = {}
    for utt in table.index:
        ids, probs = table[utt]
        rows = np.zeros((ids.shape[0], N_PDFS))
        np.put_along_axis(rows, ids.astype(np.int64), probs, axis=1)
        dense[utt] = rows
    return dense


def test_ensemble_teacher_posteriors(setup: dict[str, Path], teacher: Path, tmp_path: Path) -> None:
    """Two teachers' cached posteriors are the mean of each one's (all pdfs kept); a teacher
    with other pdfs is refused by name; make_teacher_posts.sh --ensemble-with recomputes when
    the ensemble changes and not when it does not."""
    from pykd.models import build_model, model_config_from_dict  # noqa: PLC0415
    from pykd.nnet.teacher_posts import write_teacher_posts  # noqa: PLC0415

    one = teacher / "final.pt"
    ckpt = torch.load(one, weights_only=False)
    gen = torch.Generator().manual_seed(0)
    ckpt["model"] = {
        k: v + 0.3 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
        for k, v in ckpt["model"].items()
    }
    two = tmp_path / "two.pt"
    torch.save(ckpt, two)
    posts = {}
    for name, teachers in (("one", [one]), ("two", [two]), ("both", [one, two])):
        info = write_teacher_posts(teachers, setup["data"], tmp_path / name, top_k=N_PDFS)
        posts[name] = _dense_posts(tmp_path / name)
    assert [t["teacher"] for t in info["ensemble_with"]] == [str(two)]
    assert info["kept_mass"] == pytest.approx(1.0, abs=1e-5)
    for utt, both in posts["both"].items():
        np.testing.assert_allclose(both, (posts["one"][utt] + posts["two"][utt]) / 2, atol=1e-6)
        assert not np.allclose(both, posts["one"][utt], atol=1e-3)

    _, meta = load_acoustic_model(one)
    bad = build_model(model_config_from_dict(meta["model_config"]), 88, 300)
    torch.save({"model": bad.state_dict(), "meta": {**meta, "num_pdfs": 300}}, tmp_path / "t.pt")
    with pytest.raises(ValueError, match=f"teacher {tmp_path / 't.pt'}: its pdfs \\(300\\)"):
        write_teacher_posts([one, tmp_path / "t.pt"], setup["data"], tmp_path / "bad")

    repo = Path(__file__).resolve().parents[1]

    def script(*extra: str) -> str:
        proc = subprocess.run(
            ["steps_kd/make_teacher_posts.sh", "--top-k", "5", *extra, str(one),
             str(setup["data"]), str(tmp_path / "sh")],
            cwd=repo, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    assert "up to date" not in script("--ensemble-with", str(two))
    assert "up to date" in script("--ensemble-with", str(two))
    assert "up to date" not in script()  # the ensemble is gone: recomputed
    assert "up to date" in script()
    assert "ensemble_with" not in (tmp_path / "sh" / "info.json").read_text()


def test_teacher_pdf_mismatch(setup: dict[str, Path], teacher: Path, tmp_path: Path) -> None:
    from pykd.models import build_model, model_config_from_dict  # noqa: PLC0415

    _, meta = load_acoustic_model(teacher / "final.pt")
    bad = build_model(model_config_from_dict(meta["model_config"]), 88, 300)
    torch.save({"model": bad.state_dict(), "meta": {**meta, "num_pdfs": 300}}, tmp_path / "t.pt")
    args = _args(setup, tmp_path / "out", "--teacher", str(tmp_path / "t.pt"))
    with pytest.raises(train_cli.TrainNnetError, match=f"300 outputs.*{N_PDFS} pdfs"):
        train_cli.train_nnet(train_cli.NnetJob.from_args(args))
    assert not (tmp_path / "out" / "final.pt").exists()


def test_alignment_outside_model(setup: dict[str, Path], tmp_path: Path) -> None:
    """An alignment with a transition id the model lacks: error before training."""
    from pykd.kaldi.model_io import read_alignments, write_alignments  # noqa: PLC0415

    alis = read_alignments(setup["ali"] / "ali.1.gz")
    first = next(iter(alis))
    alis[first] = alis[first].copy()
    alis[first][3] = 100_000
    ali_dir = tmp_path / "ali"
    ali_dir.mkdir()
    write_alignments(ali_dir / "ali.1.gz", alis)
    args = _args(setup, tmp_path / "out")
    args.ali_dir = str(ali_dir)
    with pytest.raises(ValueError, match="transition-id out of range"):
        train_cli.train_nnet(train_cli.NnetJob.from_args(args))
    assert not (tmp_path / "out" / "final.pt").exists()


def test_train_nnet_sh(setup: dict[str, Path], teacher: Path, tmp_path: Path) -> None:
    """The Kaldi-style wrapper: KD run through run.pl, log + decode-ready nnet dir."""
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "kd"
    env = {**os.environ, "PATH": f"{repo / 'utils'}:{os.environ['PATH']}"}
    cmd = [
        "steps_kd/train_nnet.sh", "--model-config", str(setup["cfg"]), "--teacher",
        str(teacher / "final.pt"), "--kd-p", "1.0", "--max-epochs", "1", "--device", "cpu",
        "--num-threads", "1", "--batch-size", "256",
        str(setup["data"]), str(setup["ali"]), str(setup["gmm"]), str(out),
    ]  # fmt: skip
    res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    log_text = (out / "log" / "train.log").read_text()
    assert "parameters" in log_text and "MFLOPs/frame" in log_text and "KD from" in log_text
    for name in ("final.pt", "prior.counts", "final.mdl"):
        assert (out / name).is_file()
    _, meta = load_acoustic_model(out / "final.pt")
    assert meta["loss"] == "kd" and meta["kd_p"] == 1.0
    bad = subprocess.run(
        ["steps_kd/train_nnet.sh", str(setup["data"]), str(setup["ali"])],
        cwd=repo, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert bad.returncode != 0 and "Usage" in bad.stderr


def test_train_nnet_sh_two_processes(setup: dict[str, Path], teacher: Path, tmp_path: Path) -> None:
    """--num-procs 2: one DDP job under torchrun (gloo on CPU), one set of files, one log."""
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "ddp"
    env = {**os.environ, "PATH": f"{repo / 'utils'}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    cmd = [
        "steps_kd/train_nnet.sh", "--num-procs", "2", "--model-config", str(setup["cfg"]),
        "--max-epochs", "2", "--batch-size", "128", "--lr", "0.5", "--device", "cpu",
        "--num-threads", "1", str(setup["data"]), str(setup["ali"]), str(setup["gmm"]), str(out),
    ]  # fmt: skip
    res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    log_text = (out / "log" / "train.log").read_text()
    assert "torchrun" in log_text and log_text.count("train-nnet: finished") == 1, log_text
    summary = torch.load(out / "final.pt", weights_only=False)["summary"]
    single = torch.load(teacher / "final.pt", weights_only=False)["summary"]
    assert summary["world_size"] == 2 and single["world_size"] == 1
    # the ranks share the data out and sum their counts: the job sees the whole CV set; the
    # ranks' training frames differ by at most one utterance (they stop together, when the first
    # runs out of batches), so the job drops at most that and a part-filled batch per rank
    from pykd.kaldi.model_io import read_alignments  # noqa: PLC0415

    longest = max(len(a) for a in read_alignments(setup["ali"] / "ali.1.gz").values())
    for job, one in zip(summary["history"][1:], single["history"][1:], strict=True):
        assert job["cv_frames"] == one["cv_frames"]
        assert 0 <= one["train_frames"] - job["train_frames"] <= longest + 2 * 128
    assert summary["history"][-1]["cv_loss"] < summary["history"][0]["cv_loss"]
    assert (out / "prior.counts").read_bytes() == (teacher / "prior.counts").read_bytes()
    assert not list(out.glob("*.tmp*")) and (out / "checkpoints" / "last.pt").is_file()
    bad = subprocess.run(
        [*cmd[:1], "--num-procs", "0", *cmd[3:]], cwd=repo, env=env, capture_output=True,
        text=True, timeout=30,
    )  # fmt: skip
    assert bad.returncode != 0 and "--num-procs must be an integer > 0" in bad.stderr


def test_resume_other_network(setup: dict[str, Path], teacher: Path, tmp_path: Path) -> None:
    """--resume into a dir trained with another architecture: clear error, nothing trained."""
    out = tmp_path / "ce"
    shutil.copytree(teacher, out)
    other = tmp_path / "other.yaml"
    other.write_text("model:\n  type: dnn\n  dnn:\n    num_layers: 1\n    hidden_dim: 8\n")
    args = _args(setup, out, "--resume")
    args.model_config = str(other)
    with pytest.raises(train_cli.TrainNnetError, match="--resume"):
        train_cli.train_nnet(train_cli.NnetJob.from_args(args))


def test_same_seed_gives_the_same_network(
    setup: dict[str, Path], teacher: Path, tmp_path: Path
) -> None:
    """--seed fixes everything on CPU (same inputs, same threads): initial weights (the same
    initial CV loss), batches, and so every weight of final.pt; another seed gives another net."""
    again = tmp_path / "again"
    other = tmp_path / "other"
    for out, seed in ((again, "0"), (other, "7")):
        args = _args(setup, out, "--seed", seed)
        assert args.func(args) == 0
    ref = torch.load(teacher / "final.pt", weights_only=False)
    rerun = torch.load(again / "final.pt", weights_only=False)
    assert ref["meta"]["seed"] == rerun["meta"]["seed"] == 0
    assert ref["summary"]["history"][0]["cv_loss"] == rerun["summary"]["history"][0]["cv_loss"]
    for name, tensor in ref["model"].items():
        assert torch.equal(tensor, rerun["model"][name]), name
    different = torch.load(other / "final.pt", weights_only=False)
    assert different["summary"]["history"][0]["cv_loss"] != ref["summary"]["history"][0]["cv_loss"]
