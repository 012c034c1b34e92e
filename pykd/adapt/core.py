"""Per-speaker adaptation of an acoustic network (gate-only for the HDNN), and speaker files.

:func:`adapt_speaker` copies the speaker-independent (SI) base model, unfreezes one parameter
set (``gates``: the HDNN's shared W_T, b_T, W_C, b_C; ``output_bias``; ``all``) and trains it for
a few epochs over one speaker's frames, in frame-shuffled mini-batches, against

* the teacher's posteriors (soft cross-entropy at temperature 1, teacher in eval mode, computed
  once per speaker and kept if they fit in ``teacher_cache_mb``, else per mini-batch:
  unsupervised knowledge distillation; or read from its cached top-k posteriors, ``pykd
  teacher-posts`` over the adaptation data, which the source hands over with the frames), or
* hard pdf targets (best-path alignments of a first-pass decoding, or oracle alignments),

plus optionally ``kl_weight * KL(p_SI || p_adapted)`` towards the SI model's posteriors. The
model runs in eval mode (no dropout), so a seed makes a run deterministic.

The adapted tensors are saved per speaker by :func:`pykd.frontend.model.save_speaker_params`
(speaker files, parameter groups and their use at decode time live in the front end).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pykd.adapt.config import AdaptConfig, AdaptError
from pykd.data.frames import EpochStats, UtteranceSource
from pykd.frontend.model import select_parameters
from pykd.frontend.splice import pad_edges, splice_padded
from pykd.train.losses import ce_loss, soft_ce_loss, sparse_soft_ce_frames
from pykd.train.optimizers import build_optimizer

log = logging.getLogger(__name__)

EVAL_CHUNK = 4096


# ----------------------------------------------------------------------------- frames
@dataclass
class SpeakerFrames:
    """One speaker's CMVN'd frames, edge-padded per utterance (spliced per mini-batch).

    ``centers[i]`` is the row of frame ``i`` in ``padded``; ``targets`` (pdf-ids) or None;
    ``teacher_ids`` / ``teacher_probs`` ``(frames, k)``: the teacher's cached top-k posteriors
    (when the source has them) or None.
    """

    padded: np.ndarray
    centers: np.ndarray
    left: int
    right: int
    targets: np.ndarray | None = None
    teacher_ids: np.ndarray | None = None
    teacher_probs: np.ndarray | None = None
    utts: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.centers)

    def inputs(self, idx: np.ndarray | slice) -> torch.Tensor:
        """Spliced network input rows of frames ``idx``."""
        rows = splice_padded(self.padded, self.centers[idx], self.left, self.right)
        return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))

    def labels(self, idx: np.ndarray | slice) -> torch.Tensor | None:
        """pdf-id targets of frames ``idx`` (None without hard targets)."""
        if self.targets is None:
            return None
        return torch.from_numpy(np.ascontiguousarray(self.targets[idx], dtype=np.int64))


def speaker_frames(source: UtteranceSource, utts: Iterable[str]) -> SpeakerFrames:
    """Load ``utts`` from ``source``; with targets, utterances without / with mismatched ones
    are skipped (named in ``skipped``)."""
    left, right = source.left, source.right
    pads: list[np.ndarray] = []
    centers: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    used: list[str] = []
    offset = 0
    stats = EpochStats()
    for utt in utts:
        loaded = source.load(utt, stats)
        if loaded is None:
            continue
        feats, y = loaded
        pads.append(pad_edges(feats, left, right))
        centers.append(offset + left + np.arange(len(feats), dtype=np.int64))
        offset += len(feats) + left + right
        if y is not None:
            labels.append(y if y.dtype.names else np.asarray(y, dtype=np.int64))
        used.append(utt)
    dim = source.feat_dim if source.utterances else 0
    padded = np.concatenate(pads) if pads else np.zeros((0, dim), dtype=np.float32)
    targets = teacher_ids = teacher_probs = None
    if source.teacher_posts is not None:  # rows of (y: IGNORE_INDEX, ids, probs) per frame
        rows = np.concatenate(labels) if labels else None
        teacher_ids = rows["ids"] if rows is not None else np.zeros((0, 1), np.int32)
        teacher_probs = rows["probs"] if rows is not None else np.zeros((0, 1), np.float32)
    elif source.targets is not None:
        targets = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    return SpeakerFrames(
        padded=padded,
        centers=np.concatenate(centers) if centers else np.zeros(0, dtype=np.int64),
        left=left,
        right=right,
        targets=targets,
        teacher_ids=teacher_ids,
        teacher_probs=teacher_probs,
        utts=used,
        skipped=list(stats.skipped),
    )


# ----------------------------------------------------------------------------- adaptation
@dataclass
class AdaptStats:
    """What one speaker's adaptation did (loss: the task loss, without the KL term)."""

    frames: int
    adapted_params: int
    loss_before: float
    loss_after: float
    seconds: float
    steps: int
    utts: int


