"""Bootstrap confidence of WERs (pykd.report.bootstrap): exact cases, decode-dir reading, and
the same figures as Kaldi's compute-wer-bootci (Kaldi tier)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from kaldi_tools import kaldi

from pykd.report.bootstrap import (
    UtteranceErrors,
    bootstrap_wer,
    compare_paired,
    decode_dir_errors,
    probability_of_improvement,
    utterance_errors,
)


def _errors(per_utt: list[int], words: int = 10) -> UtteranceErrors:
    n = len(per_utt)
    return UtteranceErrors(
        tuple(f"u{i:03d}" for i in range(n)), np.array(per_utt), np.full(n, words)
    )


def test_probability_of_improvement_exact_case() -> None:
    """New is better on 3 of 7 utterances and never worse: it improves on every resampled set
    that holds one of the 3, i.e. with probability 1 - (4/7)^7; equal systems never improve."""
    base, new = _errors([2, 2, 1, 1, 1, 1, 2]), _errors([1, 1, 1, 1, 1, 1, 1])
    assert probability_of_improvement(base, new) == pytest.approx(1 - (4 / 7) ** 7, abs=0.01)
    assert probability_of_improvement(new, base) == 0.0
    assert probability_of_improvement(base, base) == 0.0


def test_paired_difference_interval() -> None:
    """KD - CE on the same draws: the whole set's difference, a 95% interval around it that
    stays below zero when the new system never errs more, and none for identical systems."""
    base, new = _errors([2, 2, 1, 1, 1, 1, 2] * 10), _errors([1, 1, 1, 1, 1, 1, 1] * 10)
    found = compare_paired(base, new)
    assert found.difference == pytest.approx(new.wer - base.wer)  # -30 errors / 700 words
    assert found.low < found.difference < found.high < 0.0
    # the difference per resampled set is -10 x (share of the 3-in-7 utterances): its sd is
    # 10 sqrt(3/7 x 4/7 / 70)
    assert found.high - found.low == pytest.approx(2 * 1.96 * 10 * np.sqrt(12 / 49 / 70), rel=0.1)
    assert found.probability_of_improvement == 1.0
    same = compare_paired(base, base)
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)
    assert compare_paired(new, base).low > 0.0


def test_bootstrap_wer_interval() -> None:
    """Every utterance with the same error rate: no spread; otherwise the interval is that of
    the WER over resampled sets (+-1.96 sd of a mean over n utterances of equal length)."""
    mean, half = bootstrap_wer(_errors([1] * 50))
    assert mean == pytest.approx(10.0) and half == pytest.approx(0.0)
    rates = np.tile([0, 1, 2, 3], 50)  # errors per 10-word utterance
    mean, half = bootstrap_wer(_errors(list(rates)))
    assert mean == pytest.approx(15.0, abs=0.2)
    assert half == pytest.approx(1.96 * 10 * rates.std() / np.sqrt(len(rates)), rel=0.05)


def test_errors_need_the_same_references() -> None:
    with pytest.raises(ValueError, match="different references"):
        probability_of_improvement(_errors([1, 2]), _errors([1, 2, 3]))


def test_decode_dir_errors_reads_score_sh_files(tmp_path: Path) -> None:
    """test_filt.txt + penalty_<wip>/<lmwt>.txt -> per-utterance errors (non-scored words
    dropped, a missing hypothesis = all deleted); a missing file is named."""
    scoring = tmp_path / "decode_dev" / "scoring_kaldi"
    (scoring / "penalty_0.5").mkdir(parents=True)
    (scoring / "test_filt.txt").write_text("a x y z\nb p q\nc r\n")
    (scoring / "penalty_0.5" / "11.txt").write_text("a x !SIL z w\nb p q\n")
    errs = decode_dir_errors(tmp_path / "decode_dev", 11, "0.5")
    assert errs.utts == ("a", "b", "c")
    assert errs.errors.tolist() == [2, 0, 1] and errs.words.tolist() == [3, 2, 1]
    assert errs.wer == pytest.approx(50.0)
    with pytest.raises(FileNotFoundError, match="penalty_0.0/11.txt missing"):
        decode_dir_errors(tmp_path / "decode_dev", 11, "0.0")


def _random_pair(n_utts: int) -> tuple[dict, dict, dict]:
    """References and two hypothesis sets with random word errors (the second fewer)."""
    rng = np.random.default_rng(7)
    refs, hyps = {}, ({}, {})
    for i in range(n_utts):
        words = [f"w{rng.integers(50)}" for _ in range(rng.integers(3, 15))]
        refs[f"utt{i:04d}"] = words
        for hyp, p in zip(hyps, (0.12, 0.11), strict=True):
            out = []
            for w in words:
                r = rng.random()
                if r < p / 2:
                    out.append("junk")  # substitution
                elif r < 3 * p / 4:
                    continue  # deletion
                elif r < p:
                    out += [w, "extra"]  # insertion
                else:
                    out.append(w)
            hyp[f"utt{i:04d}"] = out
    return refs, hyps[0], hyps[1]


@pytest.mark.kaldi
def test_same_figures_as_kaldis_compute_wer_bootci(kaldi_root: Path, tmp_path: Path) -> None:
    """On the same texts, Kaldi's compute-wer-bootci (10,000 replications) and ours agree on
    each WER's bootstrap mean and 95% interval and on the probability of improvement, to the
    Monte Carlo noise of 10,000 draws."""
    refs, hyp1, hyp2 = _random_pair(300)
    for name, table in (("ref", refs), ("hyp1", hyp1), ("hyp2", hyp2)):
        lines = (f"{u} {' '.join(w)}\n" for u, w in table.items())
        (tmp_path / f"{name}.txt").write_text("".join(lines))
    tables = " ".join(f"ark:{tmp_path}/{name}.txt" for name in ("ref", "hyp1", "hyp2"))
    out = kaldi(kaldi_root, f"compute-wer-bootci {tables}")
    sets = re.findall(r"Set\d: %WER ([0-9.]+) 95% Conf Interval \[ ([0-9.]+), ([0-9.]+) \]", out)
    prob = re.search(r"Probability of Set2 improving Set1: ([0-9.]+)", out)
    assert len(sets) == 2 and prob, out
    ours = [utterance_errors(refs, h) for h in (hyp1, hyp2)]
    for (k_mean, k_low, k_high), errs in zip(sets, ours, strict=True):
        mean, half = bootstrap_wer(errs)
        assert mean == pytest.approx(float(k_mean), abs=0.05)
        assert half == pytest.approx((float(k_high) - float(k_low)) / 2, rel=0.05)
    assert 100 * probability_of_improvement(*ours) == pytest.approx(float(prob.group(1)), abs=2.0)
