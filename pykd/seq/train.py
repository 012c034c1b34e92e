"""Utterance-level sequence training: sMBR / MPFE / (boosted) MMI, optionally KD-regularised.

One update per ``utts_per_step`` utterances (1: Kaldi nnet1's ``nnet-train-mpe-sequential`` /
``-mmi-sequential``; more: one network pass and one batched lattice forward-backward for all
of them, their losses summed, so the learning rate keeps its per-utterance meaning):
features -> network -> ``loglikes = log_softmax(logits) - prior_scale * log_prior`` -> the
objective on each utterance's denominator lattice with its numerator alignment
(:mod:`pykd.seq.objectives`) -> loss per utterance

    L = (1 - q) * L_seq / T + q * T_kd^2 * CE(softmax(z_teacher / T_kd), softmax(z / T_kd))

(``L_seq`` summed over the utterance's T frames, so both terms are per frame; q = 0 without a
teacher; the teacher's posteriors come from its forward pass on each step, or cached top-k from
``pykd teacher-posts``) -> SGD (or Adam) step on all parameters or, with ``params="gates"``, on
the HDNN's shared gates only.

Bad input never stops training: an utterance without alignment or lattice, with an unreadable
or empty lattice, with frame counts that disagree, or whose loss / gradient is not finite is
skipped, warned about and counted; frames whose numerator pdf is missing from the lattice are
dropped (zero gradient) and counted (``drop_frames``).

Outputs in ``out_dir``: ``checkpoints/last.pt`` (atomic; after the step that passes a multiple
of ``checkpoint_every`` utterances and at each epoch end; everything a bit-exact resume needs),
``epoch<N>.pt`` and ``final.pt`` (``{"model", "meta", "summary"}``, the layout of
``train-nnet``'s final.pt, so ``steps_kd/decode_nnet.sh --model`` decodes them),
``summary.json``, ``learning_curve.png``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pykd.io.atomic import atomic_write_text
from pykd.kaldi.lattice_io import LatticeFormatError
from pykd.kaldi.posterior_io import Posterior
from pykd.seq.config import SeqTrainConfig, SeqTrainError
from pykd.seq.lattice_graph import LatticeGraph, LatticeGraphError, lattice_to_graph
from pykd.seq.objectives import mmi_batch, smbr_batch
from pykd.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    nonfinite_parameter,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pykd.train.curves import save_figure
from pykd.train.losses import soft_ce_frames, sparse_soft_ce_frames
from pykd.train.optimizers import build_optimizer
from pykd.train.precision import autocast, autocast_dtype
from pykd.train.progress import format_hms

log = logging.getLogger(__name__)

SKIP_KINDS = (
    "no_alignment",
    "no_lattice",
    "lattice_unreadable",
    "lattice_empty",
    "lattice_invalid",
    "length_mismatch",
    "no_teacher_posts",
    "nonfinite",
)


@dataclass
class EpochStats:
    """Totals of one epoch (sums; per-frame values are derived in :meth:`row`)."""

    epoch: int
    utts: int = 0
    frames: int = 0
    objective: float = 0.0  # sMBR/MPFE: expected correct frames; MMI: log-posterior of num
    seq_loss: float = 0.0  # sum of L_seq (summed over frames)
    kd_loss: float = 0.0  # sum over frames of the teacher soft CE
    loss: float = 0.0  # sum over utterances of L * T (the optimised loss, per-frame-weighted)
    dropped_frames: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_KINDS, 0))
    skipped_utts: list[str] = field(default_factory=list)
    seconds: float = 0.0
    blocks: list[tuple[int, float]] = field(default_factory=list)  # (utts done, obj/frame)

    def row(self, criterion: str) -> dict[str, Any]:
        n = max(self.frames, 1)
        return {
            "epoch": self.epoch,
            "criterion": criterion,
            "utts": self.utts,
            "frames": self.frames,
            "objective_per_frame": self.objective / n,
            "seq_loss_per_frame": self.seq_loss / n,
            "kd_loss_per_frame": self.kd_loss / n,
            "loss_per_frame": self.loss / n,
            "dropped_frames": self.dropped_frames,
            "dropped_frames_pct": 100.0 * self.dropped_frames / n,
            "skipped": dict(self.skipped),
            "skipped_total": sum(self.skipped.values()),
            "skipped_utts": self.skipped_utts[:50],
            "seconds": self.seconds,
            "utts_per_s": self.utts / max(self.seconds, 1e-9),
            "blocks": list(self.blocks),
        }


@dataclass
class _Item:
    """One utterance ready for a step: spliced features, numerator alignment, lattice graph."""

    utt: str
    feats: np.ndarray
    ali: np.ndarray
    graph: LatticeGraph
    posts: Posterior | None = None  # the teacher's cached top-k posteriors (KD term)


@dataclass
class _Skip:
    """An utterance that cannot be used, and why (counted under ``kind``)."""

    kind: str
    utt: str
    why: str


def _crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in (before, after] (``every`` 0: never)."""
    return every > 0 and before // every != after // every