@dataclass
class AdaptResult:
    """Adapted tensors (by name, on CPU), the adapted model, and stats."""

    state: dict[str, torch.Tensor]
    model: nn.Module
    stats: AdaptStats


class _TeacherPosteriors:
    """Teacher posteriors of a speaker's frames (eval mode, no grad): computed once and kept
    when they fit in ``cache_mb``, else per mini-batch."""

    def __init__(
        self, teacher: nn.Module, frames: SpeakerFrames, device: torch.device, cache_mb: float
    ) -> None:
        self.teacher = teacher.eval()
        self.device = device
        self.cache: torch.Tensor | None = None
        n = len(frames)
        if n == 0 or cache_mb <= 0:
            return
        with torch.no_grad():
            first = self._compute(frames.inputs(slice(0, 1)).to(device))
            if n * first.shape[1] * 4 > cache_mb * 2**20:
                return
            chunks = [
                self._compute(frames.inputs(slice(t0, min(n, t0 + EVAL_CHUNK))).to(device))
                for t0 in range(0, n, EVAL_CHUNK)
            ]
        self.cache = torch.cat(chunks)

    def _compute(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.teacher(x).float(), dim=-1)

    @torch.no_grad()
    def __call__(self, idx: np.ndarray | slice, x: torch.Tensor) -> torch.Tensor:
        if self.cache is None:
            return self._compute(x)
        if isinstance(idx, slice):
            return self.cache[idx]
        return self.cache[torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(self.device)]


