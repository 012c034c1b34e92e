"""Lattice I/O, builtin lattice decoding and scoring against real Kaldi's files (kaldi-ref)."""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import shutil
import subprocess
from pathlib import Path

import kaldiio
import numpy as np
import pytest
from lattice_reference import determinize_lattice

from pykd import cli
from pykd.decode.decoder import (
    DecodeError,
    DecodeOptions,
    GmmScorer,
    LatticeDecoder,
    best_path,
    lattice_depth,
    load_graph,
    prune_lattice,
    scale_acoustic,
)
from pykd.decode.latdet import DeterminizeLimitError, RawLattice
from pykd.decode.score import ScoreOptions, compute_wer, edit_counts, score_dir
from pykd.kaldi.lattice_io import (
    INF,
    CompactLattice,
    Lattice,
    LatticeFormatError,
    encode_lattices,
    lattice_to_binary,
    lattice_to_text,
    parse_text_lattice,
    read_lattice_dict,
    read_lattices,
    write_lattices,
)
from pykd.kaldi.model_io import read_model

REPO = Path(__file__).resolve().parents[1]
ACWT = 0.083333


def _bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


@pytest.fixture(scope="module")
def ref(kaldi_ref: Path) -> Path:
    if not (kaldi_ref / "nnet" / "lat.ark").is_file():
        pytest.skip("kaldi-ref golden files not available")
    return kaldi_ref


@pytest.fixture(scope="module")
def tri1(ref: Path):
    """Kaldi's tri1 model and graph, with our decoder at steps/decode.sh's settings."""
    tm, am = read_model(ref / "gmm/tri1/final.mdl")
    graph = load_graph(ref / "gmm/tri1/graph/HCLG.fst")  # a ConstFst: converted
    dec = LatticeDecoder(graph, tm, DecodeOptions(beam=13.0, lattice_beam=6.0, max_active=7000))
    return tm, am, dec


def _paths(lat: CompactLattice) -> dict[tuple[int, ...], tuple[float, tuple[int, ...]]]:
    """Every word sequence of a (small, acyclic) lattice -> (best scaled cost, alignment)."""
    out: dict[tuple[int, ...], tuple[float, tuple[int, ...]]] = {}

    def rec(s: int, words: tuple[int, ...], cost: float, tids: tuple[int, ...]) -> None:
        if s in lat.finals:
            g, a, t = lat.finals[s]
            c = (cost + g + ACWT * a, tids + t)
            if words not in out or c[0] < out[words][0]:
                out[words] = c
        for d, w, g, a, t in lat.arcs[s]:
            rec(d, words + ((w,) if w else ()), cost + g + ACWT * a, tids + t)

    rec(lat.start, (), 0.0, ())
    return out


# ----------------------------------------------------------------------------- lattice files
@pytest.mark.parametrize(
    "binary,text",
    [
        ("nnet/lat.ark", "nnet/lat.txt"),
        ("nnet/rms3/lat.ark", "nnet/rms3/lat.txt"),
        ("gmm/tri1/decode_test_rms/lat.1.gz", "gmm/tri1/decode_test_rms/lat.1.txt.gz"),
        ("gmm/tri1/decode_test/lat.3.gz", "gmm/tri1/decode_test/lat.3.txt.gz"),
    ],
)
def test_compact_lattice_files_roundtrip(ref: Path, tmp_path: Path, binary: str, text: str):
    lats = list(read_lattices(str(ref / binary)))
    assert lats and all(isinstance(lat, CompactLattice) for _, lat in lats)
    # our binary writer reproduces Kaldi's bytes; our text form is Kaldi's text form
    assert encode_lattices(lats) == _bytes(ref / binary)
    assert encode_lattices(lats, text=True) == _bytes(ref / text)
    # the text file reads to the same lattices (weights to 6 digits)
    from_text = dict(read_lattices(str(ref / text)))
    assert list(from_text) == [k for k, _ in lats]
    for key, lat in lats:
        assert lattice_to_text(from_text[key]) == lattice_to_text(lat)
    # gz and text writers, read back
    write_lattices(str(tmp_path / "lat.1.gz"), lats)
    assert gzip.decompress((tmp_path / "lat.1.gz").read_bytes()) == _bytes(ref / binary)
    write_lattices(f"ark,t:{tmp_path / 'lat.txt'}", lats)
    assert (tmp_path / "lat.txt").read_bytes() == _bytes(ref / text)
    piped = list(read_lattices(f"ark:gunzip -c {tmp_path / 'lat.1.gz'}|"))
    assert encode_lattices(piped) == encode_lattices(lats)


