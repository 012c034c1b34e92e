"""pykd.data: splicing, CMVN, pdf targets, counts/priors vs Kaldi, the frame stream, CV split."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pykd.data import (
    FrameShuffleDataset,
    SequentialFrameDataset,
    UtteranceSource,
    load_pdf_alignments,
    log_priors,
    pdf_counts,
    read_counts,
    split_cv,
    write_counts,
)
from pykd.data.priors import counts_bytes
from pykd.frontend.splice import splice
from pykd.io.datadir import read_table, write_table
from pykd.kaldi.model_io import read_alignments

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "data" / "train_fbank"
ALI = REPO / "exp" / "tri1_ali"
# Smoke checks on the default corpus's recipe outputs (./run.sh --stage 1 --stop-stage 7);
# a fresh clone (CI) has none, and the synthetic-corpus tests below cover the same code.
needs_recipe_outputs = pytest.mark.skipif(
    not (TRAIN / "cmvn.scp").is_file() or not (REPO / "exp" / "tri1" / "final.mdl").is_file(),
    reason="needs the default corpus's recipe outputs (./run.sh --stage 1 --stop-stage 7)",
)


def synthetic_utt2spk(num_spk: int = 24, utts_per_spk: int = 10) -> dict[str, str]:
    """A Kaldi-style utt2spk: speaker ids are prefixes of utterance ids."""
    return {f"s{s:03d}_u{u:03d}": f"s{s:03d}" for s in range(num_spk) for u in range(utts_per_spk)}


# ---------------------------------------------------------------------------------------------
# helpers: a synthetic corpus whose feature rows identify (utterance, frame)
# ---------------------------------------------------------------------------------------------


def make_corpus(tmp: Path, lengths: list[int], dim: int = 4, n_spk: int = 3):
    """feats.scp whose row t of utt i is [i, t, 0...]; targets = (i * 7 + t) % 50; utt2spk."""
    feats = {}
    targets = {}
    utt2spk = {}
    for i, n in enumerate(lengths):
        utt = f"spk{i % n_spk}-u{i:04d}"
        m = np.zeros((n, dim), dtype=np.float32)
        m[:, 0] = i
        m[:, 1] = np.arange(n)
        feats[utt] = m
        targets[utt] = ((i * 7 + np.arange(n)) % 50).astype(np.int32)
        utt2spk[utt] = f"spk{i % n_spk}"
    scp = tmp / "feats.scp"
    kaldiio.save_ark(str(tmp / "feats.ark"), feats, scp=str(scp))
    return scp, feats, targets, utt2spk


def frame_ids(x: torch.Tensor, dim: int, left: int) -> list[tuple[int, int]]:
    """(utt index, frame) of the centre frame of each spliced row."""
    centre = x[:, left * dim : left * dim + 2].numpy()
    return [(int(a), int(b)) for a, b in centre]


# ---------------------------------------------------------------------------------------------
# splicing, CMVN, targets
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("left", "right"), [(5, 5), (2, 0), (0, 3), (4, 7)])
def test_splice_matches_manual_construction(left: int, right: int) -> None:
    rng = np.random.default_rng(0)
    for n in (1, 3, 20):
        feats = rng.standard_normal((n, 3)).astype(np.float32)
        manual = np.zeros((n, 3 * (left + right + 1)), dtype=np.float32)
        for t in range(n):
            for j, off in enumerate(range(-left, right + 1)):
                src = min(max(t + off, 0), n - 1)  # edge frames repeated
                manual[t, 3 * j : 3 * j + 3] = feats[src]
        np.testing.assert_array_equal(splice(feats, left, right), manual)


@needs_recipe_outputs
def test_cmvn_applied_per_speaker() -> None:
    src = UtteranceSource(
        TRAIN / "feats.scp", cmvn_scp=TRAIN / "cmvn.scp", utt2spk=TRAIN / "utt2spk"
    )
    utt = src.utterances[0]
    raw = kaldiio.load_scp(str(TRAIN / "feats.scp"))[utt]
    spk = read_table(TRAIN / "utt2spk")[utt]
    stats = kaldiio.load_scp(str(TRAIN / "cmvn.scp"))[spk]
    mean = stats[0, :-1] / stats[0, -1]
    feats, y = src.load(utt)
    assert y is None
    np.testing.assert_allclose(feats, raw - mean, atol=1e-4)
    assert not np.allclose(feats, raw)
    assert src.input_dim == 440
    x = src.spliced(utt)
    assert x.shape == (len(raw), 440)
    np.testing.assert_array_equal(x[:, 200:240], feats)  # centre block


def test_pdf_targets_equal_kaldi_ali_to_pdf(kaldi_ref: Path) -> None:
    tri1 = kaldi_ref / "gmm" / "tri1"
    ours = load_pdf_alignments([tri1 / "ali.1.gz"], tri1 / "final.mdl")
    ref = {}
    for line in (tri1 / "ali.1.pdf.txt").read_text().splitlines():
        key, *vals = line.split()
        ref[key] = np.array(vals, dtype=np.int32)
    assert ours.keys() == ref.keys() and len(ref) == 167
    for utt, pdfs in ref.items():
        np.testing.assert_array_equal(ours[utt], pdfs)


# ---------------------------------------------------------------------------------------------
# counts and priors
# ---------------------------------------------------------------------------------------------


def test_counts_file_formats_match_kaldi_bytes(kaldi_ref: Path, tmp_path: Path) -> None:
    nnet = kaldi_ref / "nnet"
    text = read_counts(nnet / "ali_train_pdf.counts")
    binary = read_counts(nnet / "ali_train_pdf.counts.bin")
    np.testing.assert_array_equal(text, binary)
    assert text.shape == (272,)
    assert counts_bytes(text) == (nnet / "ali_train_pdf.counts").read_bytes()
    assert counts_bytes(text, binary=True) == (nnet / "ali_train_pdf.counts.bin").read_bytes()
    write_counts(tmp_path / "c.bin", text, binary=True)
    np.testing.assert_array_equal(read_counts(tmp_path / "c.bin"), text)


def test_analyze_counts_adds_half(kaldi_ref: Path) -> None:
    """The log's integer count table + 0.5 is the counts file; 159802 frames in all."""
    nnet = kaldi_ref / "nnet"
    counts = read_counts(nnet / "ali_train_pdf.counts")
    log_counts = np.full(272, -1.0)
    for m in re.finditer(
        r"^(\d+)\t\([0-9.e-]+\),\t(\d+)\t", (nnet / "analyze-counts.log").read_text(), re.M
    ):
        log_counts[int(m.group(2))] = float(m.group(1))
    assert (log_counts >= 0).all()
    np.testing.assert_array_equal(counts, log_counts + 0.5)
    assert log_counts.sum() == 159802


