"""The training set held on the training device (``train-nnet --data-on-device``).

At AMI scale the data path, not the network, decides how fast a GPU trains (reading, CMVN,
splicing and shuffling 29M frames per epoch on the CPU). :class:`DeviceFrameDataset` loads every
training utterance once (features CMVN'd by :class:`~pykd.data.frames.UtteranceSource`, edge
padded, stored in ``dtype``: float16 by default, ~2.3 GB for AMI's 29M x 40), with its targets
(pdf-ids, and the cached teacher posteriors when there are some) in one tensor each on the
device. An epoch is then a list of row indices; a batch is spliced on the device by gathering
``rows + (-left .. right)`` (no spliced copy of the set is ever made).

The row order is the streaming :class:`~pykd.data.frames.FrameShuffleDataset`'s: the same
utterance order (:func:`~pykd.data.frames.epoch_utterance_order`), the same shuffle buffers
filled until ``buffer_frames`` and permuted by the same generator, the same batches. With
``dtype=float32`` both paths give the same batches, hence the same model for the same seed; with
float16 the features are rounded to 11 significant bits (CMVN'd fbank: ~1e-3 absolute).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pykd.data.frames import (
    Batch,
    EpochStats,
    UtteranceSource,
    buffer_rng,
    epoch_utterance_order,
    shard_info,
)
from pykd.frontend.splice import context_offsets, pad_edges

log = logging.getLogger(__name__)

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
HEADROOM = 0.8  # of the free memory the set may take; the rest is the network's


class DataDoesNotFit(RuntimeError):
    """The training set needs more memory on the device than is free."""


@dataclass(frozen=True)
class _Layout:
    """Where each utterance's frames are in the device tensors (rows of real frames)."""

    starts: dict[str, int]  # utterance -> row of its first frame
    lengths: dict[str, int]  # utterance -> frames


def device_free_bytes(device: torch.device) -> int:
    """Free memory on ``device``: CUDA's free memory, or the host's MemAvailable for the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def bytes_needed(
    frames: int, utterances: int, feat_dim: int, splice: int, dtype: str, top_k: int = 0
) -> int:
    """Device bytes for a set of ``frames`` frames: features (with edge padding), pdf-ids, the
    epoch's row order and, with cached teacher posteriors, k ids + probabilities per frame."""
    rows = frames + utterances * 2 * splice
    item = torch.empty(0, dtype=DTYPES[dtype]).element_size()
    return rows * (feat_dim * item + 8) + frames * 8 + rows * top_k * 8