class _CachedTeacherPosteriors:
    """The teacher's cached top-k posteriors of a speaker's frames: pdf ids and probabilities
    per frame, for :func:`~pykd.train.losses.sparse_soft_ce_frames` (which renormalises them
    over the k kept pdfs, as the KD loss of the cache does)."""

    def __init__(self, frames: SpeakerFrames, num_pdfs: int, device: torch.device) -> None:
        assert frames.teacher_ids is not None and frames.teacher_probs is not None
        ids = torch.from_numpy(np.asarray(frames.teacher_ids, dtype=np.int64))
        if len(ids) and int(ids.max()) >= num_pdfs:
            raise AdaptError(
                f"cached teacher posteriors name pdf {int(ids.max())}, the model has "
                f"{num_pdfs} outputs (cache of another tree?)"
            )
        self.ids = ids.to(device)
        self.probs = torch.from_numpy(np.asarray(frames.teacher_probs, np.float32)).to(device)

    def rows(self, idx: np.ndarray | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, probs) of frames ``idx``."""
        if not isinstance(idx, slice):
            idx = torch.from_numpy(np.asarray(idx, dtype=np.int64)).to(self.ids.device)
        return self.ids[idx], self.probs[idx]


Posteriors = _TeacherPosteriors | _CachedTeacherPosteriors


def _teacher_posteriors(
    model: nn.Module,
    frames: SpeakerFrames,
    teacher: nn.Module | None,
    device: torch.device,
    cache_mb: float,
) -> Posteriors | None:
    """The soft targets: the teacher's forward pass, the frames' cached posteriors, or None
    (hard targets)."""
    if teacher is not None:
        return _TeacherPosteriors(teacher, frames, device, cache_mb)
    if frames.teacher_ids is not None:
        with torch.no_grad():
            num_pdfs = int(model.eval()(frames.inputs(slice(0, 1)).to(device)).shape[-1])
        return _CachedTeacherPosteriors(frames, num_pdfs, device)
    return None


def _task_loss(
    logits: torch.Tensor,
    frames: SpeakerFrames,
    idx: np.ndarray | slice,
    x: torch.Tensor,
    posts: Posteriors | None,
) -> torch.Tensor:
    if isinstance(posts, _CachedTeacherPosteriors):
        return sparse_soft_ce_frames(logits, *posts.rows(idx), 1.0).mean()
    if posts is not None:
        return soft_ce_loss(logits, posts(idx, x), 1.0)
    y = frames.labels(idx)
    assert y is not None
    return ce_loss(logits, y.to(logits.device))


@torch.no_grad()
def _evaluate(
    model: nn.Module,
    frames: SpeakerFrames,
    posts: Posteriors | None,
    device: torch.device,
) -> float:
    model.eval()
    total, n = 0.0, len(frames)
    for t0 in range(0, n, EVAL_CHUNK):
        sl = slice(t0, min(n, t0 + EVAL_CHUNK))
        x = frames.inputs(sl).to(device)
        total += float(_task_loss(model(x), frames, sl, x, posts)) * (sl.stop - sl.start)
    return total / n if n else math.nan


def evaluate_loss(
    model: nn.Module, frames: SpeakerFrames, teacher: nn.Module | None = None, device: str = "cpu"
) -> float:
    """Mean task loss over all frames (soft CE against ``teacher`` or the frames' cached
    teacher posteriors, else CE on the targets)."""
    if teacher is None and frames.targets is None and frames.teacher_ids is None:
        raise AdaptError("need a teacher, cached teacher posteriors or hard targets")
    dev = torch.device(device)
    posts = _teacher_posteriors(model, frames, teacher, dev, 0)
    return _evaluate(model, frames, posts, dev)


def adapt_speaker(
    base_model: nn.Module,
    frames: SpeakerFrames,
    cfg: AdaptConfig,
    teacher: nn.Module | None = None,
) -> AdaptResult:
    """Adapt a copy of ``base_model`` (left untouched) to one speaker's ``frames``.

    Targets: ``teacher`` posteriors if given, else the frames' cached teacher posteriors, else
    ``frames.targets``. Deterministic for a seed.
    ``stats.seconds`` counts the teacher's forward passes and the updates (not the loss
    evaluations before / after).
    """
    cfg.validate()
    if teacher is None and frames.targets is None and frames.teacher_ids is None:
        raise AdaptError("adaptation needs a teacher, cached teacher posteriors or hard targets")
    if len(frames) == 0:
        raise AdaptError("no frames to adapt on")
    device = torch.device(cfg.device)
    base_model.eval()
    model = copy.deepcopy(base_model).to(device).eval()
    chosen = select_parameters(model, cfg.params)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in chosen.values():
        p.requires_grad_(True)
    params = list(chosen.values())
    opt = build_optimizer(params, cfg.optimizer, cfg.lr)

    start = time.perf_counter()
    posts = _teacher_posteriors(model, frames, teacher, device, cfg.teacher_cache_mb)
    seconds = time.perf_counter() - start
    loss_before = _evaluate(model, frames, posts, device)
    gen = torch.Generator().manual_seed(cfg.seed)
    n, steps = len(frames), 0
    start = time.perf_counter()
    for _epoch in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen).numpy()
        for b0 in range(0, n, cfg.batch_size):
            idx = perm[b0 : b0 + cfg.batch_size]
            x = frames.inputs(idx).to(device)
            logits = model(x)
            loss = _task_loss(logits, frames, idx, x, posts)
            if cfg.kl_weight > 0:
                with torch.no_grad():
                    log_si = F.log_softmax(base_model(x).float(), dim=-1)
                log_ad = F.log_softmax(logits, dim=-1)
                kl = F.kl_div(log_ad, log_si, log_target=True, reduction="batchmean")
                loss = loss + cfg.kl_weight * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds += time.perf_counter() - start
    for p in model.parameters():
        p.requires_grad_(False)
    loss_after = _evaluate(model, frames, posts, device)
    state = {name: p.detach().to("cpu").clone() for name, p in chosen.items()}
    stats = AdaptStats(
        frames=n,
        adapted_params=sum(t.numel() for t in state.values()),
        loss_before=loss_before,
        loss_after=loss_after,
        seconds=seconds,
        steps=steps,
        utts=len(frames.utts),
    )
    return AdaptResult(state=state, model=model, stats=stats)


def stats_dict(stats: AdaptStats) -> dict[str, Any]:
    """``AdaptStats`` as a JSON-ready dict."""
    return asdict(stats)
