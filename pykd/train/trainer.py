"""A model- and data-agnostic training loop for frame-level acoustic models.

Data comes from callables: ``train_batches_fn(epoch)`` and ``cv_batches_fn()`` return iterables
of ``(x, y)`` or ``(x, y, *extra)`` batches (frames x features, frame targets, e.g. teacher
posteriors as ``extra``). The loss is ``loss_fn(outputs, y, *extra)`` -> mean over the batch's
frames. With ``teacher`` (a frozen module, e.g. for KD) its outputs on ``x``, computed on the
training device, are appended: ``loss_fn(outputs, y, *extra, teacher_outputs)``.
``train_batches_fn`` must yield the same batches for the same epoch (seed its shuffling
from the epoch, with its own generator): a resumed run skips the batches already done.

Learning rate and stopping follow newbob (:mod:`pykd.train.schedule`); a rejected epoch restores
the weights and optimizer state of the last accepted one. Checkpoints (``checkpoints/last.pt``
every N steps, every M minutes and every epoch, ``checkpoints/epoch_<n>.pt``) are written
atomically and hold everything needed to resume bit-for-bit on the same device. Outputs:
``final.pt``, ``summary.json``, ``learning_curve.png``.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pykd.io.atomic import atomic_write_text
from pykd.train import distributed as ddp
from pykd.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    nonfinite_parameter,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pykd.train.curves import plot_learning_curves
from pykd.train.optimizers import build_optimizer
from pykd.train.precision import autocast, autocast_dtype
from pykd.train.progress import format_hms
from pykd.train.schedule import NewbobConfig, NewbobScheduler

logger = logging.getLogger(__name__)

Batch = Sequence[torch.Tensor]
LossFn = Callable[..., torch.Tensor]


class TrainingDiverged(RuntimeError):
    """Raised when a loss (train or CV) is NaN or infinite; the last checkpoint is kept."""


@dataclass
class TrainConfig:
    """Trainer options (all plain values, so a YAML mapping can build one)."""

    lr: float = 0.008
    optimizer: str = "sgd"  # sgd | adam
    momentum: float = 0.0
    weight_decay: float = 0.0
    fused_adam: bool = False  # PyTorch's fused Adam kernel (pykd.train.optimizers)
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    precision: str = "float32"  # float32 | bfloat16 | auto (pykd.train.precision)
    newbob: NewbobConfig = field(default_factory=NewbobConfig)
    checkpoint_every_steps: int = 500  # also checkpoint mid-epoch (kill -> resume); 0 = epoch ends
    checkpoint_every_minutes: float = 10.0  # and after this much training time; 0 = off
    keep_epoch_checkpoints: bool = True
    log_every_steps: int = 100
    device: str | None = None  # None = cuda if available else cpu
    seed: int = 0
    resume: bool = False
    stop_after_steps: int = 0  # >0: checkpoint and return after this many global steps
    plot: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a mapping (unknown keys are an error); ``newbob`` may be a mapping."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown training options: {sorted(unknown)}")
        d = dict(d)
        if isinstance(d.get("newbob"), dict):
            d["newbob"] = NewbobConfig(**d["newbob"])
        return cls(**d)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (CPU and every CUDA device).

    Call it before the network is built, so that ``--seed`` fixes the initial weights too.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Newbob-controlled, checkpointed, optionally distributed training loop."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None,
        loss_fn: LossFn,
        train_batches_fn: Callable[[int], Iterable[Batch]],
        cv_batches_fn: Callable[[], Iterable[Batch]],
        cfg: TrainConfig,
        out_dir: str | os.PathLike,
        meta: dict[str, Any] | None = None,
        teacher: nn.Module | None = None,
    ) -> None:
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.info = ddp.current_info()
        self.device = ddp.training_device(cfg.device)
        model.to(self.device)
        self.module = model
        self.model = ddp.wrap_model(model, self.device)
        self.autocast_dtype = autocast_dtype(cfg.precision, self.device)
        self.optimizer = optimizer or build_optimizer(
            model.parameters(),
            cfg.optimizer,
            cfg.lr,
            cfg.momentum,
            cfg.weight_decay,
            fused=cfg.fused_adam,
        )
        self.loss_fn = loss_fn
        self.teacher = teacher
        if teacher is not None:  # frozen: its outputs on x are appended to each batch
            teacher.to(self.device).eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
        self.train_batches_fn = train_batches_fn
        self.cv_batches_fn = cv_batches_fn
        self.meta = meta or {}
        self.sched = NewbobScheduler(cfg.lr, cfg.newbob)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0  # completed epochs
        self.step_in_epoch = 0
        self.global_step = 0
        self.epoch_loss_sum = 0.0
        self.epoch_frames = 0
        self.epoch_time = 0.0
        self.accepted: dict[str, Any] | None = None

    # ----- state -----
    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _snapshot(self) -> dict[str, Any]:
        model = {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}
        return {"model": model, "optimizer": copy.deepcopy(self.optimizer.state_dict())}

    def _restore(self, snap: dict[str, Any]) -> None:
        self.module.load_state_dict(snap["model"])
        self.optimizer.load_state_dict(snap["optimizer"])

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs."""
        return {
            "version": 1,
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.sched.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "epoch_loss_sum": self.epoch_loss_sum,
            "epoch_frames": self.epoch_frames,
            "epoch_time": self.epoch_time,
            "history": self.history,
            "accepted": self.accepted,
            "rng": rng_state(),
            "cfg": asdict(self.cfg),
            "meta": self.meta,
            "world_size": self.info.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (weights, optimizer, schedule, position, RNGs)."""
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.epoch_loss_sum = float(state["epoch_loss_sum"])
        self.epoch_frames = int(state["epoch_frames"])
        self.epoch_time = float(state.get("epoch_time", 0.0))
        self.history = list(state["history"])
        self.accepted = state["accepted"]
        set_rng_state(state["rng"])
        self._set_lr(self.sched.lr)

    def save(self, epoch_end: bool = False) -> None:
        """Atomically write ``checkpoints/last.pt`` (+ ``epoch_<n>.pt`` at an epoch end); rank 0."""
        name = nonfinite_parameter(self.module)  # identical on all ranks: all raise
        if name is not None:
            raise TrainingDiverged(
                f"parameter {name} is not finite at epoch {self.epoch + 1}, step "
                f"{self.step_in_epoch}; not overwriting the last good checkpoint "
                f"({latest_checkpoint(self.ckpt_dir)})"
            )
        if not self.info.is_main:
            return
        state = self.state_dict()
        save_checkpoint(self.ckpt_dir / "last.pt", state)
        if epoch_end and self.cfg.keep_epoch_checkpoints:
            save_checkpoint(self.ckpt_dir / f"epoch_{self.epoch}.pt", state)

    # ----- passes -----
    def _to_device(self, batch: Batch) -> list[torch.Tensor]:
        """Move a batch to the device; with a teacher, append its outputs on x."""
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("a batch must be (x, y) or (x, y, *extra)")
        out = [t.to(self.device, non_blocking=True) for t in batch]
        if self.teacher is not None:
            with torch.no_grad(), autocast(self.autocast_dtype, self.device):
                out.append(self.teacher(out[0]).float())
        return out

    def _check_finite(self, value: float, what: str) -> None:
        bad = 0.0 if math.isfinite(value) else 1.0
        if self.info.enabled:
            bad = ddp.all_reduce_sum([bad], self.device)[0]
        if bad:
            last = latest_checkpoint(self.ckpt_dir)
            raise TrainingDiverged(
                f"{what} is not finite ({value}) at epoch {self.epoch + 1}, step "
                f"{self.step_in_epoch} (global {self.global_step}); stopping. Last good "
                f"checkpoint kept: {last if last else 'none written yet'}. Try a lower learning "
                "rate or check the input features/targets."
            )

    def evaluate(self) -> tuple[float, float, int]:
        """CV pass: (mean loss per frame, frame accuracy, frames), summed over ranks."""
        model = self.module
        was_training = model.training
        model.eval()
        loss_sum, correct, frames, scored = 0.0, 0.0, 0, 0
        with torch.no_grad():
            for batch in self.cv_batches_fn():
                x, y, *extra = self._to_device(batch)
                out = model(x)
                loss = self.loss_fn(out, y, *extra)
                n = x.shape[0]
                loss_sum += float(loss) * n
                if y.is_floating_point() and y.dim() == out.dim():
                    labels = y.argmax(-1)
                else:
                    labels = y
                valid = labels >= 0  # frames without a label (ignore index) do not count
                correct += float(((out.argmax(-1) == labels) & valid).sum())
                scored += int(valid.sum())
                frames += n
        model.train(was_training)
        loss_sum, correct, frames_f, scored_f = ddp.all_reduce_sum(
            [loss_sum, correct, float(frames), float(scored)], self.device
        )
        if frames_f == 0:
            raise ValueError("the CV set yielded no frames")
        cv_loss = loss_sum / frames_f
        self._check_finite(cv_loss, "CV loss")
        return cv_loss, correct / max(scored_f, 1.0), int(frames_f)

    def _train_epoch(self, epoch: int) -> bool:
        """Train one epoch from the saved position; False if stopped by ``stop_after_steps``."""
        cfg = self.cfg
        self.model.train()
        batches = self.train_batches_fn(epoch)
        total = len(batches) if hasattr(batches, "__len__") else self.history[-1].get("steps")
        if hasattr(batches, "iter_from"):  # skips the batches already done without making them
            it = iter(batches.iter_from(self.step_in_epoch))
        else:  # any iterable: draw and drop them (deterministic)
            it = itertools.islice(batches, self.step_in_epoch, None)
        t_saved = time.perf_counter()
        t_log, frames_log, loss_log = time.perf_counter(), 0, 0.0
        t_start = time.perf_counter() - self.epoch_time
        while True:
            batch = next(it, None)
            if self.info.enabled:
                if not ddp.all_have_batch(batch is not None, self.device):
                    break
            elif batch is None:
                break
            x, y, *extra = self._to_device(batch)
            with autocast(self.autocast_dtype, self.device):
                out = self.model(x)
            loss = self.loss_fn(out.float(), y, *extra)
            value = float(loss.detach())
            self._check_finite(value, "training loss")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            n = int(x.shape[0])
            self.epoch_loss_sum += value * n
            self.epoch_frames += n
            frames_log += n
            loss_log += value * n
            self.step_in_epoch += 1
            self.global_step += 1
            self.epoch_time = time.perf_counter() - t_start
            if cfg.log_every_steps and self.step_in_epoch % cfg.log_every_steps == 0:
                dt = max(time.perf_counter() - t_log, 1e-9)
                eta = ""
                if total:
                    left = max(total - self.step_in_epoch, 0)
                    eta = f" ETA {format_hms(left * self.epoch_time / self.step_in_epoch)}"
                if self.info.is_main:
                    logger.info(
                        "epoch %d step %d%s loss %.4f lr %.3g %.0f frames/s%s",
                        epoch,
                        self.step_in_epoch,
                        f"/{total}" if total else "",
                        loss_log / max(frames_log, 1),
                        self.sched.lr,
                        frames_log * self.info.world_size / dt,
                        eta,
                    )
                t_log, frames_log, loss_log = time.perf_counter(), 0, 0.0
            if self._checkpoint_due(t_saved):
                self.save()
                t_saved = time.perf_counter()
            if cfg.stop_after_steps and self.global_step >= cfg.stop_after_steps:
                self.save()
                return False
        return True

    def _checkpoint_due(self, t_saved: float) -> bool:
        """A mid-epoch checkpoint every ``checkpoint_every_steps`` steps or after
        ``checkpoint_every_minutes`` of training since the last one (on all ranks when any
        rank's clock says so)."""
        cfg = self.cfg
        if cfg.checkpoint_every_steps and self.global_step % cfg.checkpoint_every_steps == 0:
            return True
        if not cfg.checkpoint_every_minutes:
            return False
        late = float(time.perf_counter() - t_saved >= 60.0 * cfg.checkpoint_every_minutes)
        if self.info.enabled:
            late = ddp.all_reduce_sum([late], self.device)[0]
        return late > 0

    # ----- driver -----
    def _fresh_start(self) -> None:
        seed_everything(self.cfg.seed)
        self._set_lr(self.sched.lr)
        cv_loss, cv_acc, cv_frames = self.evaluate()
        self.sched.set_initial(cv_loss)
        self.accepted = self._snapshot()
        self.history.append(
            {
                "epoch": 0,
                "train_loss": None,
                "cv_loss": cv_loss,
                "cv_acc": cv_acc,
                "cv_frames": cv_frames,
                "lr": self.sched.lr,
                "accepted": True,
            }
        )
        if self.info.is_main:
            logger.info("initial CV loss %.4f frame accuracy %.2f%%", cv_loss, 100 * cv_acc)

    def fit(self) -> dict[str, Any]:
        """Train until newbob stops; returns the summary (also in ``summary.json``).

        With ``stop_after_steps`` the run may return early with ``status == 'interrupted'``.
        """
        t0 = time.perf_counter()
        last = latest_checkpoint(self.ckpt_dir) if self.cfg.resume else None
        if last is not None:
            self.load_state_dict(load_checkpoint(last, map_location="cpu"))  # moved on load
            if self.info.is_main:
                logger.info(
                    "resumed from %s: epoch %d done, %d steps into the next",
                    last,
                    self.epoch,
                    self.step_in_epoch,
                )
        if self.info.is_main:
            logger.info(
                "training on %s, matrix products in %s (precision %s)",
                self.device,
                str(self.autocast_dtype or torch.float32).removeprefix("torch."),
                self.cfg.precision,
            )
        if not self.history:
            self._fresh_start()
            self.save()
        done = bool(self.history[-1].get("stop"))
        while not done:
            epoch = self.epoch + 1
            t_ep = time.perf_counter()
            if not self._train_epoch(epoch):
                return self._summary("interrupted", time.perf_counter() - t0)
            tl, tf = ddp.all_reduce_sum(
                [self.epoch_loss_sum, float(self.epoch_frames)], self.device
            )
            train_loss = tl / max(tf, 1.0)
            fps = tf / max(self.epoch_time, 1e-9)
            cv_loss, cv_acc, cv_frames = self.evaluate()
            lr_used = self.sched.lr
            decision = self.sched.step(cv_loss)
            if decision.accept:
                self.accepted = self._snapshot()
            else:
                assert self.accepted is not None
                self._restore(self.accepted)
            self._set_lr(decision.lr)
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "cv_loss": cv_loss,
                "cv_acc": cv_acc,
                "cv_frames": cv_frames,
                "lr": lr_used,
                "next_lr": decision.lr,
                "accepted": decision.accept,
                "rel_impr": decision.rel_impr,
                "train_frames": int(tf),
                "steps": self.step_in_epoch,
                "frames_per_s": fps,
                "epoch_s": time.perf_counter() - t_ep,
                "stop": decision.stop,
                "stop_reason": decision.reason,
            }
            self.history.append(row)
            self.epoch = epoch
            self.step_in_epoch, self.epoch_loss_sum, self.epoch_frames = 0, 0.0, 0
            self.epoch_time = 0.0
            self.save(epoch_end=True)
            if self.info.is_main:
                logger.info(
                    "epoch %d: train loss %.4f, CV loss %.4f, CV frame accuracy %.2f%%, "
                    "lr %.3g, %.0f frames/s, %s%s",
                    epoch,
                    train_loss,
                    cv_loss,
                    100 * cv_acc,
                    lr_used,
                    fps,
                    "accepted" if decision.accept else "REJECTED (weights restored)",
                    f"; stop: {decision.reason}" if decision.stop else "",
                )
                if self.cfg.plot:
                    plot_learning_curves(
                        self.history, self.out_dir / "learning_curve.png", str(self.out_dir)
                    )
            done = decision.stop
        return self._finish(time.perf_counter() - t0)

    def _summary(self, status: str, wall_s: float) -> dict[str, Any]:
        accepted = [r for r in self.history if r.get("accepted")]
        best = min(accepted, key=lambda r: r["cv_loss"]) if accepted else None
        return {
            "status": status,
            "epochs": self.epoch,
            "global_step": self.global_step,
            "best_epoch": best["epoch"] if best else None,
            "cv_loss": best["cv_loss"] if best else None,
            "cv_acc": best["cv_acc"] if best else None,
            "final_lr": self.sched.lr,
            "params": sum(p.numel() for p in self.module.parameters()),
            "device": str(self.device),
            "matmul_dtype": str(self.autocast_dtype or torch.float32).removeprefix("torch."),
            "world_size": self.info.world_size,
            "wall_s": wall_s,
            "history": self.history,
        }

    def _finish(self, wall_s: float) -> dict[str, Any]:
        summary = self._summary("finished", wall_s)
        if self.info.is_main:
            final = {"model": self.module.state_dict(), "meta": self.meta, "summary": summary}
            save_checkpoint(self.out_dir / "final.pt", final)
            atomic_write_text(self.out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
            logger.info(
                "finished: %d epochs, best CV loss %.4f (epoch %s), CV frame accuracy %.2f%%",
                self.epoch,
                summary["cv_loss"],
                summary["best_epoch"],
                100 * summary["cv_acc"],
            )
        ddp.barrier()
        # drop the DDP wrapper: it holds the process group, which must be destroyed (by
        # ddp.cleanup) while every rank is alive, not when the interpreter tears down
        self.model = self.module
        return summary
