"""Streaming frame-level training data: feats.scp + CMVN + splicing + pdf targets.

* :class:`UtteranceSource` loads one utterance: features (``feats.scp``), per-speaker mean
  normalisation (``cmvn.scp`` + ``utt2spk``, Kaldi ``apply-cmvn``), pdf-id targets; it checks
  the feature/target lengths (difference <= ``length_tolerance`` frames: trimmed; more: skipped)
  and counts what it skipped in an :class:`EpochStats`.
* :class:`FrameShuffleDataset` is a ``torch.utils.data.IterableDataset`` for training: per
  epoch it reads the utterances in a seeded shuffled order (sharded by DDP rank/world size and
  DataLoader worker at utterance level), fills a frame buffer of ``buffer_frames`` frames, and
  yields mini-batches of ``batch_size`` frames drawn in random order from the buffer (the
  Kaldi nnet1 "randomizer" scheme). Each frame is yielded exactly once per epoch.
* :class:`SequentialFrameDataset` is the deterministic, unshuffled counterpart (CV / eval).

Memory: the buffer holds *unspliced* CMVN'd frames (edge-padded per utterance) and splices only
the rows of the batch being yielded, so it needs about ``(buffer_frames + longest utterance) *
(4 * feat_dim + 12)`` bytes (x2 while the buffer is concatenated): ~35 MB for 100k frames of
40-dim fbank, independent of the corpus size. Only the pdf-id targets (4 bytes per frame, the
same as Kaldi keeping alignments in memory) scale with the corpus.

Batches are ``(x, y)``: ``x`` float32 ``(B, feat_dim * (left + 1 + right))``, ``y`` int64
``(B,)``. For knowledge distillation either the trainer calls the teacher on ``x`` itself
(teacher and student see the same spliced input), or the source has the teacher's cached top-k
posteriors (``teacher_posts``, a :class:`pykd.kaldi.posterior_io.PosteriorTable`) and batches
are ``(x, y, teacher_ids, teacher_probs)`` (``(B, k)`` int64 / float32), shuffled with their
frames.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from pykd.data.targets import match_lengths
from pykd.frontend.features import SpeakerCmvn, check_finite
from pykd.frontend.spec import InputSpec
from pykd.frontend.splice import pad_edges, splice, splice_padded
from pykd.io.compressed import kaldiio
from pykd.io.datadir import c_sorted, read_table
from pykd.kaldi.posterior_io import Posterior
from pykd.train.losses import IGNORE_INDEX

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, ...]


@dataclass
class EpochStats:
    """What one pass over (a shard of) the utterances used and skipped."""

    epoch: int = 0
    utts_seen: int = 0
    utts_used: int = 0
    frames: int = 0
    batches: int = 0
    no_alignment: int = 0
    untranscribed: int = 0  # used with the teacher's posteriors only
    length_mismatch: int = 0
    trimmed_utts: int = 0
    trimmed_frames: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One log line."""
        return (
            f"epoch {self.epoch}: {self.utts_used}/{self.utts_seen} utterances, "
            f"{self.frames} frames, {self.batches} batches"
            + (f" ({self.untranscribed} untranscribed)" if self.untranscribed else "")
            + f"; skipped {self.no_alignment} without "
            f"alignment, {self.length_mismatch} with a feature/alignment length mismatch; "
            f"trimmed {self.trimmed_frames} frames in {self.trimmed_utts} utterances"
        )

    def as_dict(self) -> dict:
        """Counts only (no utterance list), e.g. for a JSON progress log."""
        d = asdict(self)
        d.pop("skipped")
        return d