def test_state_level_lattice_roundtrip(ref: Path, tmp_path: Path):
    text = ref / "nnet/rms3/lat_nondet.txt"
    lats = list(read_lattices(str(text)))
    assert len(lats) == 3 and all(isinstance(lat, Lattice) for _, lat in lats)
    assert encode_lattices(lats, text=True) == text.read_bytes()
    write_lattices(str(tmp_path / "raw.ark"), lats)  # binary lattice4
    back = list(read_lattices(str(tmp_path / "raw.ark")))
    assert [k for k, _ in back] == [k for k, _ in lats]
    assert encode_lattices(back, text=True) == text.read_bytes()


def test_text_weight_one_is_omitted_like_openfst():
    """OpenFst's printer leaves out weights equal to One; both kinds read back the same."""
    clat_text = "0\t1\t5\n1\t2\t6\t1.5,2,3_4\n2\n"
    clat = parse_text_lattice(clat_text.splitlines(), "clat")
    assert isinstance(clat, CompactLattice)
    assert clat.arcs[0] == [(1, 5, 0.0, 0.0, ())]
    assert lattice_to_text(clat) == clat_text
    lat_text = "0\t1\t3\t0\n1\t2\t4\t7\t1,2\n2\t0.5,0\n"
    lat = parse_text_lattice(lat_text.splitlines(), "lat")
    assert isinstance(lat, Lattice) and lat.finals == {2: (0.5, 0.0)}
    assert lattice_to_text(lat) == lat_text
    with pytest.raises(LatticeFormatError, match="mixes"):
        parse_text_lattice(["0\t1\t5", "1\t2\t3\t4\t1,2"], "mixed")


def test_bad_lattice_files(tmp_path: Path):
    bad = tmp_path / "bad.ark"
    bad.write_bytes(b"utt1 \x00Bxyz")
    with pytest.raises(LatticeFormatError, match="utt1"):
        list(read_lattices(str(bad)))
    trunc = tmp_path / "trunc.ark"
    good = encode_lattices(
        [("u", CompactLattice(0, [[(1, 5, 1.0, 2.0, (1, 2))], []], {1: (0, 0, ())}))]
    )
    trunc.write_bytes(good[:-6])
    with pytest.raises(LatticeFormatError, match="end of file"):
        list(read_lattices(str(trunc)))
    with pytest.raises(FileNotFoundError):
        list(read_lattices(str(tmp_path / "missing.gz")))


# ----------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("sub", ["nnet", "nnet/rms3"])
def test_decoder_matches_kaldi(ref: Path, tri1, sub: str):
    """Kaldi's HCLG + Kaldi's log-likelihoods: Kaldi's 1-best, and lattices with the same word
    sequences, best costs and alignments as latgen-faster-mapped's."""
    _tm, _am, dec = tri1
    kaldi_lats = read_lattice_dict(str(ref / sub / "lat.ark"))
    kaldi_words = _int_table(ref / sub / "lat.words.int")
    kaldi_ali = _int_table(ref / sub / "lat.ali.txt")
    kaldi_bp_ali = _int_table(ref / sub / "best_path.ali.txt")
    for utt, ll in kaldiio.load_ark(str(ref / sub / "loglikes.ark")):
        res = dec.decode(utt, ll)
        assert res.words == kaldi_words[utt]
        assert res.alignment == kaldi_ali[utt]
        ours, theirs = res.lattice, kaldi_lats[utt]
        assert isinstance(ours, CompactLattice)
        words, tids, _g, _a = best_path(ours, acoustic_scale=ACWT)
        assert tids == kaldi_bp_ali[utt]
        po, pk = _paths(ours), _paths(theirs)
        assert set(po) == set(pk)
        for seq in pk:
            assert po[seq][0] == pytest.approx(pk[seq][0], abs=1e-3)
            assert po[seq][1] == pk[seq][1]
        assert (ours.num_states, ours.num_arcs()) == (theirs.num_states, theirs.num_arcs())
        assert lattice_depth(ours, res.num_frames) == pytest.approx(
            lattice_depth(theirs, res.num_frames)
        )


