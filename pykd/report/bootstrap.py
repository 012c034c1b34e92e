"""Bootstrap confidence of WERs over utterances (Bisani & Ney, "Bootstrap estimates for
confidence intervals in ASR performance evaluation", ICASSP 2004): the method of Kaldi's
``compute-wer-bootci``.

The test set's utterances are drawn with replacement ``replications`` times; each draw gives a
WER (its errors over its reference words). One system: the mean of those WERs and a 95% interval
of +-1.96 of their standard deviation. Two systems on the same draws (paired): the probability
that the second improves on the first, the share of draws in which it makes fewer errors. Unlike
the binomial interval of one WER, the paired comparison accounts for the two systems erring on
the same hard utterances, so it is the measure for "is this seed's KD - CE difference real".
Written here (numpy) because the method is a few lines and no maintained Python package scores
Kaldi decode dirs this way; ``tests/test_kaldi_binaries.py`` checks it against Kaldi's binary.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pykd.decode.score import DEFAULT_NON_SCORED, edit_counts, filter_words, read_text

REPLICATIONS = 10_000  # compute-wer-bootci's default


@dataclass(frozen=True)
class UtteranceErrors:
    """Per-utterance word errors and reference words of one decode at one setting."""

    utts: tuple[str, ...]
    errors: np.ndarray  # int, per utterance (substitutions + deletions + insertions)
    words: np.ndarray  # int, reference words per utterance

    @property
    def wer(self) -> float:
        """The WER (%) of the whole set."""
        return 100.0 * float(self.errors.sum()) / float(self.words.sum())


def utterance_errors(refs: dict[str, list[str]], hyps: dict[str, list[str]]) -> UtteranceErrors:
    """Errors of ``hyps`` against ``refs`` per reference utterance (a missing hypothesis: every
    reference word deleted, as compute-wer's ``--mode=all``)."""
    utts = tuple(sorted(refs))
    errors = np.array([sum(edit_counts(refs[u], hyps.get(u, []))) for u in utts], dtype=np.int64)
    words = np.array([len(refs[u]) for u in utts], dtype=np.int64)
    return UtteranceErrors(utts, errors, words)


def decode_dir_errors(
    decode_dir: str | os.PathLike,
    lmwt: int,
    wip: str,
    non_scored: Sequence[str] = DEFAULT_NON_SCORED,
) -> UtteranceErrors:
    """Per-utterance errors of a scored decode dir at one setting, from the files Kaldi's
    ``score.sh`` leaves (``scoring_kaldi/test_filt.txt``, ``penalty_<wip>/<lmwt>.txt``), the
    ``non_scored`` words dropped as scoring drops them."""
    scoring = Path(decode_dir) / "scoring_kaldi"
    ref, hyp = scoring / "test_filt.txt", scoring / f"penalty_{wip}" / f"{lmwt}.txt"
    for path in (ref, hyp):
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing (score {decode_dir} first)")
    drop = set(non_scored)
    refs, hyps = (
        {u: filter_words(w, drop) for u, w in read_text(path).items()} for path in (ref, hyp)
    )
    return utterance_errors(refs, hyps)


def _draws(n_utts: int, replications: int, seed: int) -> np.ndarray:
    """replications x n_utts utterance indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, n_utts, size=(replications, n_utts))


def bootstrap_wer(
    errs: UtteranceErrors, replications: int = REPLICATIONS, seed: int = 0
) -> tuple[float, float]:
    """(mean bootstrap WER %, half-width of its 95% interval: 1.96 standard deviations)."""
    draws = _draws(len(errs.utts), replications, seed)
    wers = 100.0 * errs.errors[draws].sum(axis=1) / errs.words[draws].sum(axis=1)
    return float(wers.mean()), 1.96 * float(wers.std())


@dataclass(frozen=True)
class PairedComparison:
    """Two decodes of the same references compared on the same bootstrap draws."""

    difference: float  # WER (%) of new - WER of base on the whole set (< 0: new is better)
    low: float  # 2.5th percentile of the difference over the draws
    high: float  # 97.5th percentile
    probability_of_improvement: float  # share of draws in which new makes fewer errors


def compare_paired(
    base: UtteranceErrors, new: UtteranceErrors, replications: int = REPLICATIONS, seed: int = 0
) -> PairedComparison:
    """``new`` against ``base`` on the same resampled test sets: the WER difference, its 95%
    percentile interval and the probability of improvement."""
    if base.utts != new.utts or not np.array_equal(base.words, new.words):
        raise ValueError("compare_paired: the two decodes score different references")
    draws = _draws(len(base.utts), replications, seed)
    fewer = base.errors[draws].sum(axis=1) - new.errors[draws].sum(axis=1)
    diffs = -100.0 * fewer / base.words[draws].sum(axis=1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return PairedComparison(
        difference=new.wer - base.wer,
        low=float(low),
        high=float(high),
        probability_of_improvement=float((fewer > 0).mean()),
    )


def probability_of_improvement(
    base: UtteranceErrors, new: UtteranceErrors, replications: int = REPLICATIONS, seed: int = 0
) -> float:
    """Share of paired bootstrap draws in which ``new`` makes fewer errors than ``base`` (both
    scored against the same references)."""
    return compare_paired(base, new, replications, seed).probability_of_improvement