class UtteranceSource:
    """Random access to CMVN'd features and pdf targets of the utterances of a data dir.

    ``targets`` maps utterance -> pdf-ids (see :func:`pykd.data.targets.load_pdf_alignments`);
    None gives features only (y is None). ``cmvn_scp`` None: no normalisation.
    ``teacher_posts`` maps utterance -> the teacher's cached top-k posteriors: the targets
    then come as one structured row per frame (fields ``y``, ``ids``, ``probs``).
    """

    def __init__(
        self,
        feats_scp: str | os.PathLike,
        targets: Mapping[str, np.ndarray] | None = None,
        *,
        cmvn_scp: str | os.PathLike | None = None,
        utt2spk: str | os.PathLike | Mapping[str, str] | None = None,
        norm_vars: bool = False,
        left_context: int = 5,
        right_context: int = 5,
        length_tolerance: int = 2,
        teacher_posts: Mapping[str, Posterior] | None = None,
    ) -> None:
        self.feats_scp = os.fspath(feats_scp)
        self.targets = targets
        self.teacher_posts = teacher_posts
        self.left = int(left_context)
        self.right = int(right_context)
        if self.left < 0 or self.right < 0:
            raise ValueError("context must be >= 0")
        self.length_tolerance = int(length_tolerance)
        self.norm_vars = norm_vars
        self.utterances: list[str] = list(read_table(self.feats_scp).keys())
        mode = "none" if cmvn_scp is None else ("meanvar" if norm_vars else "mean")
        if cmvn_scp is not None and utt2spk is None:
            utt2spk = {u: u for u in self.utterances}  # per-utterance stats
        self.cmvn = SpeakerCmvn(cmvn_scp, utt2spk, mode)
        self._feats = None
        self._dim: int | None = None

    @classmethod
    def of_data_dir(
        cls,
        data_dir: str | os.PathLike,
        targets: Mapping[str, np.ndarray] | None,
        spec: InputSpec,
        length_tolerance: int = 2,
        teacher_posts: Mapping[str, Posterior] | None = None,
    ) -> UtteranceSource:
        """``data_dir``'s utterances as a network of input ``spec`` reads them (feats.scp;
        cmvn.scp by utt2spk unless the spec's CMVN is none)."""
        data = Path(data_dir)
        cmvn_scp, utt2spk = data / "cmvn.scp", data / "utt2spk"
        if spec.cmvn != "none" and not cmvn_scp.is_file():
            raise FileNotFoundError(
                f"missing {cmvn_scp} (the network's input uses cmvn={spec.cmvn})"
            )
        return cls(
            data / "feats.scp",
            targets,
            cmvn_scp=cmvn_scp if spec.cmvn != "none" else None,
            utt2spk=utt2spk if utt2spk.is_file() else None,
            norm_vars=spec.norm_vars,
            left_context=spec.splice,
            right_context=spec.splice,
            length_tolerance=length_tolerance,
            teacher_posts=teacher_posts,
        )

    def __getstate__(self) -> dict:  # DataLoader workers: reopen the scp in the worker
        state = self.__dict__.copy()
        state["_feats"] = None
        return state

    @property
    def feat_dim(self) -> int:
        """Dimension of the (unspliced) features."""
        if self._dim is None:
            self._dim = int(self._read(self.utterances[0]).shape[1])
        return self._dim

    @property
    def input_dim(self) -> int:
        """Dimension of a spliced row (network input)."""
        return self.feat_dim * (self.left + 1 + self.right)

    def _read(self, utt: str) -> np.ndarray:
        """An utterance's features, CMVN applied; FeatureInputError naming the utterance and file
        when they are not finite or do not fit the CMVN stats (the loss would only say NaN)."""
        if self._feats is None:
            self._feats = kaldiio.load_scp(self.feats_scp)
        feats = np.asarray(self._feats[utt], dtype=np.float32)
        where = f"utterance {utt} of {self.feats_scp}"
        check_finite(feats, where)
        return self.cmvn.apply(utt, feats, where)

    def load(
        self, utt: str, stats: EpochStats | None = None
    ) -> tuple[np.ndarray, np.ndarray | None] | None:
        """``(feats (T, D) float32, pdf-ids (T,) int64 or None)``, or None if skipped (counted).

        With cached teacher posteriors, an utterance that has them but no alignment is
        *untranscribed*: its frames come with pdf-id ``IGNORE_INDEX`` (the hard loss ignores
        them; the teacher's posteriors teach the student)."""
        if stats is not None:
            stats.utts_seen += 1
        y = None
        if self.targets is not None:
            if utt in self.targets:
                y = np.asarray(self.targets[utt], dtype=np.int64)
            elif self.is_untranscribed(utt):
                pass  # its length comes from the features; the posteriors are matched below
            else:
                if stats is not None:
                    stats.no_alignment += 1
                    stats.skipped.append(utt)
                log.debug("%s: no alignment, skipped", utt)
                return None
        feats = self._read(utt)
        if self._dim is None:
            self._dim = feats.shape[1]
        elif feats.shape[1] != self._dim:
            raise ValueError(f"utterance {utt}: feature dim {feats.shape[1]} != {self._dim}")
        if self.targets is not None and y is None:  # untranscribed
            y = np.full(len(feats), IGNORE_INDEX, dtype=np.int64)
            if stats is not None:
                stats.untranscribed += 1
        if y is not None:
            matched = match_lengths(feats, y, self.length_tolerance)
            if matched is None:
                log.debug("%s: %d frames vs %d targets, skipped", utt, len(feats), len(y))
                if stats is not None:
                    stats.length_mismatch += 1
                    stats.skipped.append(utt)
                return None
            if len(feats) != len(y) and stats is not None:
                stats.trimmed_utts += 1
                stats.trimmed_frames += abs(len(feats) - len(y))
            feats, y = matched
            if self.teacher_posts is not None:
                packed = self._with_teacher_posts(utt, y, stats)
                if packed is None:
                    return None
                feats, y = feats[: len(packed)], packed
        if len(feats) == 0:
            return None
        if stats is not None:
            stats.utts_used += 1
            stats.frames += len(feats)
        return feats, y

    def max_frames(self, utt: str) -> int:
        """An upper bound of the frames :meth:`load` gives for ``utt`` (0: it is skipped)."""
        if self.targets is None:
            return 0
        if utt in self.targets:
            return len(self.targets[utt])
        if self.is_untranscribed(utt):
            assert self.teacher_posts is not None
            return len(self.teacher_posts[utt][0])
        return 0

    def is_untranscribed(self, utt: str) -> bool:
        """Whether ``utt`` trains from the teacher's posteriors alone (no alignment)."""
        return (
            self.targets is not None
            and utt not in self.targets
            and self.teacher_posts is not None
            and utt in self.teacher_posts
        )

    def _with_teacher_posts(
        self, utt: str, y: np.ndarray, stats: EpochStats | None
    ) -> np.ndarray | None:
        """``y`` with the utterance's cached teacher posteriors, one structured row per frame
        (lengths matched as for the alignments); None (counted) when they are missing."""
        assert self.teacher_posts is not None
        if utt not in self.teacher_posts:
            log.warning("%s: no cached teacher posteriors, skipped", utt)
            if stats is not None:
                stats.no_alignment += 1
                stats.skipped.append(utt)
            return None
        ids, probs = self.teacher_posts[utt]
        if abs(len(ids) - len(y)) > self.length_tolerance:
            log.warning("%s: %d frames vs %d teacher posteriors, skipped", utt, len(y), len(ids))
            if stats is not None:
                stats.length_mismatch += 1
                stats.skipped.append(utt)
            return None
        n = min(len(ids), len(y))
        k = ids.shape[1]
        rows = np.empty(n, dtype=[("y", "<i8"), ("ids", "<i4", (k,)), ("probs", "<f4", (k,))])
        rows["y"], rows["ids"], rows["probs"] = y[:n], ids[:n], probs[:n]
        return rows

    def spliced(self, utt: str) -> np.ndarray:
        """Whole utterance, CMVN'd and spliced (for a forward pass / log-likelihoods)."""
        return splice(self._read(utt), self.left, self.right)