class DeviceFrameDataset:
    """Frame-shuffled mini-batches of a training set held on ``device`` (module doc).

    Built by :meth:`load`; iterating gives ``(x, y)`` or ``(x, y, teacher_ids, teacher_probs)``
    batches already on the device, as :class:`~pykd.data.frames.FrameShuffleDataset` does on
    the CPU.
    """

    def __init__(
        self,
        source: UtteranceSource,
        utts: Sequence[str],
        device: torch.device,
        *,
        batch_size: int = 256,
        buffer_frames: int = 100_000,
        seed: int = 0,
        dtype: str = "float16",
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r} (one of {', '.join(DTYPES)})")
        self.source = source
        self.utts = list(utts)
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.buffer_frames = max(int(buffer_frames), 1)
        self.seed = int(seed)
        self.dtype = dtype
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.epoch_utts = 0  # utterances of this rank's share of the epoch
        self.last_stats: EpochStats | None = None
        self.offsets = torch.from_numpy(context_offsets(source.left, source.right)).to(device)
        self.feats: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.teacher_ids: torch.Tensor | None = None
        self.teacher_probs: torch.Tensor | None = None
        self.layout = _Layout({}, {})
        self.load_stats = EpochStats()

    # ----- loading -----
    @functools.cached_property
    def _max_frames(self) -> dict[str, int]:
        return {u: self.source.max_frames(u) for u in self.utts}

    def check_fits(self) -> int:
        """Bytes the set will take (an upper bound from the targets' lengths); raises
        :class:`DataDoesNotFit` when that is more than ``HEADROOM`` of the free memory."""
        frames = sum(self._max_frames.values())
        posts = self.source.teacher_posts
        first = next((u for u in self.utts if u in posts), None) if posts is not None else None
        top_k = int(posts[first][0].shape[1]) if posts is not None and first is not None else 0
        splice = max(self.source.left, self.source.right)
        need = bytes_needed(frames, len(self.utts), self.source.feat_dim, splice, self.dtype, top_k)
        free = device_free_bytes(self.device)
        if need > HEADROOM * free:
            raise DataDoesNotFit(
                f"the training set ({len(self.utts)} utterances, {frames} frames) needs "
                f"{need / 1e9:.2f} GB on {self.device} in {self.dtype}, {free / 1e9:.2f} GB is "
                f"free (at most {HEADROOM:.0%} of it is used for data)"
            )
        return need

    def load(self, log_every: int = 20_000) -> DeviceFrameDataset:
        """Read every utterance (CMVN'd, edge padded) into the device tensors; returns self."""
        self.check_fits()
        left, right = self.source.left, self.source.right
        cap = sum(n + left + right for n in self._max_frames.values() if n)
        dim = self.source.feat_dim
        dt = DTYPES[self.dtype]
        feats = torch.empty((cap, dim), dtype=dt, device=self.device)
        y = torch.full((cap,), -1, dtype=torch.int64, device=self.device)
        ids = probs = None
        row = 0
        stats = EpochStats()
        for n, utt in enumerate(self.utts, 1):
            loaded = self.source.load(utt, stats)
            if loaded is None:
                continue
            x, labels = loaded
            t = len(x)
            padded = torch.from_numpy(pad_edges(x, left, right)).to(self.device, dt)
            feats[row : row + len(padded)] = padded
            first = row + left
            if labels.dtype.names:  # with cached teacher posteriors
                if ids is None:
                    k = labels["ids"].shape[1]
                    ids = torch.zeros((cap, k), dtype=torch.int32, device=self.device)
                    probs = torch.zeros((cap, k), dtype=torch.float32, device=self.device)
                assert probs is not None
                ids[first : first + t] = torch.from_numpy(labels["ids"]).to(self.device)
                probs[first : first + t] = torch.from_numpy(labels["probs"]).to(self.device)
                labels = labels["y"]
            y[first : first + t] = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(
                self.device
            )
            self.layout.starts[utt] = first
            self.layout.lengths[utt] = t
            row += len(padded)
            if log_every and n % log_every == 0:
                log.info("data on %s: %d/%d utterances loaded", self.device, n, len(self.utts))
        self.feats, self.y = feats[:row], y[:row]
        self.teacher_ids = None if ids is None else ids[:row]
        self.teacher_probs = None if probs is None else probs[:row]
        self.load_stats = stats
        size = sum(
            t.numel() * t.element_size()
            for t in (self.feats, self.y, self.teacher_ids, self.teacher_probs)
            if t is not None
        )
        log.info(
            "data on %s: %d utterances, %d frames, %.1f MB (%s features%s); %s",
            self.device, stats.utts_used, stats.frames, size / 1e6, self.dtype,
            ", cached teacher posteriors" if ids is not None else "", stats.summary(),
        )  # fmt: skip
        return self

    # ----- epochs -----
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (the shuffle order depends on seed and epoch)."""
        self.epoch = int(epoch)

    def epoch_rows(self) -> torch.Tensor:
        """This epoch's frame rows in batch order (the streaming path's order, module doc)."""
        shard, num_shards = shard_info(self.rank, self.world_size)
        order = epoch_utterance_order(
            self.utts, self.source.targets or {}, self.seed, self.epoch, shard, num_shards
        )
        rng = buffer_rng(self.seed, self.epoch, shard)
        parts: list[np.ndarray] = []
        buffer: list[np.ndarray] = []
        buffered = 0
        self.epoch_utts = 0
        for utt in order:
            start = self.layout.starts.get(utt)
            if start is None:  # skipped when loading (counted then)
                continue
            self.epoch_utts += 1
            t = self.layout.lengths[utt]
            buffer.append(np.arange(start, start + t, dtype=np.int64))
            buffered += t
            if buffered >= self.buffer_frames:
                rows = np.concatenate(buffer)
                parts.append(rows[rng.permutation(len(rows))])
                buffer, buffered = [], 0
        if buffer:
            rows = np.concatenate(buffer)
            parts.append(rows[rng.permutation(len(rows))])
        rows = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if self.drop_last:
            rows = rows[: len(rows) - len(rows) % self.batch_size]
        return torch.from_numpy(rows).to(self.device)

    def __len__(self) -> int:
        """Batches per epoch (under DDP: about this rank's share, for progress lines)."""
        frames = sum(self.layout.lengths.values()) // shard_info(self.rank, self.world_size)[1]
        if self.drop_last:
            return frames // self.batch_size
        return -(-frames // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[Batch]:
        """This epoch's batches from batch ``start`` on (a resumed epoch skips by index)."""
        if self.feats is None:
            raise RuntimeError("DeviceFrameDataset.load() was not called")
        rows = self.epoch_rows()
        bs = self.batch_size
        stats = EpochStats(epoch=self.epoch, frames=len(rows))
        for first in range(start * bs, len(rows), bs):
            yield self.batch(rows[first : first + bs])
        stats.batches = -(-len(rows) // bs)
        stats.utts_used = stats.utts_seen = self.epoch_utts
        self.last_stats = stats
        log.info("%s", stats.summary())

    def batch(self, rows: torch.Tensor) -> Batch:
        """Spliced float32 inputs and the targets of frame ``rows``."""
        assert self.feats is not None and self.y is not None
        idx = rows[:, None] + self.offsets[None, :]
        x = self.feats[idx].reshape(len(rows), -1).float()
        if self.teacher_ids is None:
            return x, self.y[rows]
        assert self.teacher_probs is not None
        return x, self.y[rows], self.teacher_ids[rows].long(), self.teacher_probs[rows]