def test_our_counts_agree_with_analyze_counts(kaldi_ref: Path) -> None:
    """Kaldi counted ali.{1,2,3}.gz of tri1 (501 utts); kaldi-ref keeps ali.1.gz (167 utts).

    Our counts of ali.1 must be <= Kaldi's per pdf, and the 3 utterances of nnet/ali.3utts.txt
    (text alignments) count exactly as their Kaldi ali-to-pdf output.
    """
    tri1 = kaldi_ref / "gmm" / "tri1"
    kaldi = read_counts(kaldi_ref / "nnet" / "ali_train_pdf.counts")
    ali1 = load_pdf_alignments([tri1 / "ali.1.gz"], tri1 / "final.mdl")
    ours = pdf_counts(ali1.values(), 272)
    assert np.all(ours <= kaldi) and (ours > 0.5).sum() > 200
    assert 0.25 < (ours.sum() - 136) / 159802 < 0.42  # one job of three
    three = load_pdf_alignments([kaldi_ref / "nnet" / "ali.3utts.txt"], tri1 / "final.mdl")
    ref = [
        np.array(ln.split()[1:], dtype=np.int64)
        for ln in (kaldi_ref / "nnet" / "ali.3utts.pdf.txt").read_text().splitlines()
    ]
    np.testing.assert_array_equal(
        pdf_counts(three.values(), 272), np.bincount(np.concatenate(ref), minlength=272) + 0.5
    )


