"""Trainer: newbob, checkpoints/resume (bitwise), NaN stop, learning curve, 2-process DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from pykd.train.checkpoint import load_checkpoint
from pykd.train.losses import ce_loss
from pykd.train.schedule import NewbobConfig, NewbobScheduler
from pykd.train.trainer import TrainConfig, Trainer, TrainingDiverged

DIM, CLASSES, BATCH = 16, 4, 50
TORCHRUN = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs: one mean per class, unit noise (separable but not trivially)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(CLASSES, DIM, generator=torch.Generator().manual_seed(123)) * 1.2
    y = torch.randint(0, CLASSES, (n,), generator=g)
    x = means[y] + torch.randn(n, DIM, generator=g)
    return x, y


TRAIN = make_data(600, 1)
CV = make_data(200, 2)


def make_mlp(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(DIM, 32), nn.Sigmoid(), nn.Dropout(dropout), nn.Linear(32, CLASSES)
    )


def train_batches(epoch: int, data=TRAIN, rank: int = 0, world: int = 1):
    """Epoch-seeded shuffle with its own generator (so a resume can replay it)."""
    x, y = data
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(1000 + epoch))
    idx = idx[rank::world]
    return [(x[idx[i : i + BATCH]], y[idx[i : i + BATCH]]) for i in range(0, len(idx), BATCH)]


def cv_batches(rank: int = 0, world: int = 1):
    x, y = CV[0][rank::world], CV[1][rank::world]
    return [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, len(y), BATCH)]


def run(out: Path, model: nn.Module, tf=train_batches, loss=ce_loss, **cfg) -> tuple:
    cfg.setdefault("lr", 0.5)
    cfg.setdefault("device", "cpu")
    cfg.setdefault("plot", False)
    c = TrainConfig.from_dict(cfg)
    tr = Trainer(model, None, loss, tf, cv_batches, c, out)
    return tr, tr.fit()


def test_tiny_run_lowers_cv_loss_and_writes_outputs(tmp_path: Path) -> None:
    model = make_mlp()
    tr, summ = run(tmp_path, model, plot=True, newbob={"max_epochs": 4})
    hist = summ["history"]
    assert summ["status"] == "finished" and len(hist) == 5
    assert summ["cv_loss"] < 0.6 * hist[0]["cv_loss"]
    assert summ["cv_acc"] > 0.8 > hist[0]["cv_acc"]
    assert all(r["frames_per_s"] > 0 and r["train_frames"] == 600 for r in hist[1:])
    png = (tmp_path / "learning_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["cv_loss"] == summ["cv_loss"] and saved["epochs"] == 4
    # final.pt reloads into a fresh model that reproduces the reported CV loss
    fresh = make_mlp(seed=9)
    fresh.load_state_dict(load_checkpoint(tmp_path / "final.pt")["model"])
    with torch.no_grad():
        again = ce_loss(fresh(CV[0]), CV[1]).item()
    assert again == pytest.approx(summ["cv_loss"], rel=1e-5)
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {
        "last.pt",
        *(f"epoch_{e}.pt" for e in range(1, 5)),
    }
    assert not list(tmp_path.rglob("*.tmp"))


def test_newbob_rules() -> None:
    s = NewbobScheduler(1.0, NewbobConfig(max_epochs=10))
    s.set_initial(2.0)
    d = s.step(1.0)  # big gain: accept, keep lr
    assert (d.accept, d.stop, d.lr) == (True, False, 1.0)
    d = s.step(0.995)  # rel 0.005 < start_halving_impr: start halving
    assert (d.accept, d.stop, d.lr) == (True, False, 0.5)
    d = s.step(0.9)  # still halving
    assert (d.accept, d.stop, d.lr) == (True, False, 0.25)
    d = s.step(0.8999)  # rel 1e-4 < end_halving_impr while halving: stop
    assert d.stop and d.accept and "end_halving" in d.reason
    s2 = NewbobScheduler(1.0, NewbobConfig(max_epochs=10))
    s2.load_state_dict(s.state_dict())
    assert s2.state_dict() == s.state_dict()
    # a worse epoch is rejected (best kept) and starts halving; while halving, with
    # min_epochs not yet reached, a second rejection halves again instead of stopping
    s3 = NewbobScheduler(1.0, NewbobConfig(max_epochs=10, min_epochs=3))
    s3.set_initial(2.0)
    d = s3.step(2.5)
    assert (d.accept, d.stop, d.lr, s3.best_loss) == (False, False, 0.5, 2.0)
    assert d.rel_impr == pytest.approx(-0.25)
    d = s3.step(2.1)
    assert (d.accept, d.stop, d.lr) == (False, False, 0.25)
    d = s3.step(2.2)  # min_epochs done: a rejection while halving stops (as Kaldi nnet1)
    assert (d.accept, d.stop) == (False, True)
    s4 = NewbobScheduler(1.0, NewbobConfig(max_epochs=2))
    s4.set_initial(2.0)
    assert not s4.step(1.0).stop and s4.step(0.5).stop


def test_newbob_fixed_schedule() -> None:
    """The recipe's student schedule (min = max epochs, keep_lr_epochs): a rejected epoch
    within keep_lr_epochs does not start halving; after it, halving every epoch; no early stop
    however small the improvement; max_epochs stops."""
    s = NewbobScheduler(1.0, NewbobConfig(min_epochs=6, max_epochs=6, keep_lr_epochs=2))
    s.set_initial(2.0)
    lrs, stops = [], []
    for loss in (1.5, 1.6, 1.4, 1.3999, 1.3998, 1.3997):  # epoch 2 rejected, then tiny gains
        d = s.step(loss)
        lrs.append(d.lr)
        stops.append(d.stop)
    assert lrs[:3] == [1.0, 1.0, 1.0]  # the rejection at epoch 2 is inside keep_lr_epochs
    assert lrs[3:5] == [0.5, 0.25] and stops == [False] * 5 + [True]


def test_worse_epoch_is_rejected_and_weights_restored(tmp_path: Path) -> None:
    def crafted(epoch: int):
        batches = train_batches(epoch)
        if epoch == 2:  # wrong labels: CV must get worse
            return [(x, (y + 1) % CLASSES) for x, y in batches]
        return batches

    tr, summ = run(tmp_path, make_mlp(), tf=crafted, newbob={"max_epochs": 3})
    h = summ["history"]
    assert h[1]["accepted"] and not h[2]["accepted"]
    assert h[2]["cv_loss"] > h[1]["cv_loss"] and h[2]["rel_impr"] < 0
    assert (h[1]["lr"], h[2]["lr"], h[3]["lr"]) == (0.5, 0.5, 0.25)  # halving from the bad epoch
    ckdir = tmp_path / "checkpoints"
    ep1 = load_checkpoint(ckdir / "epoch_1.pt")["model"]
    ep2 = load_checkpoint(ckdir / "epoch_2.pt")["model"]
    for k, v in ep1.items():
        assert torch.equal(ep2[k], v), k  # the rejected epoch's weights were thrown away
    # epoch 3 started from epoch 1's weights: its CV loss is again near epoch 1's
    assert h[3]["cv_loss"] < h[2]["cv_loss"]


def test_kill_and_resume_is_bitwise_identical(tmp_path: Path) -> None:
    opts = dict(
        momentum=0.9, lr=0.2, checkpoint_every_steps=5, newbob={"max_epochs": 3}
    )  # 12 steps per epoch; dropout exercises the RNG state
    _, ref = run(tmp_path / "ref", make_mlp(dropout=0.2), **opts)
    ref_w = load_checkpoint(tmp_path / "ref" / "final.pt")["model"]

    out = tmp_path / "killed"
    _, s1 = run(out, make_mlp(dropout=0.2), stop_after_steps=12 * 2 + 7, **opts)
    assert s1["status"] == "interrupted" and s1["epochs"] == 2
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert (ck["epoch"], ck["step_in_epoch"], ck["global_step"]) == (2, 7, 31)
    # a different initialisation proves the weights come from the checkpoint
    tr, s2 = run(out, make_mlp(seed=5, dropout=0.2), resume=True, **opts)
    assert s2["status"] == "finished" and s2["global_step"] == ref["global_step"] == 36
    got = load_checkpoint(out / "final.pt")["model"]
    for k, v in ref_w.items():
        assert torch.equal(got[k], v), k
    for a, b in zip(ref["history"], s2["history"], strict=True):
        assert (a["train_loss"], a["cv_loss"], a["lr"]) == (b["train_loss"], b["cv_loss"], b["lr"])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    def poisoned(epoch: int):
        batches = train_batches(epoch)
        if epoch == 2:
            x, y = batches[3]
            x = x.clone()
            x[0, 0] = float("nan")
            batches[3] = (x, y)
        return batches

    with pytest.raises(TrainingDiverged, match=r"training loss is not finite .* epoch 2, step 3"):
        run(tmp_path, make_mlp(), tf=poisoned, checkpoint_every_steps=2, newbob={"max_epochs": 3})
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert (last["epoch"], last["step_in_epoch"]) == (1, 2)  # written before the bad step
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    assert not (tmp_path / "final.pt").exists()


def test_two_process_cpu_ddp(tmp_path: Path) -> None:
    # launched as users launch it: torchrun (its agent hosts the store; --standalone picks a port)
    worker = Path(__file__).with_name("ddp_trainer_worker.py")
    cmd = [TORCHRUN, "--standalone", "--nproc-per-node", "2", str(worker), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    for k, v in r0["model"].items():
        assert torch.equal(v, r1["model"][k]), k
    h0, h1 = r0["summary"]["history"], r1["summary"]["history"]
    assert [r["cv_loss"] for r in h0] == [r["cv_loss"] for r in h1]  # all-reduced metrics
    assert h0[1]["train_frames"] == 600 and h0[1]["cv_frames"] == 200
    assert h0[-1]["cv_loss"] < h0[0]["cv_loss"]
    assert (tmp_path / "final.pt").is_file() and (tmp_path / "learning_curve.png").is_file()
    final = load_checkpoint(tmp_path / "final.pt")["model"]
    assert all(torch.equal(final[k], v) for k, v in r0["model"].items())


def test_non_finite_weights_are_never_checkpointed(tmp_path: Path) -> None:
    # a huge lr makes the first update overflow the weights to inf while that step's loss is finite
    with pytest.raises(TrainingDiverged, match="parameter .* is not finite"):
        big = lambda out, y: ce_loss(out, y) * 1e6  # noqa: E731
        run(tmp_path, make_mlp(), loss=big, lr=1e37, checkpoint_every_steps=1)
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert (last["epoch"], last["global_step"]) == (0, 0)  # the initial, good state
    assert all(torch.isfinite(v).all() for v in last["model"].values())


def test_teacher_outputs_feed_a_kd_loss(tmp_path: Path) -> None:
    from pykd.train.losses import kd_loss

    _, s_t = run(tmp_path / "teacher", make_mlp(), newbob={"max_epochs": 3})
    teacher = make_mlp(seed=3)
    teacher.load_state_dict(load_checkpoint(tmp_path / "teacher" / "final.pt")["model"])
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    calls = []

    def loss(out: torch.Tensor, y: torch.Tensor, t_logits: torch.Tensor) -> torch.Tensor:
        calls.append(t_logits.requires_grad)
        return kd_loss(out, t_logits, y, p=1.0)  # soft targets only

    c = TrainConfig(lr=0.5, device="cpu", plot=False, newbob=NewbobConfig(max_epochs=2))
    tr = Trainer(
        make_mlp(seed=1), None, loss, train_batches, cv_batches, c, tmp_path / "kd", None, teacher
    )
    summ = tr.fit()
    assert calls and not any(calls)  # teacher outputs arrive, detached
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    # learning from the teacher's posteriors alone reaches a good accuracy on the true labels
    assert summ["cv_acc"] > 0.85 and summ["history"][0]["cv_acc"] < 0.5


def test_single_process_commands_refuse_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    from pykd.train.distributed import setup_torch

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="WORLD_SIZE=2: this command runs in a single process"):
        setup_torch(0, "cpu")
    assert setup_torch(0, "cpu", ddp_ok=True) == "cpu"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert setup_torch(0, "cpu") == "cpu"


def test_network_commands_flush_denormals() -> None:
    """setup_torch, the start of every network command, flushes denormal floats to zero in the
    main thread and in the intra-op threads (a fresh process: the pool is made after the flag)."""
    code = (
        "import torch\n"
        "from pykd.train.distributed import setup_torch\n"
        "setup_torch(2, 'cpu')\n"
        "tiny = torch.full((4096, 64), 1e-39)\n"
        "print(int((tiny * 1.0).count_nonzero()), int((tiny @ torch.eye(64)).count_nonzero()))\n"
    )
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX"):
        pytest.skip("flush-to-zero is an x86 mode")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1]).stdout  # fmt: skip
    assert out.split() == ["0", "0"]


def test_bfloat16_products_train_like_float32(tmp_path: Path) -> None:
    """``precision: bfloat16`` runs the products under autocast (weights stay float32): it
    learns the task as float32 does, but its weights are not float32's bit for bit; ``auto``
    picks bfloat16 only where the CPU multiplies it natively; a wrong name is refused."""
    from pykd.train.precision import autocast_dtype, native_bf16  # noqa: PLC0415

    runs = {}
    for precision in ("float32", "bfloat16"):
        _, summ = run(
            tmp_path / precision, make_mlp(), precision=precision, newbob={"max_epochs": 4}
        )
        runs[precision] = summ
        assert summ["cv_acc"] > 0.8 and summ["cv_loss"] < 0.6 * summ["history"][0]["cv_loss"]
    assert runs["bfloat16"]["matmul_dtype"] == "bfloat16"
    assert runs["float32"]["matmul_dtype"] == "float32"
    assert runs["bfloat16"]["cv_loss"] == pytest.approx(runs["float32"]["cv_loss"], rel=0.1)
    assert runs["bfloat16"]["cv_loss"] != runs["float32"]["cv_loss"]
    final = load_checkpoint(tmp_path / "bfloat16" / "final.pt")["model"]
    assert all(v.dtype == torch.float32 for v in final.values())
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if native_bf16(cpu) else None)
    assert autocast_dtype("float32", cpu) is None
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        autocast_dtype("fp8", cpu)


def test_fused_adam_steps_like_the_default_adam() -> None:
    """fused_adam: the fused kernel on CPU makes Adam's update (to rounding); the default is
    PyTorch's per-tensor loop."""
    from pykd.train.optimizers import build_optimizer

    torch.manual_seed(0)
    ref_model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))
    fused_model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))
    fused_model.load_state_dict(ref_model.state_dict())
    ref = torch.optim.Adam(ref_model.parameters(), lr=1e-2, weight_decay=1e-4, foreach=False)
    fused = build_optimizer(fused_model.parameters(), "adam", 1e-2, weight_decay=1e-4, fused=True)
    assert fused.defaults["fused"] is True
    assert not build_optimizer(ref_model.parameters(), "adam", 1e-2).defaults["fused"]
    x, y = torch.randn(64, 20), torch.randint(0, 5, (64,))
    with torch.no_grad():
        start_loss = float(ce_loss(fused_model(x), y))
    for model, opt in ((ref_model, ref), (fused_model, fused)):
        for _ in range(20):
            opt.zero_grad()
            ce_loss(model(x), y).backward()
            opt.step()
    moved = max(
        float((p - q).detach().abs().max())
        for p, q in zip(ref_model.parameters(), fused_model.parameters(), strict=True)
    )
    assert moved < 1e-4, f"fused Adam left the reference by {moved}"
    with torch.no_grad():  # and the steps did train
        assert float(ce_loss(fused_model(x), y)) < 0.9 * start_loss


def test_build_optimizer_choices() -> None:
    from pykd.train.optimizers import build_optimizer

    params = [nn.Parameter(torch.zeros(3))]
    sgd = build_optimizer(params, "sgd", 0.1, momentum=0.9)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        build_optimizer(params, "rmsprop", 0.1)