@pytest.mark.parametrize("sub", ["nnet", "nnet/rms3"])
def test_one_lattice_search_finds_kaldis_best_path(ref: Path, tri1, sub: str):
    """The default (--check-best-path=false): one lattice search per utterance, at the given
    beam (no widening), whose best path is Kaldi's 1-best, also on the mismatched voice (rms3),
    where a search that applied min-active only above 200 tokens (not Kaldi's unbounded cutoff
    below it) reached no final state at beam 13; the cross-check with Kaldi's own decoder
    agrees."""
    tm, _am, dec = tri1
    assert not dec.opts.check_best_path
    checked = LatticeDecoder(dec.graph, tm, dataclasses.replace(dec.opts, check_best_path=True))
    kaldi_words = _int_table(ref / sub / "lat.words.int")
    for utt, ll in kaldiio.load_ark(str(ref / sub / "loglikes.ark")):
        a, b = checked.decode(utt, ll), dec.decode(utt, ll)
        assert a.beam_used == b.beam_used == dec.opts.beam
        assert a.words == b.words == kaldi_words[utt]
        assert a.alignment == b.alignment
        assert a.likelihood == pytest.approx(b.likelihood, abs=1e-2)


def _int_table(path: Path) -> dict[str, list[int]]:
    out = {}
    for line in path.read_text().splitlines():
        f = line.split()
        out[f[0]] = [int(x) for x in f[1:]]
    return out


def test_gmm_loglikes_match_gmm_compute_likes(ref: Path, tri1):
    _tm, am, _dec = tri1
    feats = dict(
        kaldiio.load_ark(
            io.BytesIO(gzip.decompress((ref / "nnet/feats.cmvn_deltas.txt.gz").read_bytes()))
        )
    )
    scorer = GmmScorer(am)
    for utt, ll in kaldiio.load_ark(str(ref / "nnet/loglikes.ark")):
        ours = scorer(feats[utt])
        assert ours.shape == ll.shape
        # Kaldi sums in float32: a few large cancelling terms differ by ~0.02
        np.testing.assert_allclose(ours, ll, rtol=1e-5, atol=0.05)


def test_decoder_bad_input(tri1):
    _tm, _am, dec = tri1
    with pytest.raises(DecodeError, match="utt-x.*271 columns.*272 pdfs"):
        dec.decode("utt-x", np.zeros((10, 271), np.float32))
    with pytest.raises(DecodeError, match="utt-y.*NaN"):
        dec.decode("utt-y", np.full((10, 272), np.nan, np.float32))
    with pytest.raises(FileNotFoundError, match="graph"):
        load_graph("/nonexistent/HCLG.fst")


def test_determinize_small_lattice():
    """Two paths with the same word: the better survives; strings follow the arcs."""
    lat = Lattice(
        start=0,
        arcs=[
            [(1, 1, 7, 1.0, 1.0), (2, 2, 7, 0.5, 0.5)],
            [(3, 3, 0, 0.0, 1.0)],
            [(3, 4, 0, 0.0, 2.5)],
            [],
        ],
        finals={3: (0.0, 0.0)},
    )
    clat = RawLattice.from_openfst(lattice_to_binary(lat)).determinize(10.0, 10_000, 1.0)
    assert prune_lattice(clat, INF) == prune_lattice(reference_determinize(lat, 10.0, 1.0), INF)
    assert _paths(clat) == {(7,): (pytest.approx(1.0 + 2.0 * ACWT), (1, 3))}
    words, tids, g, a = best_path(clat)
    assert (words, tids, g, a) == ([7], [1, 3], 1.0, 2.0)
    assert clat.num_arcs() == 1
    pruned = prune_lattice(lat, 0.5)  # path 2 costs 3.5 vs 3.0: inside; at 0.4 it goes
    assert pruned.num_arcs() == 4
    assert prune_lattice(lat, 0.4).num_arcs() == 2


