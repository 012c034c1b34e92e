"""Kaldi Posterior tables (pykd/kaldi/posterior_io.py): the cached teacher posteriors' format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kaldi_tools import kaldi

from pykd.kaldi.posterior_io import (
    PosteriorFormatError,
    PosteriorTable,
    read_posterior_ark,
    write_posteriors,
)


def _items(rng: np.random.Generator, k: int = 4) -> list[tuple[str, tuple[np.ndarray, np.ndarray]]]:
    return [
        (f"utt{i}", (rng.integers(0, 50, (20 + i, k)).astype(np.int32),
                     rng.random((20 + i, k)).astype(np.float32)))
        for i in range(3)
    ]  # fmt: skip


def test_round_trip_and_random_access(tmp_path: Path) -> None:
    items = _items(np.random.default_rng(0))
    assert write_posteriors(tmp_path / "p.ark", tmp_path / "p.scp", items) == 20 + 21 + 22
    table = PosteriorTable(tmp_path / "p.scp")
    for utt, (ids, weights) in reversed(items):  # any order: records found by their offsets
        got_ids, got_w = table[utt]
        assert (got_ids == ids).all() and (got_w == weights).all()
    assert [u for u, _ in read_posterior_ark(tmp_path / "p.ark")] == ["utt0", "utt1", "utt2"]


def test_truncated_table_is_named(tmp_path: Path) -> None:
    write_posteriors(tmp_path / "p.ark", tmp_path / "p.scp", _items(np.random.default_rng(1)))
    data = (tmp_path / "p.ark").read_bytes()
    (tmp_path / "p.ark").write_bytes(data[: len(data) - 30])
    with pytest.raises(PosteriorFormatError, match="p.ark: utterance utt2: truncated or corrupt"):
        PosteriorTable(tmp_path / "p.scp")["utt2"]


@pytest.mark.kaldi
def test_kaldi_reads_ours_and_we_read_kaldis(tmp_path: Path, kaldi_root: Path) -> None:
    """copy-post reads pykd's table (same pairs in its text form); pykd reads what copy-post
    writes, frames of different sizes included."""
    items = _items(np.random.default_rng(2), k=3)
    write_posteriors(tmp_path / "p.ark", tmp_path / "p.scp", items)
    text = kaldi(kaldi_root, f"copy-post scp:{tmp_path}/p.scp ark,t:-")
    for (utt, (ids, weights)), line in zip(items, text.splitlines(), strict=True):
        key, _, rest = line.partition(" ")
        frames = [f.split() for f in rest.replace("[", "").split("]") if f.strip()]
        assert key == utt and len(frames) == len(ids)
        np.testing.assert_array_equal([[int(x) for x in f[0::2]] for f in frames], ids)
        np.testing.assert_allclose(
            [[float(x) for x in f[1::2]] for f in frames], weights, rtol=1e-6
        )
    kaldi(
        kaldi_root,
        f"printf 'a [ 1 0.5 2 0.5 ] [ 3 1 ]\\nb [ 7 0.25 ]\\n' | copy-post ark,t:- "
        f"ark,scp:{tmp_path}/k.ark,{tmp_path}/k.scp",
    )
    ids, weights = PosteriorTable(tmp_path / "k.scp")["a"]
    assert ids.tolist() == [[1, 2], [3, 0]] and weights.tolist() == [[0.5, 0.5], [1.0, 0.0]]
