"""AMI-scale data paths: the training set held on the device (``--data-on-device``), resuming an
epoch in its middle without re-making the batches before it, time-based checkpoints, and the
AMI-shaped data generator (``bench/make_ami_like.py``), its files read by pykd and by Kaldi."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from kaldi_tools import kaldi_env

from pykd.data import FrameShuffleDataset, UtteranceSource, load_pdf_alignments
from pykd.data.device import DataDoesNotFit, DeviceFrameDataset
from pykd.frontend.spec import InputSpec
from pykd.kaldi.model_io import alignment_files
from pykd.kaldi.posterior_io import PosteriorTable

REPO = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("make_ami_like", REPO / "bench/make_ami_like.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ami_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.03 h of AMI-shaped data, 120 pdfs, a small teacher (the student config)."""
    out = tmp_path_factory.mktemp("ami_like")
    info = _generator().generate(
        out,
        0.03,
        num_pdfs=120,
        speakers=12,
        top_k=5,
        num_jobs=2,
        seed=3,
        teacher_config=str(REPO / "conf/student_hdnn.yaml"),
        log_every=0,
    )
    assert info["frames"] >= 0.03 * 360_000 and info["num_pdfs"] == 120
    return out


def _source(root: Path, posts: bool = False) -> UtteranceSource:
    targets = load_pdf_alignments(
        alignment_files(root / "exp/tri1_ali"), root / "exp/tri1/final.mdl"
    )
    table = PosteriorTable(root / "exp/teacher/posts_train/post.scp") if posts else None
    return UtteranceSource.of_data_dir(
        root / "data/train", targets, InputSpec(cmvn="mean"), teacher_posts=table
    )