def shard_info(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(shard index, number of shards) over DDP ranks x DataLoader workers."""
    if rank is None or world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world_size = 0, 1
    worker = get_worker_info()
    if worker is None:
        return rank, world_size
    return rank * worker.num_workers + worker.id, world_size * worker.num_workers


class _FrameDataset(IterableDataset):
    """Shared epoch / stats / sharding plumbing."""

    def __init__(
        self,
        source: UtteranceSource,
        utts: Sequence[str] | None,
        batch_size: int,
        *,
        rank: int | None,
        world_size: int | None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.source = source
        self.utts = list(source.utterances if utts is None else utts)
        self.batch_size = int(batch_size)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.last_stats: EpochStats | None = None
        self.history: list[EpochStats] = []

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (the shuffle order depends on seed and epoch)."""
        self.epoch = int(epoch)

    def _batch(self, x: np.ndarray, y: np.ndarray | None) -> Batch:
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        out: list[torch.Tensor] = [xt]
        if y is not None and y.dtype.names:  # with cached teacher posteriors
            out.append(torch.from_numpy(np.ascontiguousarray(y["y"])))
            out.append(torch.from_numpy(np.ascontiguousarray(y["ids"], dtype=np.int64)))
            out.append(torch.from_numpy(np.ascontiguousarray(y["probs"])))
        elif y is not None:
            out.append(torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)))
        return tuple(out)

    def _finish(self, stats: EpochStats) -> None:
        self.last_stats = stats
        self.history.append(stats)
        level = logging.WARNING if stats.no_alignment or stats.length_mismatch else logging.INFO
        log.log(level, "%s", stats.summary())