def test_log_priors_floor_and_normalisation(kaldi_ref: Path) -> None:
    counts = read_counts(kaldi_ref / "nnet" / "ali_train_pdf.counts")
    lp = log_priors(counts)
    np.testing.assert_allclose(np.exp(lp).sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(lp[0], np.log(2966.5 / counts.sum()), rtol=1e-9)
    # relative [0, .001, .999] floored to [.01, .01, .999], renormalised by 1.019
    floored = log_priors(np.array([0.0, 1.0, 999.0]), floor=0.01)
    p = np.exp(floored)
    np.testing.assert_allclose(p.sum(), 1.0)
    assert np.all(np.isfinite(floored)) and p[0] == pytest.approx(0.01 / 1.019)
    with pytest.raises(ValueError):
        log_priors(np.zeros(3))


def run_cli(argv: list[str]) -> int:
    """Run a pykd.data.cli sub-command (independent of pykd.cli's module registry)."""
    import argparse

    from pykd.data import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_ali_to_pdf_counts(kaldi_ref: Path, tmp_path: Path) -> None:
    tri1 = kaldi_ref / "gmm" / "tri1"
    spec = f"ark:gunzip -c {tri1 / 'ali.1.gz'}|"
    expect = pdf_counts(load_pdf_alignments([tri1 / "ali.1.gz"], tri1 / "final.mdl").values(), 272)
    for binary in ("false", "true"):
        out = tmp_path / f"counts.{binary}"
        assert (
            run_cli(
                ["ali-to-pdf-counts", "--binary", binary, str(tri1 / "final.mdl"), spec, str(out)]
            )
            == 0
        )
        assert out.read_bytes() == counts_bytes(expect, binary=binary == "true")


# ---------------------------------------------------------------------------------------------
# the frame stream
# ---------------------------------------------------------------------------------------------

LENGTHS = [37, 5, 120, 64, 1, 90, 33, 71, 12, 48, 101, 26, 59, 8, 77]  # 752 frames


@pytest.fixture
def corpus(tmp_path: Path):
    scp, feats, targets, utt2spk = make_corpus(tmp_path, LENGTHS)
    return UtteranceSource(scp, targets, left_context=2, right_context=3), feats, targets


def collect(ds) -> tuple[list[tuple[int, int]], np.ndarray, list[int]]:
    ids, ys, sizes = [], [], []
    for x, y in ds:
        ids += frame_ids(x, 4, 2)
        ys.append(y.numpy())
        sizes.append(len(y))
    return ids, np.concatenate(ys), sizes


@pytest.mark.parametrize("buffer_frames", [10_000, 752, 100, 1])
def test_stream_yields_every_frame_once(corpus, buffer_frames: int) -> None:
    source, feats, _ = corpus
    ds = FrameShuffleDataset(source, batch_size=32, buffer_frames=buffer_frames, seed=3)
    ids, ys, sizes = collect(ds)
    assert sorted(ids) == sorted((i, t) for i, n in enumerate(LENGTHS) for t in range(n))
    assert all(s == 32 for s in sizes[:-1]) and sizes[-1] == 752 % 32
    expect = [(i * 7 + t) % 50 for i, t in ids]  # each row carries its own target
    np.testing.assert_array_equal(ys, expect)
    st = ds.last_stats
    assert (st.utts_used, st.frames, st.batches) == (15, 752, len(sizes))


def test_stream_rows_are_spliced_with_edges(corpus) -> None:
    source, feats, _ = corpus
    x, _ = next(iter(FrameShuffleDataset(source, batch_size=64, buffer_frames=200, seed=0)))
    keys = list(feats)
    for row, (i, t) in zip(x.numpy(), frame_ids(x, 4, 2), strict=True):
        np.testing.assert_array_equal(row, splice(feats[keys[i]], 2, 3)[t])


def test_stream_order_depends_on_seed_and_epoch(corpus) -> None:
    source, _, _ = corpus
    a = collect(FrameShuffleDataset(source, batch_size=32, buffer_frames=300, seed=1))[0]
    b = collect(FrameShuffleDataset(source, batch_size=32, buffer_frames=300, seed=1))[0]
    c = collect(FrameShuffleDataset(source, batch_size=32, buffer_frames=300, seed=2))[0]
    ds = FrameShuffleDataset(source, batch_size=32, buffer_frames=300, seed=1)
    ds.set_epoch(1)
    d = collect(ds)[0]
    assert a == b and a != c and a != d and sorted(a) == sorted(c) == sorted(d)
    # frames are mixed across utterances within a batch
    assert len({i for i, _ in a[:32]}) > 3


def test_dataloader(corpus) -> None:
    source, _, _ = corpus
    ds = FrameShuffleDataset(source, batch_size=50, buffer_frames=200, seed=0)
    n = 0
    for x, y in DataLoader(ds, batch_size=None, num_workers=0):
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (len(y), 24)
        n += len(y)
    assert n == 752


def test_ddp_sharding_covers_all_utterances_once(corpus) -> None:
    source, _, _ = corpus
    seen: list[tuple[int, int]] = []
    utts_per_rank, frames_per_rank = [], []
    for rank in range(3):
        ds = FrameShuffleDataset(
            source, batch_size=16, buffer_frames=100, seed=5, rank=rank, world_size=3
        )
        ids = collect(ds)[0]
        seen += ids
        utts_per_rank.append({i for i, _ in ids})
        frames_per_rank.append(len(ids))
        assert ds.last_stats.utts_seen == len(utts_per_rank[-1])
    assert sorted(seen) == sorted((i, t) for i, n in enumerate(LENGTHS) for t in range(n))
    assert sum(len(u) for u in utts_per_rank) == 15  # disjoint utterance shards
    # balanced by frames (each utterance goes to the emptiest shard): within one utterance
    assert max(frames_per_rank) - min(frames_per_rank) <= max(LENGTHS)


def test_mismatch_and_missing_alignments_counted(tmp_path: Path) -> None:
    scp, feats, targets, _ = make_corpus(tmp_path, [20, 20, 20, 20, 20])
    keys = list(feats)
    targets[keys[0]] = targets[keys[0]][:18]  # -2: trimmed
    targets[keys[1]] = np.concatenate([targets[keys[1]], [1]])  # +1: trimmed
    targets[keys[2]] = targets[keys[2]][:17]  # -3: skipped
    del targets[keys[3]]  # missing: skipped
    ds = FrameShuffleDataset(UtteranceSource(scp, targets), batch_size=8, buffer_frames=30)
    n = sum(len(y) for _, y in ds)
    st = ds.last_stats
    assert (st.no_alignment, st.length_mismatch, st.trimmed_utts, st.trimmed_frames) == (1, 1, 2, 3)
    assert n == st.frames == 18 + 20 + 20 and st.utts_used == 3 and st.utts_seen == 5
    assert sorted(st.skipped) == sorted([keys[2], keys[3]])
    assert "1 without alignment, 1 with a feature/alignment length mismatch" in st.summary()


def test_memory_bounded_by_buffer_not_corpus(tmp_path: Path) -> None:
    dim = 40

    def peak(n_utts: int, buffer_frames: int) -> int:
        sub = tmp_path / f"c{n_utts}"
        sub.mkdir()
        scp, _, targets, _ = make_corpus(sub, [100] * n_utts, dim=dim)
        src = UtteranceSource(scp, targets, left_context=5, right_context=5)
        ds = FrameShuffleDataset(src, batch_size=64, buffer_frames=buffer_frames, seed=0)
        tracemalloc.start()
        n = sum(len(y) for _, y in ds)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert n == 100 * n_utts
        return top

    peak(10, 1000)  # warm-up: one-time allocations (imports, caches) are not the buffer
    small, small_big_corpus = peak(100, 1000), peak(400, 1000)
    whole = peak(200, 1_000_000)
    per_frame = 4 * dim + 16
    bound = 2.5 * (1000 + 100) * per_frame + 3 * 64 * 11 * dim * 4 + 200_000
    assert small < bound and small_big_corpus < bound  # ~independent of the corpus size
    assert whole > 20_000 * 4 * dim  # a corpus-sized buffer really holds the corpus


def test_cv_iterator_is_sequential_and_complete(corpus) -> None:
    source, feats, targets = corpus
    utts = list(feats)[::-1]
    ds = SequentialFrameDataset(source, utts, batch_size=40)
    xs, ys = zip(*ds, strict=True)
    assert all(len(x) == 40 for x in xs[:-1])
    np.testing.assert_array_equal(
        torch.cat(xs).numpy(), np.concatenate([splice(feats[u], 2, 3) for u in utts])
    )
    np.testing.assert_array_equal(torch.cat(ys).numpy(), np.concatenate([targets[u] for u in utts]))
    again = torch.cat([x for x, _ in ds])
    torch.testing.assert_close(again, torch.cat(xs))


def test_split_cv() -> None:
    utt2spk = synthetic_utt2spk()
    tr, cv = split_cv(utt2spk, 0.1, by="speaker", seed=1)
    assert sorted(tr + cv) == sorted(utt2spk) and not set(tr) & set(cv)
    assert not {utt2spk[u] for u in tr} & {utt2spk[u] for u in cv}
    assert 0.08 < len(cv) / len(utt2spk) < 0.2
    assert split_cv(utt2spk, 0.1, by="speaker", seed=1) == (tr, cv)
    assert split_cv(utt2spk, 0.1, by="speaker", seed=2)[1] != cv
    tr_u, cv_u = split_cv(utt2spk, 0.1, by="utterance", seed=1)
    assert len(cv_u) == round(0.1 * len(utt2spk)) and sorted(tr_u + cv_u) == sorted(utt2spk)


def test_cli_split_cv(tmp_path: Path) -> None:
    data = tmp_path / "data"
    utt2spk = synthetic_utt2spk()
    write_table(data / "utt2spk", utt2spk)
    assert (
        run_cli(
            [
                "split-cv",
                "--by",
                "utterance",
                str(data),
                str(tmp_path / "tr"),
                str(tmp_path / "cv"),
            ]
        )
        == 0
    )
    tr = (tmp_path / "tr").read_text().split()
    cv = (tmp_path / "cv").read_text().split()
    assert (tr, cv) == split_cv(utt2spk, 0.1, by="utterance", seed=777)


@needs_recipe_outputs
def test_smoke_real_corpus_few_utterances() -> None:
    """data/train_fbank + exp/tri1_ali: 40-dim fbank, CMVN, +-5 splice, 336 pdfs."""
    alis = load_pdf_alignments(sorted(ALI.glob("ali.*.gz")), REPO / "exp" / "tri1" / "final.mdl")
    src = UtteranceSource(
        TRAIN / "feats.scp", alis, cmvn_scp=TRAIN / "cmvn.scp", utt2spk=TRAIN / "utt2spk"
    )
    utts = src.utterances[:6]
    ds = FrameShuffleDataset(src, utts, batch_size=256, buffer_frames=1000, seed=0)
    n = 0
    for x, y in ds:
        assert x.shape[1] == 440 and torch.isfinite(x).all()
        assert 0 <= int(y.min()) and int(y.max()) < 336
        n += len(y)
    nframes = read_table(TRAIN / "utt2num_frames")
    assert n == sum(int(nframes[u]) for u in utts) == ds.last_stats.frames
    assert ds.last_stats.length_mismatch == ds.last_stats.no_alignment == 0
    first = read_alignments(ALI / "ali.1.gz")
    assert set(first) <= set(alis)