def test_determinize_keeps_a_state_reached_again_at_a_lower_cost():
    """A determinised state first made from a costlier predecessor and then reached more
    cheaply with residual weights that differ below the state-merging quantum (2^-10) is still
    expanded. (It was not: its queue entries all looked stale, and every path through it was
    lost; a real dev utterance got no lattice at lattice beam 8.) Words 1 a, 2 b, 3 c, 4 d,
    5 e: {after a} is expanded first (its best completion, e, is cheap), making {after a c};
    {after b} reaches the same state more cheaply; the path b c d must survive."""
    eps = 1e-7
    lat = Lattice(
        start=0,
        arcs=[
            [(1, 1, 1, 0.0, 2.0), (2, 2, 2, 0.0, 1.0)],
            [(3, 3, 3, 0.0, 0.0), (4, 4, 3, 0.0, 1.0), (5, 7, 5, 0.0, 0.0)],
            [(3, 3, 3, 0.0, 0.0), (4, 4, 3, 0.0, 1.0 + eps)],
            [(5, 5, 4, 0.0, 5.0)],
            [(5, 6, 4, 0.0, 0.0)],
            [],
        ],
        finals={5: (0.0, 0.0)},
    )
    clat = RawLattice.from_openfst(lattice_to_binary(lat)).determinize(10.0, 10_000, 1.0)
    want = reference_determinize(lat, 10.0, 1.0)
    assert set(_paths(clat)) == set(_paths(want)) == {(1, 5), (1, 3, 4), (2, 3, 4)}
    assert _paths(clat)[(2, 3, 4)][1] == (2, 4, 6)


def reference_determinize(lat: Lattice, beam: float, acoustic_factor: float) -> CompactLattice:
    """The Python reference of RawLattice.determinize: prune, determinise, prune, scale."""
    clat = prune_lattice(determinize_lattice(prune_lattice(lat, beam)), beam)
    scale_acoustic(clat, acoustic_factor)
    return clat


def test_compiled_determinization_equals_the_reference(ref: Path, tri1) -> None:
    """On real raw lattices (Kaldi's network log-likelihoods through Kaldi's tri1 graph), the
    compiled (pruned, best-first) determinisation gives the Python reference's (full, then
    pruned) lattice: same states, arcs, strings, and weights to float precision.
    Log-likelihoods flattened 3x make larger lattices."""
    tm, _am, tri1_dec = tri1
    dec = LatticeDecoder(tri1_dec.graph, tm, DecodeOptions(beam=13.0, lattice_beam=14.0))
    checked = 0
    for utt, ll in kaldiio.load_ark(str(ref / "nnet/rms3/loglikes.ark")):
        mat = np.ascontiguousarray(0.3 * ACWT * ll, np.float32)  # frames x pdfs
        raw = dec._raw_lattice(mat, dec.opts.beam)
        for beam in (2.0, 6.0, 10.0, 14.0):
            # (renumbered in one topological order: the two number their states differently)
            ours = prune_lattice(raw.lattice.determinize(beam, 10**7, 1.0 / ACWT), INF)
            want = prune_lattice(reference_determinize(raw.python_lattice(), beam, 1.0 / ACWT), INF)
            assert ours.start == want.start and ours.num_states == want.num_states, utt
            for s, (arcs, want_arcs) in enumerate(zip(ours.arcs, want.arcs, strict=True)):
                assert [(d, w, t) for d, w, _g, _a, t in arcs] == [
                    (d, w, t) for d, w, _g, _a, t in want_arcs
                ], (utt, s)
                np.testing.assert_allclose(
                    np.reshape([(g, a) for _d, _w, g, a, _t in arcs], (-1, 2)),
                    np.reshape([(g, a) for _d, _w, g, a, _t in want_arcs], (-1, 2)),
                    rtol=1e-9, atol=1e-9,
                )  # fmt: skip
            assert ours.finals.keys() == want.finals.keys()
            checked += ours.num_arcs()
    assert checked > 150, checked