class FrameShuffleDataset(_FrameDataset):
    """Frame-shuffled mini-batches with memory bounded by ``buffer_frames`` (see module doc)."""

    def __init__(
        self,
        source: UtteranceSource,
        utts: Sequence[str] | None = None,
        *,
        batch_size: int = 256,
        buffer_frames: int = 100_000,
        seed: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__(source, utts, batch_size, rank=rank, world_size=world_size)
        if source.targets is None:
            raise ValueError("training needs targets (alignments)")
        self.buffer_frames = max(int(buffer_frames), 1)
        self.seed = int(seed)
        self.drop_last = drop_last

    def shard_utterances(self, shard: int, num_shards: int) -> list[str]:
        """This epoch's utterance order for one shard (:func:`epoch_utterance_order`)."""
        return epoch_utterance_order(
            self.utts, self.source.targets or {}, self.seed, self.epoch, shard, num_shards
        )

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[Batch]:
        """This epoch's batches from batch ``start`` on: the earlier ones are drawn (the same
        utterances read, the same random numbers used) but neither spliced nor yielded, so a
        resumed epoch continues where its checkpoint was written at the cost of reading."""
        shard, num_shards = shard_info(self.rank, self.world_size)
        rng = buffer_rng(self.seed, self.epoch, shard)
        stats = EpochStats(epoch=self.epoch)
        left, right, bs = self.source.left, self.source.right, self.batch_size
        pads: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        buffered = 0
        # rows drawn for the next batch and not yet yielded (< batch_size; from earlier buffers)
        carry_n = 0
        carry_x: list[np.ndarray] = []
        carry_y: list[np.ndarray] = []

        def drain(final: bool) -> Iterator[Batch]:
            nonlocal pads, labels, buffered, carry_n, carry_x, carry_y
            if pads:
                lengths = np.array([len(p) - left - right for p in pads])
                starts = np.concatenate([[0], np.cumsum([len(p) for p in pads])[:-1]])
                centers = np.concatenate(
                    [s + left + np.arange(n) for s, n in zip(starts, lengths, strict=True)]
                )
                big = np.concatenate(pads)
                ys = np.concatenate(labels)
                pads, labels, buffered = [], [], 0
                perm = rng.permutation(len(centers))
                pos = 0
                while pos < len(perm):
                    take = perm[pos : pos + bs - carry_n]
                    pos += len(take)
                    carry_n += len(take)
                    if stats.batches >= start:  # a batch to yield: splice its rows
                        carry_x.append(splice_padded(big, centers[take], left, right))
                        carry_y.append(ys[take])
                    if carry_n == bs:
                        yield from emit()
                del big
            if final and carry_n and not self.drop_last:
                yield from emit()

        def emit() -> Iterator[Batch]:
            nonlocal carry_n, carry_x, carry_y
            if stats.batches >= start:
                yield self._batch(np.concatenate(carry_x), np.concatenate(carry_y))
            stats.batches += 1
            carry_n, carry_x, carry_y = 0, [], []

        for utt in self.shard_utterances(shard, num_shards):
            loaded = self.source.load(utt, stats)
            if loaded is None:
                continue
            feats, y = loaded
            pads.append(pad_edges(feats, left, right))
            labels.append(y)
            buffered += len(feats)
            if buffered >= self.buffer_frames:
                yield from drain(final=False)
        yield from drain(final=True)
        self._finish(stats)


def epoch_utterance_order(
    utts: Sequence[str],
    targets: Mapping[str, np.ndarray],
    seed: int,
    epoch: int,
    shard: int = 0,
    num_shards: int = 1,
) -> list[str]:
    """One epoch's utterance order for one shard (DDP rank x DataLoader worker).

    Every shard draws the same permutation; each utterance then goes to the shard with the
    fewest frames so far, so the shards' frame counts differ by at most one utterance (DDP
    ranks stop together when one runs out of batches, and drop what the others have left).
    """
    order = np.random.default_rng([seed, epoch]).permutation(len(utts))
    if num_shards == 1:
        return [utts[i] for i in order]
    load = np.zeros(num_shards, dtype=np.int64)
    mine: list[str] = []
    for i in order:
        utt = utts[i]
        target = int(np.argmin(load))  # ties: the lowest shard index
        load[target] += len(targets.get(utt, ())) or 1
        if target == shard:
            mine.append(utt)
    return mine


def buffer_rng(seed: int, epoch: int, shard: int) -> np.random.Generator:
    """The generator of the shuffle buffers' permutations (one draw per full buffer)."""
    return np.random.default_rng([seed, epoch, shard, 1])


class SequentialFrameDataset(_FrameDataset):
    """Unshuffled batches in utterance-list order (CV / evaluation); deterministic.

    ``shard``: split the utterances across DDP ranks / workers (contiguous order kept within a
    shard); sum the per-rank counts with an all-reduce. Targets optional (x only when None).
    """

    def __init__(
        self,
        source: UtteranceSource,
        utts: Sequence[str] | None = None,
        *,
        batch_size: int = 1024,
        shard: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__(source, utts, batch_size, rank=rank, world_size=world_size)
        self.shard = shard

    def __iter__(self) -> Iterator[Batch]:
        shard, num_shards = shard_info(self.rank, self.world_size) if self.shard else (0, 1)
        stats = EpochStats(epoch=self.epoch)
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        held = 0
        has_y = self.source.targets is not None
        for utt in self.utts[shard::num_shards]:
            loaded = self.source.load(utt, stats)
            if loaded is None:
                continue
            feats, y = loaded
            xs.append(splice(feats, self.source.left, self.source.right))
            if has_y:
                ys.append(y)
            held += len(feats)
            while held >= self.batch_size:
                x_all = np.concatenate(xs)
                y_all = np.concatenate(ys) if has_y else None
                bs = self.batch_size
                stats.batches += 1
                yield self._batch(x_all[:bs], None if y_all is None else y_all[:bs])
                xs = [x_all[bs:]]
                ys = [y_all[bs:]] if has_y else []
                held -= bs
        if held:
            stats.batches += 1
            yield self._batch(np.concatenate(xs), np.concatenate(ys) if has_y else None)
        self._finish(stats)


# ---------------------------------------------------------------------------------------------
# Train / CV split
# ---------------------------------------------------------------------------------------------


def split_cv(
    utt2spk: Mapping[str, str],
    fraction: float = 0.1,
    *,
    by: str = "speaker",
    seed: int = 777,
) -> tuple[list[str], list[str]]:
    """Hold out ~``fraction`` of the utterances: ``(train_utts, cv_utts)``, both C-sorted.

    ``by="speaker"`` (as Kaldi's subset_data_dir_tr_cv.sh) holds out whole speakers, chosen in a
    seeded random order until the CV set has >= ``fraction`` of the utterances (at least one
    speaker, never all); ``by="utterance"`` holds out a seeded random ``fraction`` of them.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    utts = c_sorted(utt2spk)
    if len(utts) < 2:
        raise ValueError("need at least 2 utterances to split")
    rng = np.random.default_rng(seed)
    target = max(1, round(fraction * len(utts)))
    if by == "utterance":
        cv = {utts[i] for i in rng.permutation(len(utts))[:target]}
    elif by == "speaker":
        by_spk: dict[str, list[str]] = {}
        for u in utts:
            by_spk.setdefault(utt2spk[u], []).append(u)
        speakers = c_sorted(by_spk)
        if len(speakers) < 2:
            raise ValueError("need at least 2 speakers to split by speaker")
        cv = set()
        for i in rng.permutation(len(speakers))[:-1]:
            if len(cv) >= target:
                break
            cv.update(by_spk[speakers[i]])
    else:
        raise ValueError(f"by must be 'speaker' or 'utterance', got {by!r}")
    return [u for u in utts if u not in cv], [u for u in utts if u in cv]