def select_trainable(model: nn.Module, which: str) -> list[nn.Parameter]:
    """Parameters to update (``all`` or ``gates``); the others get ``requires_grad=False``."""
    from pykd.frontend.model import ModelError, select_parameters  # noqa: PLC0415

    try:
        chosen = select_parameters(model, which)
    except ModelError as err:
        raise SeqTrainError(str(err)) from err
    ids = {id(p) for p in chosen.values()}
    for p in model.parameters():
        p.requires_grad_(id(p) in ids)
    return list(chosen.values())


class SeqTrainer:
    """Utterance-level sequence trainer with atomic checkpoints and bit-exact resume.

    ``source`` gives CMVN'd, spliced features per utterance (``source.spliced(utt)``);
    ``denlats[utt]`` a lattice (``KeyError`` when missing); ``alignments[utt]`` the numerator
    transition-ids. ``tid_to_pdf`` / ``tid_to_phone`` come from the transition model the
    network's pdfs belong to; ``silence_phones`` from ``lang/phones/silence.csl``.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: SeqTrainConfig,
        source: Any,
        utterances: Sequence[str],
        denlats: Any,
        alignments: Mapping[str, np.ndarray],
        tid_to_pdf: np.ndarray,
        tid_to_phone: np.ndarray,
        silence_phones: Sequence[int],
        log_prior: np.ndarray | None,
        out_dir: str | Path,
        meta: dict[str, Any] | None = None,
        teacher: nn.Module | None = None,
        teacher_posts: Mapping[str, Posterior] | None = None,
    ) -> None:
        cfg.validate()
        if cfg.kd_q > 0 and (teacher is None) == (teacher_posts is None):
            raise SeqTrainError("kd_q > 0 needs a teacher or its cached posteriors (one of them)")
        self.teacher_posts = teacher_posts
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        self.model = model.to(self.device)
        self.autocast_dtype = autocast_dtype(cfg.precision, self.device)
        self.trainable = select_trainable(model, cfg.params)
        self.optimizer = build_optimizer(self.trainable, cfg.optimizer, cfg.lr, cfg.momentum)
        self.teacher = teacher
        if teacher is not None:
            teacher.to(self.device).eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
        self.source = source
        self.utterances = list(utterances)
        self.denlats = denlats
        self.alignments = alignments
        self.tid_to_pdf = np.asarray(tid_to_pdf)
        self.tid_to_phone = np.asarray(tid_to_phone)
        self.silence = [int(p) for p in silence_phones]
        self.log_prior = (
            None
            if log_prior is None or cfg.prior_scale == 0
            else torch.as_tensor(cfg.prior_scale * np.asarray(log_prior), dtype=torch.float32).to(
                self.device
            )
        )
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.meta = dict(meta or {})
        self.epoch = 0  # completed epochs
        self.pos = 0  # utterances of the current epoch's order already processed
        self.global_utts = 0
        self.stats = EpochStats(epoch=1)
        self.history: list[dict[str, Any]] = []

    # ----- state -----
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "pos": self.pos,
            "global_utts": self.global_utts,
            "stats": asdict(self.stats),
            "history": self.history,
            "rng": rng_state(),
            "cfg": asdict(self.cfg),
            "meta": self.meta,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # the current options win (e.g. a new lr)
            group["lr"] = self.cfg.lr
        self.epoch = int(state["epoch"])
        self.pos = int(state["pos"])
        self.global_utts = int(state["global_utts"])
        st = dict(state["stats"])
        st["blocks"] = [tuple(b) for b in st.get("blocks", [])]
        self.stats = EpochStats(**st)
        self.history = list(state["history"])
        set_rng_state(state["rng"])

    def save(self) -> None:
        """Atomically write ``checkpoints/last.pt`` (refuses non-finite weights)."""
        name = nonfinite_parameter(self.model)
        if name is not None:
            raise RuntimeError(f"parameter {name} is not finite; last checkpoint kept")
        save_checkpoint(self.ckpt_dir / "last.pt", self.state_dict())

    def _save_model(self, path: Path, summary: dict[str, Any]) -> None:
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        save_checkpoint(path, {"model": state, "meta": self.meta, "summary": summary})

    # ----- one utterance -----
    def _skip(self, kind: str, utt: str, why: str) -> None:
        self.stats.skipped[kind] += 1
        self.stats.skipped_utts.append(utt)
        log.warning("utterance %s skipped (%s): %s", utt, kind.replace("_", " "), why)

    def _loglikes(self, logits: torch.Tensor) -> torch.Tensor:
        out = F.log_softmax(logits, dim=-1)
        return out if self.log_prior is None else out - self.log_prior

    def _prepare(self, utt: str) -> _Item | _Skip:
        """Features, alignment and lattice graph of ``utt``, or why it must be skipped.

        Runs in the prefetch thread: it reads files and builds the graph, changes nothing.
        """
        cfg = self.cfg
        ali = self.alignments.get(utt)
        if ali is None:
            return _Skip("no_alignment", utt, "no alignment")
        try:
            lat = self.denlats[utt]
        except KeyError:
            return _Skip("no_lattice", utt, "no denominator lattice")
        except (LatticeFormatError, OSError, EOFError, ValueError) as err:
            return _Skip("lattice_unreadable", utt, str(err))
        feats = self.source.spliced(utt)
        T = int(feats.shape[0])
        if len(ali) != T:
            return _Skip("length_mismatch", utt, f"{len(ali)} alignment frames, {T} feature frames")
        posts = None
        if self.teacher_posts is not None and self.cfg.kd_q > 0:
            if utt not in self.teacher_posts:
                return _Skip("no_teacher_posts", utt, "no cached teacher posteriors")
            posts = self.teacher_posts[utt]
            if posts[0].shape[0] != T:
                why = f"{posts[0].shape[0]} teacher-posterior frames, {T} feature frames"
                return _Skip("length_mismatch", utt, why)
        try:
            graph = lattice_to_graph(
                lat,
                self.tid_to_pdf,
                self.tid_to_phone,
                utt=utt,
                num_frames=T,
                old_acoustic_scale=cfg.old_acoustic_scale,
            )
        except LatticeGraphError as err:
            kind = "lattice_empty" if "empty lattice" in str(err) else "lattice_invalid"
            return _Skip(kind, utt, str(err))
        return _Item(utt, np.ascontiguousarray(feats), ali, graph, posts)

    def prepare_step(self, utts: Sequence[str]) -> list[_Item | _Skip]:
        """:meth:`_prepare` of each of ``utts`` (what :meth:`train_step` consumes)."""
        return [self._prepare(u) for u in utts]

    def _teacher_ce(
        self, logits: torch.Tensor, x: torch.Tensor, items: list[_Item]
    ) -> torch.Tensor:
        """Per frame the soft CE against the teacher: its cached top-k posteriors, or its
        forward pass on ``x``."""
        temp = self.cfg.kd_temperature
        if self.teacher is None:
            posts = [it.posts for it in items if it.posts is not None]
            ids = torch.from_numpy(np.concatenate([p[0] for p in posts])).to(x.device)
            probs = torch.from_numpy(np.concatenate([p[1] for p in posts])).to(x.device)
            return sparse_soft_ce_frames(logits, ids, probs, temp)
        with torch.no_grad(), autocast(self.autocast_dtype, self.device):
            t_logits = self.teacher(x)
        t_post = F.softmax(t_logits.float() / temp, dim=-1)
        return soft_ce_frames(logits, t_post, temp)

    def train_step(self, utts: Sequence[str], prepared: list[_Item | _Skip] | None = None) -> int:
        """One SGD step on the usable utterances of ``utts`` (their losses summed, each
        normalised by its frames); returns how many were used (the others are counted as
        skipped). ``prepared``: :meth:`prepare_step` of ``utts``, when already made."""
        items = []
        for it in self.prepare_step(utts) if prepared is None else prepared:
            if isinstance(it, _Item):
                items.append(it)
            elif it.kind == "no_alignment":
                self.stats.skipped[it.kind] += 1
                self.stats.skipped_utts.append(it.utt)
                log.debug("utterance %s: no alignment", it.utt)
            else:
                self._skip(it.kind, it.utt, it.why)
        if not items:
            return 0
        cfg = self.cfg
        frames = [int(it.feats.shape[0]) for it in items]
        x = torch.from_numpy(np.concatenate([it.feats for it in items])).to(self.device)
        with autocast(self.autocast_dtype, self.device):
            logits = self.model(x)
        logits = logits.float()
        loglikes = self._loglikes(logits)
        graphs = [it.graph for it in items]
        alis = [it.ali for it in items]
        if cfg.criterion == "mmi":
            seq_loss, stats = mmi_batch(
                graphs,
                loglikes,
                alis,
                kappa=cfg.acwt,
                boost=cfg.boost,
                silence_phones=self.silence,
                drop_frames=cfg.drop_frames,
                lm_scale=cfg.lm_scale,
            )
        else:
            seq_loss, stats = smbr_batch(
                graphs,
                loglikes,
                alis,
                kappa=cfg.acwt,
                silence_phones=self.silence,
                criterion=cfg.criterion,  # type: ignore[arg-type]
                one_silence_class=cfg.one_silence_class,
                lm_scale=cfg.lm_scale,
                drop_frames=cfg.drop_frames,
            )
        n_frames = torch.as_tensor(frames, dtype=seq_loss.dtype, device=seq_loss.device)
        per_utt = (1.0 - cfg.kd_q) * seq_loss / n_frames  # (B,)
        kd = torch.zeros_like(per_utt)
        if cfg.kd_q > 0:
            frame_utt = torch.repeat_interleave(
                torch.arange(len(items), device=x.device), n_frames.long()
            )
            per_frame = self._teacher_ce(logits, x, items) * cfg.kd_temperature**2
            kd = torch.zeros_like(per_utt).index_add_(0, frame_utt, per_frame.to(kd.dtype))
            kd = kd / n_frames
            per_utt = per_utt + cfg.kd_q * kd
        values = per_utt.detach().tolist()
        usable = []
        for it, v, st in zip(items, values, stats, strict=True):
            ok = math.isfinite(v) and math.isfinite(st.objective)
            if not ok:
                self._skip("nonfinite", it.utt, f"loss {v}, objective {st.objective}")
            usable.append(ok)
        if not any(usable):
            return 0
        keep = torch.as_tensor(usable, device=per_utt.device)
        loss = torch.where(keep, per_utt, torch.zeros_like(per_utt)).sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        bad = [p for p in self.trainable if p.grad is not None and not torch.isfinite(p.grad).all()]
        if bad:
            self.optimizer.zero_grad(set_to_none=True)
            for it, ok in zip(items, usable, strict=True):
                if ok:
                    self._skip("nonfinite", it.utt, "non-finite gradient; no update")
            return 0
        self.optimizer.step()
        s = self.stats
        kd_values = kd.detach().tolist()
        seq_values = seq_loss.detach().tolist()
        for ok, T, v, st, kd_v, seq_v in zip(
            usable, frames, values, stats, kd_values, seq_values, strict=True
        ):
            if not ok:
                continue
            s.utts += 1
            s.frames += T
            s.objective += st.objective
            s.seq_loss += seq_v
            s.kd_loss += kd_v * T
            s.loss += v * T
            s.dropped_frames += st.dropped_frames
        return sum(usable)

    # ----- driver -----
    def order(self, epoch: int) -> list[str]:
        """The epoch's utterance order (a seeded permutation: the same after a resume)."""
        if not self.cfg.shuffle:
            return list(self.utterances)
        rng = np.random.default_rng([self.cfg.seed, epoch])
        return [self.utterances[i] for i in rng.permutation(len(self.utterances))]

    def _log_progress(self, epoch: int, n_done: int, total: int, block: tuple) -> None:
        obj0, frames0, t0, utts0 = block
        s = self.stats
        frames = s.frames - frames0
        obj = (s.objective - obj0) / max(frames, 1)
        dt = max(time.perf_counter() - t0, 1e-9)
        rate = (n_done - utts0) / dt
        eta = format_hms((total - n_done) / rate) if rate > 0 else "?"
        s.blocks.append((n_done, obj))
        log.info(
            "epoch %d: %d/%d utts, %s obj/frame %.4f (last %d), %.2f utt/s %.0f frames/s, "
            "ETA %s, dropped %d frames, skipped %d utts",
            epoch, n_done, total, self.cfg.criterion, obj, n_done - utts0, rate, frames / dt,
            eta, s.dropped_frames, sum(s.skipped.values()),
        )  # fmt: skip

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train for ``cfg.epochs`` epochs (or continue a run); returns the summary."""
        cfg = self.cfg
        t_wall = time.perf_counter()
        last = latest_checkpoint(self.ckpt_dir) if resume else None
        if last is not None:
            self.load_state_dict(load_checkpoint(last, map_location="cpu"))
            log.info(
                "resumed from %s: %d epochs done, %d utterances into epoch %d",
                last, self.epoch, self.pos, self.epoch + 1,
            )  # fmt: skip
        else:
            torch.manual_seed(cfg.seed)
        self.model.train()
        while self.epoch < cfg.epochs:
            epoch = self.epoch + 1
            order = self.order(epoch)
            t_start = time.perf_counter() - self.stats.seconds
            block = (self.stats.objective, self.stats.frames, time.perf_counter(), self.pos)
            per_step = cfg.utts_per_step
            # the next step's lattices, graphs and features are read while this step trains
            with ThreadPoolExecutor(max_workers=1) as prefetch:
                ahead = prefetch.submit(self.prepare_step, order[self.pos : self.pos + per_step])
                while self.pos < len(order):
                    step = order[self.pos : self.pos + per_step]
                    prepared = ahead.result()
                    following = order[self.pos + per_step : self.pos + 2 * per_step]
                    if following:
                        ahead = prefetch.submit(self.prepare_step, following)
                    self.train_step(step, prepared)
                    before = self.global_utts
                    self.pos += len(step)
                    self.global_utts += len(step)
                    self.stats.seconds = time.perf_counter() - t_start
                    if _crossed(self.pos - len(step), self.pos, cfg.log_every):
                        self._log_progress(epoch, self.pos, len(order), block)
                        block = (self.stats.objective, self.stats.frames, time.perf_counter(),
                                 self.pos)  # fmt: skip
                    if _crossed(before, self.global_utts, cfg.checkpoint_every):
                        self.save()
                    if cfg.stop_after_utts and self.global_utts >= cfg.stop_after_utts:
                        self.save()
                        return self._summary("interrupted", time.perf_counter() - t_wall)
            self._end_epoch(epoch)
        return self._finish(time.perf_counter() - t_wall)

    def _end_epoch(self, epoch: int) -> None:
        s = self.stats
        if s.utts == 0:
            raise RuntimeError(
                f"epoch {epoch}: no utterance could be used (skipped: {s.skipped}); check the "
                "lattices, alignments and features"
            )
        row = s.row(self.cfg.criterion)
        self.history.append(row)
        self.epoch = epoch
        self.pos = 0
        self.stats = EpochStats(epoch=epoch + 1)
        self.save()
        self._save_model(self.out_dir / f"epoch{epoch}.pt", row)
        log.info(
            "epoch %d done: %s obj/frame %.4f, loss/frame %.4f (kd %.4f), %d utts, %d frames, "
            "%d frames dropped, skipped %s, %.1f s (%.2f utt/s)",
            epoch, self.cfg.criterion, row["objective_per_frame"], row["loss_per_frame"],
            row["kd_loss_per_frame"], row["utts"], row["frames"], row["dropped_frames"],
            {k: v for k, v in row["skipped"].items() if v} or "none", row["seconds"],
            row["utts_per_s"],
        )  # fmt: skip
        atomic_write_text(
            self.out_dir / "summary.json",
            json.dumps(self._summary("running", 0.0), indent=2) + "\n",
        )
        try:
            plot_seq_curve(self.history, self.out_dir / "learning_curve.png", str(self.out_dir))
        except Exception as err:  # noqa: BLE001 (a plot must never stop training)
            log.warning("learning curve not written: %s", err)

    def _summary(self, status: str, wall_s: float) -> dict[str, Any]:
        return {
            "status": status,
            "criterion": self.cfg.criterion,
            "epochs": self.epoch,
            "utterances": len(self.utterances),
            "global_utts": self.global_utts,
            "config": asdict(self.cfg),
            "trainable_params": sum(p.numel() for p in self.trainable),
            "wall_s": wall_s,
            "history": self.history,
        }

    def _finish(self, wall_s: float) -> dict[str, Any]:
        summary = self._summary("finished", wall_s)
        self._save_model(self.out_dir / "final.pt", summary)
        atomic_write_text(self.out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        log.info("finished %d epochs; %s", self.epoch, self.out_dir / "final.pt")
        return summary


def plot_seq_curve(history: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """PNG: objective per frame per block of utterances and per epoch; loss per frame."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    crit = history[0]["criterion"] if history else ""
    for row in history:
        n = max(row["utts"] + row["skipped_total"], 1)
        pts = [(row["epoch"] - 1 + u / n, v) for u, v in row.get("blocks", [])]
        if pts:
            ax1.plot(*zip(*pts, strict=True), ".", color="tab:gray", markersize=4)
    ep = [r["epoch"] for r in history]
    ax1.plot(ep, [r["objective_per_frame"] for r in history], "o-", label="epoch mean (at its end)")
    ax1.set_xlabel("epoch (grey: blocks of utterances)")
    ax1.set_ylabel(f"{crit} objective per frame")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(ep, [r["loss_per_frame"] for r in history], "s-", label="loss (optimised)")
    if any(r["kd_loss_per_frame"] for r in history):
        ax2.plot(ep, [r["kd_loss_per_frame"] for r in history], "^-", label="teacher CE")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("per frame")
    last = history[-1] if history else {}
    ax2.set_title(
        f"dropped frames {last.get('dropped_frames_pct', 0.0):.1f}%, "
        f"skipped utts {last.get('skipped_total', 0)}",
        fontsize=9,
    )
    ax2.legend()
    ax2.grid(alpha=0.3)
    return save_figure(fig, path, title)