def test_determinization_blowup_reduces_lattice_beam(ref: Path, tri1, caplog):
    """A work bound stops the subset construction; the decoder then retries at a smaller
    lattice beam (as Kaldi's pruned determinisation does) and keeps the best path."""
    tm, _am, dec = tri1
    utt, ll = next(iter(kaldiio.load_ark(str(ref / "nnet/rms3/loglikes.ark"))))
    raw = dec._raw_lattice(np.ascontiguousarray(ACWT * ll, np.float32), dec.opts.beam)
    with pytest.raises(DeterminizeLimitError):
        raw.lattice.determinize(6.0, 10, 1.0)
    with pytest.raises(DeterminizeLimitError):
        determinize_lattice(prune_lattice(raw.python_lattice(), 6.0), max_work=10)
    full = dec.decode(utt, ll)
    tight = LatticeDecoder(
        dec.graph, tm, DecodeOptions(det_min_work=300, det_max_work_per_frame=0.0)
    )
    res = tight.decode(utt, ll)
    assert "lattice beam reduced" in caplog.text
    assert best_path(res.lattice, acoustic_scale=ACWT)[0] == full.words
    assert res.lattice.num_arcs() <= full.lattice.num_arcs()


# ----------------------------------------------------------------------------- scoring
def test_edit_counts_ties_like_compute_wer():
    assert edit_counts("a b c".split(), "a x c".split()) == (0, 0, 1)
    assert edit_counts("a b".split(), "".split()) == (0, 2, 0)
    assert edit_counts([], ["a"]) == (1, 0, 0)
    stats = compute_wer({"u1": ["a", "b"], "u2": ["c"]}, {"u1": ["a", "b", "d"]})
    assert (stats.ins, stats.errors, stats.ref_words, stats.not_present) == (1, 1, 2, 1)


def test_score_reproduces_kaldi(ref: Path, tmp_path: Path):
    """Kaldi's test_rms lattices + its text: every wer_L_P and best_wer as score_kaldi.sh."""
    kdir = ref / "gmm/tri1/decode_test_rms"
    data, dec = tmp_path / "data", tmp_path / "decode_test_rms"
    data.mkdir()
    dec.mkdir()
    shutil.copy(kdir / "lat.1.gz", dec / "lat.1.gz")
    shutil.copy(kdir / "scoring_kaldi/test_filt.txt", data / "text")
    best, stats = score_dir(data, ref / "gmm/tri1/graph", dec, ScoreOptions())
    assert best == f"%WER 77.81 [ 256 / 329, 9 ins, 112 del, 135 sub ] {dec}/wer_16_0.0"
    assert (dec / "scoring_kaldi/best_wer").read_text() == best + "\n"
    for f in sorted(kdir.glob("wer_*_*")):
        ours = [ln for ln in (dec / f.name).read_text().splitlines() if not ln.startswith("#")]
        theirs = [ln for ln in f.read_text().splitlines() if ln.startswith(("%", "Scored"))]
        assert ours == theirs, f.name
    for f in sorted((kdir / "scoring_kaldi").glob("penalty_*/*.txt")):
        assert (dec / "scoring_kaldi" / f.parent.name / f.name).read_bytes() == f.read_bytes()
    sys_file = dec / "scoring_kaldi/sclite/hyp_lmwt16_wip0.0.sys"
    assert "77.8" in sys_file.read_text()
    for ext in ("pra", "dtl"):
        assert (dec / f"scoring_kaldi/sclite/hyp_lmwt16_wip0.0.{ext}").is_file()
    assert stats.errors == 256


