"""Cepstral mean (and variance) normalisation with Kaldi's statistics format.

Stats for one speaker (or utterance) are a ``(2, dim + 1)`` float64 matrix: row 0 holds the
per-dimension sums and the frame count in the last column, row 1 the sums of squares and 0.
This is what ``compute-cmvn-stats`` writes (a "DM" matrix in binary arks).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pykd.features.ark import ArkScpWriter

log = logging.getLogger(__name__)

VAR_FLOOR = 1.0e-20  # Kaldi's floor on the variance in apply-cmvn


def acc_cmvn_stats(feats: np.ndarray, stats: np.ndarray | None = None) -> np.ndarray:
    """Add the frames of ``feats`` ``(T, dim)`` to ``stats`` (new zeros if None); return it."""
    feats = np.asarray(feats)
    if feats.ndim != 2:
        raise ValueError(f"features must be a matrix, got shape {feats.shape}")
    dim = feats.shape[1]
    if stats is None:
        stats = np.zeros((2, dim + 1), dtype=np.float64)
    elif stats.shape != (2, dim + 1):
        raise ValueError(f"CMVN stats have shape {stats.shape}, features have dim {dim}")
    f32 = feats.astype(np.float32, copy=False)
    # Kaldi adds frame after frame to its double stats (squares taken in float): the same order
    # of additions (a running sum from the current stats, not numpy's pairwise sum) gives the
    # same bits, also for a speaker's stats summed over many utterances.
    for row, values in ((0, f32), (1, f32 * f32)):
        seq = np.vstack([stats[row, :dim], values.astype(np.float64)])
        stats[row, :dim] = np.cumsum(seq, axis=0)[-1]
    stats[0, dim] += feats.shape[0]
    return stats


def apply_cmvn(feats: np.ndarray, stats: np.ndarray, norm_vars: bool = False) -> np.ndarray:
    """Normalise ``feats`` with Kaldi CMVN ``stats`` (means; variances too if ``norm_vars``).

    Same arithmetic as Kaldi's apply-cmvn: offsets/scales computed in float64, applied in
    float32. Returns a new float32 matrix.
    """
    stats = np.asarray(stats, dtype=np.float64)
    feats = np.asarray(feats, dtype=np.float32)
    dim = feats.shape[1]
    if stats.shape != (2, dim + 1):
        raise ValueError(f"CMVN stats have shape {stats.shape}, features have dim {dim}")
    count = stats[0, dim]
    if count < 1.0:
        raise ValueError(f"insufficient CMVN stats (frame count {count})")
    if not norm_vars:
        # Kaldi: offset (float32) += float32(-1/count) * sums (double)
        alpha = np.float64(np.float32(-1.0 / count))
        return feats + (alpha * stats[0, :dim]).astype(np.float32)
    mean = stats[0, :dim] / count
    var = stats[1, :dim] / count - mean * mean
    if (var < VAR_FLOOR).any():
        log.warning("flooring %d CMVN variances at %g", int((var < VAR_FLOOR).sum()), VAR_FLOOR)
        var = np.maximum(var, VAR_FLOOR)
    scale = 1.0 / np.sqrt(var)
    if not np.isfinite(scale).all():
        raise ValueError("NaN or inf in the CMVN variance scale")
    offset = -(mean * scale)
    return feats * scale.astype(np.float32) + offset.astype(np.float32)


@dataclass
class CmvnResult:
    """Stats per speaker (or utterance) plus what went wrong."""

    stats: dict[str, np.ndarray] = field(default_factory=dict)
    num_utts_done: int = 0
    num_errors: int = 0


def compute_cmvn_stats(
    feats: Iterable[tuple[str, np.ndarray]], spk2utt: Mapping[str, list[str]] | None = None
) -> CmvnResult:
    """Per-speaker stats (``spk2utt`` given) or per-utterance stats (None), in Kaldi's order.

    Utterances listed in spk2utt without features are warned about and counted; a speaker
    with no features at all gets no stats (as compute-cmvn-stats does).
    """
    result = CmvnResult()
    if spk2utt is None:
        for utt, mat in feats:
            result.stats[utt] = acc_cmvn_stats(mat)
            result.num_utts_done += 1
        return result
    # Each speaker's utterances are added in spk2utt order (as Kaldi reads them), streaming:
    # a matrix is held only until the utterances before it in its speaker's list have come
    # (none when feats and spk2utt are both sorted), so memory does not grow with the corpus.
    utt2spk = {utt: spk for spk, utts in spk2utt.items() for utt in utts}
    acc: dict[str, np.ndarray] = {}
    pos = dict.fromkeys(spk2utt, 0)
    held: dict[str, np.ndarray] = {}

    def advance(spk: str, final: bool) -> None:
        utts, i = spk2utt[spk], pos[spk]
        while i < len(utts) and (utts[i] in held or final):
            mat = held.pop(utts[i], None)
            if mat is None:
                log.warning("no features for utterance '%s' of speaker '%s'", utts[i], spk)
                result.num_errors += 1
            else:
                acc[spk] = acc_cmvn_stats(mat, acc.get(spk))
                result.num_utts_done += 1
            i += 1
        pos[spk] = i

    for utt, mat in feats:
        spk = utt2spk.get(utt)
        if spk is None:
            continue
        held[utt] = mat
        advance(spk, final=False)
    for spk in spk2utt:
        advance(spk, final=True)
        if spk in acc:
            result.stats[spk] = acc[spk]
        else:
            log.warning("no stats accumulated for speaker '%s'", spk)
    return result


def read_spk2utt(path: str | Path) -> dict[str, list[str]]:
    """Read spk2utt (an ``ark:`` prefix, as Kaldi scripts pass it, is allowed)."""
    text = str(path)
    if text.startswith("ark:") or text.startswith("ark,t:"):
        text = text.split(":", 1)[1]
    out: dict[str, list[str]] = {}
    with open(text, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            fields = line.split()
            if len(fields) < 2:
                raise ValueError(f"{text}:{lineno}: expected 'speaker utt1 utt2 ...'")
            if fields[0] in out:
                raise ValueError(f"{text}:{lineno}: duplicate speaker '{fields[0]}'")
            out[fields[0]] = fields[1:]
    return out


def write_cmvn(result: CmvnResult, ark_path: str | Path, scp_path: str | Path) -> None:
    """Write stats as float64 ("DM") matrices to ark + scp, atomically."""
    with ArkScpWriter(ark_path, scp_path) as writer:
        for key, stats in result.stats.items():
            writer.write(key, np.asarray(stats, dtype=np.float64))