def _batches(ds, start: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return [tuple(t.clone() for t in b) for b in ds.iter_from(start)]


@pytest.mark.parametrize("posts", [False, True])
def test_device_batches_equal_the_streaming_batches(ami_like: Path, posts: bool) -> None:
    source = _source(ami_like, posts)
    utts = source.utterances
    opts = dict(batch_size=96, buffer_frames=2000, seed=7)
    stream = FrameShuffleDataset(source, utts, **opts)
    device = DeviceFrameDataset(source, utts, torch.device("cpu"), dtype="float32", **opts).load()
    for epoch in (1, 2):
        stream.set_epoch(epoch)
        device.set_epoch(epoch)
        a, b = _batches(stream), _batches(device)
        assert len(a) == len(b) == len(device) > 10
        for sa, sb in zip(a, b, strict=True):
            assert len(sa) == len(sb) == (4 if posts else 2)
            for ta, tb in zip(sa, sb, strict=True):
                assert ta.dtype == tb.dtype and torch.equal(ta, tb)
    # float16 storage: the same rows, features rounded to half precision
    half = DeviceFrameDataset(source, utts, torch.device("cpu"), dtype="float16", **opts).load()
    half.set_epoch(2)
    for sa, sb in zip(a, _batches(half), strict=True):
        assert torch.equal(sa[1], sb[1])
        torch.testing.assert_close(sb[0], sa[0], rtol=2e-3, atol=2e-3)
        assert not torch.equal(sb[0], sa[0]) or sa[0].abs().max() == 0


@pytest.mark.parametrize("start", [0, 1, 7, 23])
def test_iter_from_skips_exactly_the_first_batches(ami_like: Path, start: int) -> None:
    source = _source(ami_like, posts=True)
    opts = dict(batch_size=64, buffer_frames=1500, seed=1)
    for ds in (
        FrameShuffleDataset(source, source.utterances, **opts),
        DeviceFrameDataset(
            source, source.utterances, torch.device("cpu"), dtype="float32", **opts
        ).load(),
    ):
        ds.set_epoch(3)
        full, tail = _batches(ds), _batches(ds, start)
        assert len(tail) == len(full) - start
        for sa, sb in zip(full[start:], tail, strict=True):
            assert all(torch.equal(ta, tb) for ta, tb in zip(sa, sb, strict=True))


def test_a_set_that_does_not_fit_is_refused_by_name(
    ami_like: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pykd.data.device as device_mod

    monkeypatch.setattr(device_mod, "device_free_bytes", lambda device: 1_000_000)
    source = _source(ami_like)
    ds = DeviceFrameDataset(source, source.utterances, torch.device("cpu"))
    with pytest.raises(DataDoesNotFit, match=r"needs \d+\.\d+ GB on cpu in float16, 0\.00 GB"):
        ds.load()


def _train(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "pykd",
        "train-nnet",
        "--model-config",
        str(REPO / "conf/student_hdnn.yaml"),
        "--max-epochs",
        "2",
        "--batch-size",
        "128",
        "--buffer-frames",
        "3000",
        "--device",
        "cpu",
        "--num-threads",
        "1",
        "--seed",
        "4",
        *extra,
        str(root / "data/train"),
        str(root / "exp/tri1_ali"),
        str(root / "exp/tri1"),
        str(out),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)


def test_train_nnet_on_device_gives_the_streaming_model(ami_like: Path, tmp_path: Path) -> None:
    posts = ("--teacher-posts", str(ami_like / "exp/teacher/posts_train"))
    _train(ami_like, tmp_path / "stream", *posts)
    run = _train(
        ami_like, tmp_path / "device", *posts, "--data-on-device", "--device-dtype", "float32"
    )
    assert "data on cpu:" in run.stderr
    a = torch.load(tmp_path / "stream/final.pt", weights_only=False)
    b = torch.load(tmp_path / "device/final.pt", weights_only=False)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["summary"]["cv_loss"] == b["summary"]["cv_loss"]
    assert a["summary"]["cv_acc"] > 0.3  # the synthetic frames are learnable (120 pdfs)


def test_train_nnet_falls_back_to_streaming_when_the_set_does_not_fit(
    ami_like: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import pykd.data.device as device_mod
    from pykd.cli import main

    monkeypatch.setattr(device_mod, "device_free_bytes", lambda device: 1000)
    argv = [
        "train-nnet",
        "--model-config",
        str(REPO / "conf/student_hdnn.yaml"),
        "--max-epochs",
        "1",
        "--device",
        "cpu",
        "--data-on-device",
        str(ami_like / "data/train"),
        str(ami_like / "exp/tri1_ali"),
        str(ami_like / "exp/tri1"),
        str(tmp_path / "out"),
    ]
    with caplog.at_level(logging.WARNING):
        assert main(argv) == 0
    assert "streaming the data from the CPU instead" in caplog.text
    assert (tmp_path / "out/final.pt").is_file()


def test_time_based_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pykd.train.trainer import TrainConfig, Trainer

    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(6)
    ]
    clock = iter(np.arange(0.0, 1e4, 25.0))  # each perf_counter() call: 25 s later
    saves: list[tuple[int, int]] = []

    def trainer(minutes: float) -> Trainer:
        cfg = TrainConfig.from_dict(
            {
                "checkpoint_every_steps": 0,
                "plot": False,
                "checkpoint_every_minutes": minutes,
                "newbob": {"max_epochs": 1},
            }
        )
        t = Trainer(
            torch.nn.Linear(5, 3),
            None,
            torch.nn.functional.cross_entropy,
            lambda epoch: batches,
            lambda: batches[:1],
            cfg,
            tmp_path / str(minutes),
        )
        monkeypatch.setattr(
            t, "save", lambda epoch_end=False: saves.append((t.epoch, t.step_in_epoch))
        )
        return t

    import pykd.train.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod.time, "perf_counter", lambda: float(next(clock)))
    trainer(0.0).fit()
    assert saves == [(0, 0), (1, 0)]  # the fresh start and the epoch end only
    saves.clear()
    trainer(1.0).fit()
    mid = [s for s in saves if s[1] > 0]
    assert mid and len(mid) < 6, saves  # some steps, not every one


@pytest.mark.kaldi
def test_generated_files_are_read_by_kaldi(ami_like: Path, kaldi_root: Path) -> None:
    env = kaldi_env(kaldi_root)
    data, ali = ami_like / "data/train", ami_like / "exp/tri1_ali"

    def kaldi(*cmd: str) -> str:
        return subprocess.run(list(cmd), capture_output=True, text=True, env=env, check=True).stdout

    lengths = dict(
        line.split()
        for line in kaldi("feat-to-len", f"scp:{data}/feats.scp", "ark,t:-").splitlines()
    )
    targets = load_pdf_alignments(alignment_files(ali), ami_like / "exp/tri1/final.mdl")
    assert {u: int(n) for u, n in lengths.items()} == {u: len(t) for u, t in targets.items()}
    pdfs = kaldi("ali-to-pdf", str(ali / "final.mdl"), f"ark:gunzip -c {ali}/ali.1.gz|", "ark,t:-")
    for line in pdfs.splitlines():
        utt, *ids = line.split()
        np.testing.assert_array_equal(np.array(ids, dtype=int), targets[utt])
    assert "number of pdfs 120" in kaldi("gmm-info", str(ami_like / "exp/tri1/final.mdl"))
    post = ami_like / "exp/teacher/posts_train/post.scp"
    out = subprocess.run(
        ["copy-post", f"scp:{post}", "ark:/dev/null"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert f"Done copying {len(lengths)} posteriors" in out.stderr
    kaldi(
        "apply-cmvn",
        f"--utt2spk=ark:{data}/utt2spk",
        f"scp:{data}/cmvn.scp",
        f"scp:{data}/feats.scp",
        "ark:/dev/null",
    )


def test_untranscribed_utterances_train_from_the_teacher_alone(
    ami_like: Path, tmp_path: Path
) -> None:
    """Utterances with cached teacher posteriors but no alignment: their frames come with the
    ignore label (so only the soft term sees them), on both data paths, and train-nnet uses them
    for training only (not CV, not the priors)."""
    from pykd.kaldi.model_io import read_alignments, write_alignments
    from pykd.train.losses import IGNORE_INDEX, cached_kd_loss

    source = _source(ami_like, posts=True)
    dropped = set(source.utterances[::3])
    assert source.targets is not None
    source.targets = {u: a for u, a in source.targets.items() if u not in dropped}
    assert all(source.is_untranscribed(u) for u in dropped)
    opts = dict(batch_size=80, buffer_frames=1000, seed=2)
    stream = FrameShuffleDataset(source, source.utterances, **opts)
    held = DeviceFrameDataset(
        source, source.utterances, torch.device("cpu"), dtype="float32", **opts
    ).load()
    a, b = _batches(stream), _batches(held)
    for sa, sb in zip(a, b, strict=True):
        assert all(torch.equal(ta, tb) for ta, tb in zip(sa, sb, strict=True))
    labels = torch.cat([batch[1] for batch in a])
    expected = sum(source.max_frames(u) for u in dropped)
    assert abs(int((labels == IGNORE_INDEX).sum()) - expected) <= 2 * len(dropped)
    assert stream.last_stats is not None and stream.last_stats.untranscribed == len(dropped)
    # a batch of untranscribed frames only: the hard term drops out, no NaN
    x, y, ids, probs = a[0]
    loss = cached_kd_loss(
        torch.randn(len(y), 120), torch.full_like(y, IGNORE_INDEX), ids, probs, 0.5
    )
    assert torch.isfinite(loss)

    # train-nnet with an alignment dir that lacks a third of the utterances
    ali = tmp_path / "ali"
    ali.mkdir()
    for path in sorted((ami_like / "exp/tri1_ali").glob("ali.*.gz")):
        kept = {u: v for u, v in read_alignments(path).items() if u not in dropped}
        write_alignments(ali / path.name, kept)
    cmd = [
        sys.executable, "-m", "pykd", "train-nnet", "--model-config",
        str(REPO / "conf/student_hdnn.yaml"), "--max-epochs", "1", "--device", "cpu",
        "--teacher-posts", str(ami_like / "exp/teacher/posts_train"), "--kd-p", "0.5",
        str(ami_like / "data/train"), str(ali), str(ami_like / "exp/tri1"), str(tmp_path / "out"),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    assert f"{len(dropped)} untranscribed utterances" in run.stderr
    cv = set((tmp_path / "out/cv_utts").read_text().split())
    assert cv and not cv & dropped
    meta = torch.load(tmp_path / "out/final.pt", weights_only=False)["meta"]
    assert meta["train_utts"] + len(cv) == len(source.utterances)