# ----------------------------------------------------------------------------- CLI and scripts
def test_cli_latgen_and_best_path(ref: Path, tmp_path: Path):
    sub = ref / "nnet/rms3"
    graph = ref / "gmm/tri1/graph"
    opts = ["--max-active=7000", "--beam=13.0", "--lattice-beam=6.0", "--acoustic-scale=0.083333"]
    rc = cli.main(
        ["latgen-faster-mapped", *opts, "--allow-partial=true",
         f"--word-symbol-table={graph}/words.txt", str(ref / "gmm/tri1/final.mdl"),
         str(graph / "HCLG.fst"), f"ark:{sub}/loglikes.ark", f"ark:|gzip -c > {tmp_path}/lat.1.gz",
         f"ark,t:{tmp_path}/words.int", f"ark,t:{tmp_path}/ali.txt"]
    )  # fmt: skip
    assert rc == 0
    assert (tmp_path / "words.int").read_bytes() == (sub / "lat.words.int").read_bytes()
    assert (tmp_path / "ali.txt").read_bytes() == (sub / "lat.ali.txt").read_bytes()
    rc = cli.main(
        ["lattice-best-path", "--acoustic-scale=0.083333", f"{tmp_path}/lat.1.gz",
         f"ark,t:{tmp_path}/bp.int", f"ark,t:{tmp_path}/bp.ali"]
    )  # fmt: skip
    assert rc == 0
    assert (tmp_path / "bp.int").read_bytes() == (sub / "best_path.words.int").read_bytes()
    assert (tmp_path / "bp.ali").read_bytes() == (sub / "best_path.ali.txt").read_bytes()
    # bad loglike dimension -> clear error, no output
    rc = cli.main(
        ["latgen-faster-mapped", *opts, str(ref / "gmm/tri1/final.mdl"),
         str(graph / "HCLG.fst"), f"ark:{ref}/nnet/post_pdf.ark", f"{tmp_path}/bad.gz"]
    )  # fmt: skip
    assert rc == 1 and not (tmp_path / "bad.gz").exists()
    rc = cli.main(
        ["latgen-faster-mapped", str(ref / "gmm/tri1/final.mdl"), str(tmp_path / "none.fst"),
         f"ark:{sub}/loglikes.ark", f"{tmp_path}/none.gz"]
    )  # fmt: skip
    assert rc == 1


def _make_mfcc_data_dir(ref: Path, out: Path) -> None:
    """Kaldi's nnet/ 3 test utterances as a data dir of 13-dim MFCC + Kaldi CMVN stats:
    the statics of Kaldi's CMN'd features plus each speaker's mean give back the raw MFCC."""
    feats = dict(
        kaldiio.load_ark(
            io.BytesIO(gzip.decompress((ref / "nnet/feats.cmvn_deltas.txt.gz").read_bytes()))
        )
    )
    cmvn = dict(kaldiio.load_ark(str(ref / "gmm/data/test/cmvn.txt")))
    utt2spk = dict(ln.split() for ln in (ref / "gmm/data/test/utt2spk").read_text().splitlines())
    text = dict(
        ln.split(maxsplit=1) for ln in (ref / "gmm/data/test/text").read_text().splitlines()
    )
    out.mkdir(parents=True)
    utts = sorted(feats)
    spks = sorted({utt2spk[u] for u in utts})
    raw = {}
    for u in utts:
        st = cmvn[utt2spk[u]]
        raw[u] = (feats[u][:, :13] + st[0, :13] / st[0, 13]).astype(np.float32)
    kaldiio.save_ark(str(out / "feats.ark"), raw, scp=str(out / "feats.scp"))
    kaldiio.save_ark(str(out / "cmvn.ark"), {s: cmvn[s] for s in spks}, scp=str(out / "cmvn.scp"))
    (out / "utt2spk").write_text("".join(f"{u} {utt2spk[u]}\n" for u in utts))
    (out / "spk2utt").write_text(
        "".join(f"{s} {' '.join(u for u in utts if utt2spk[u] == s)}\n" for s in spks)
    )
    (out / "text").write_text("".join(f"{u} {text[u]}\n" for u in utts))


def test_decode_sh_end_to_end(ref: Path, tmp_path: Path):
    """steps_kd/decode.sh on Kaldi's tri1 model/graph: MFCC + CMVN + deltas -> same 1-best as
    gmm-latgen-faster, 0% WER, Kaldi-format lattices."""
    data = tmp_path / "data/sub3"
    _make_mfcc_data_dir(ref, data)
    exp = tmp_path / "exp/tri1"
    exp.mkdir(parents=True)
    shutil.copy(ref / "gmm/tri1/final.mdl", exp / "final.mdl")
    env = dict(os.environ)
    proc = subprocess.run(
        ["steps_kd/decode.sh", "--nj", "2", str(ref / "gmm/tri1/graph"), str(data),
         str(exp / "decode_sub3")],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dec = exp / "decode_sub3"
    assert (dec / "num_jobs").read_text().strip() == "2"
    lats = {}
    for j in (1, 2):
        lats.update(read_lattice_dict(str(dec / f"lat.{j}.gz")))
    kaldi = read_lattice_dict(str(ref / "nnet/lat.ark"))
    assert set(lats) == set(kaldi)
    for utt, lat in lats.items():
        assert (
            best_path(lat, acoustic_scale=ACWT)[:2]
            == best_path(kaldi[utt], acoustic_scale=ACWT)[:2]
        )
    assert (dec / "scoring_kaldi/best_wer").read_text().startswith("%WER 0.00 [ 0 / 19,")
    assert "Lattice density" in (dec / "log/decode.1.log").read_text()


def test_decode_sh_missing_inputs(tmp_path: Path, ref: Path):
    proc = subprocess.run(
        ["steps_kd/decode.sh", str(ref / "gmm/tri1/graph"), str(tmp_path / "nodata"),
         str(tmp_path / "exp/x/decode")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "no such file" in proc.stderr and "nodata" in proc.stderr
    assert not (tmp_path / "exp/x/decode").exists()


def test_utterance_without_lattice_is_named_and_counted(ref: Path, tmp_path: Path, caplog):
    lls = dict(kaldiio.load_ark(str(ref / "nnet/loglikes.ark")))
    ark = tmp_path / "ll.ark"
    kaldiio.save_ark(str(ark), {"awb-186": lls["awb-186"], "tiny-utt": lls["slt-138"][:1]})
    graph = ref / "gmm/tri1/graph"
    with caplog.at_level("INFO"):
        rc = cli.main(
            ["latgen-faster-mapped", "--allow-partial=false", "--acoustic-scale=0.083333",
             str(ref / "gmm/tri1/final.mdl"), str(graph / "HCLG.fst"), f"ark:{ark}",
             str(tmp_path / "lat.1.gz")]
        )  # fmt: skip
    assert rc == 0
    assert "utterance tiny-utt: no lattice" in caplog.text
    assert "Done 1 utterances, failed for 1" in caplog.text
    assert list(read_lattice_dict(str(tmp_path / "lat.1.gz"))) == ["awb-186"]


def test_decode_loglikes_sh(ref: Path, tmp_path: Path):
    data = tmp_path / "data/sub3"
    _make_mfcc_data_dir(ref, data)
    exp = tmp_path / "exp/dnn"
    exp.mkdir(parents=True)
    shutil.copy(ref / "gmm/tri1/final.mdl", exp / "final.mdl")
    scp = tmp_path / "loglikes.scp"
    kaldiio.save_ark(
        str(tmp_path / "loglikes.ark"),
        dict(kaldiio.load_ark(str(ref / "nnet/loglikes.ark"))),
        scp=str(scp),
    )
    proc = subprocess.run(
        ["steps_kd/decode_loglikes.sh", "--nj", "3", str(ref / "gmm/tri1/graph"), str(data),
         str(scp), str(exp / "decode_sub3")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dec = exp / "decode_sub3"
    words = {}
    for j in (1, 2, 3):
        for utt, lat in read_lattices(str(dec / f"lat.{j}.gz")):
            words[utt] = best_path(lat, acoustic_scale=ACWT)[0]
    assert words == {k: v for k, v in _int_table(ref / "nnet/best_path.words.int").items()}
    assert (dec / "scoring_kaldi/best_wer").read_text().startswith("%WER 0.00 [ 0 / 19,")
