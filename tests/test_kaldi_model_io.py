"""Kaldi model/tree/topology/alignment files against the golden files written by real Kaldi."""

from __future__ import annotations

import gzip
from pathlib import Path

import kaldi_hmm_gmm as khg
import kaldiio
import numpy as np
import pytest

from pykd.kaldi import model_io as mio


@pytest.fixture(scope="module")
def gmm_ref(kaldi_ref: Path) -> Path:
    return kaldi_ref / "gmm"


@pytest.fixture(scope="module")
def tri1(gmm_ref: Path) -> tuple[khg.TransitionModel, khg.AmDiagGmm]:
    return mio.read_model(gmm_ref / "tri1" / "final.mdl")


def _info_file(path: Path) -> dict[str, int]:
    """Parse hmm-info / gmm-info output ("number of pdfs 272", "feature dimension 39")."""
    names = {
        "number of phones": "phones",
        "number of pdfs": "pdfs",
        "number of transition-ids": "transition-ids",
        "number of transition-states": "transition-states",
        "feature dimension": "dim",
        "number of gaussians": "gaussians",
    }
    res = {}
    for line in path.read_text().splitlines():
        label, _, value = line.rpartition(" ")
        res[names[label]] = int(value)
    return res


# ----------------------------------------------------------------------------- final.mdl


@pytest.mark.parametrize("system", ["mono", "tri1"])
def test_model_info_matches_hmm_info_and_gmm_info(gmm_ref: Path, system: str) -> None:
    tm, am = mio.read_model(gmm_ref / system / "final.mdl.txt")
    hmm_info = _info_file(gmm_ref / system / "hmm-info.txt")
    gmm_info = _info_file(gmm_ref / system / "gmm-info.txt")
    assert mio.model_info(tm) == hmm_info
    assert mio.model_info(tm, am) == gmm_info


def test_binary_model_written_back_byte_identical(gmm_ref: Path, tri1, tmp_path: Path) -> None:
    tm, am = tri1
    out = tmp_path / "final.mdl"
    mio.write_model(out, tm, am, binary=True)
    assert out.read_bytes() == (gmm_ref / "tri1" / "final.mdl").read_bytes()


def test_text_model_equals_gmm_copy_output(gmm_ref: Path, tri1, tmp_path: Path) -> None:
    """Binary final.mdl -> our text == `gmm-copy --binary=false` (byte for byte)."""
    tm, am = tri1
    out = tmp_path / "final.mdl.txt"
    mio.write_model(out, tm, am, binary=False)
    assert out.read_bytes() == (gmm_ref / "tri1" / "final.mdl.txt").read_bytes()


def test_text_and_binary_models_agree_numerically(gmm_ref: Path, tri1) -> None:
    tm_b, am_b = tri1
    tm_t, am_t = mio.read_model(gmm_ref / "tri1" / "final.mdl.txt")
    assert mio.transition_tuples(tm_b) == mio.transition_tuples(tm_t)
    np.testing.assert_allclose(tm_t.log_probs, tm_b.log_probs, rtol=1e-6, atol=1e-7)
    assert am_t.num_pdfs == am_b.num_pdfs == 272
    for pdf in range(0, am_b.num_pdfs, 17):
        gb, gt = am_b.get_pdf(pdf), am_t.get_pdf(pdf)
        np.testing.assert_allclose(gt.weights, gb.weights, rtol=1e-6)
        np.testing.assert_allclose(gt.means_invvars, gb.means_invvars, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(gt.inv_vars, gb.inv_vars, rtol=1e-6)
        np.testing.assert_allclose(gt.gconsts, gb.gconsts, rtol=1e-5)


def test_mono_text_model_round_trip(gmm_ref: Path, tmp_path: Path) -> None:
    """Text in, text out: equal except GCONSTS (recomputed from 7-digit text, as Kaldi does)."""
    ref = (gmm_ref / "mono" / "final.mdl.txt").read_bytes().split(b"\n")
    tm, am = mio.read_model(gmm_ref / "mono" / "final.mdl.txt")
    out = tmp_path / "m.txt"
    mio.write_model(out, tm, am, binary=False)
    got = out.read_bytes().split(b"\n")
    assert len(got) == len(ref)
    n_gconsts = 0
    for a, b in zip(got, ref, strict=True):
        if b.startswith(b"<GCONSTS>"):
            n_gconsts += 1
            va = np.array(a.split()[2:-1], dtype=float)
            vb = np.array(b.split()[2:-1], dtype=float)
            np.testing.assert_allclose(va, vb, rtol=2e-5, atol=1e-3)
        else:
            assert a == b
    assert n_gconsts == 118
    # Binary round trip of the same model is exact.
    mio.write_model(tmp_path / "m.bin", tm, am)
    tm2, am2 = mio.read_model(tmp_path / "m.bin")
    assert mio.model_bytes(tm2, am2) == mio.model_bytes(tm, am)


def test_transition_model_structure_equals_kaldi_constructor(gmm_ref: Path, tri1) -> None:
    """Tuples, id maps and derived probs equal TransitionModel(Kaldi's tree, Kaldi's topo)."""
    tm, _ = tri1
    ref = khg.TransitionModel(
        mio.read_tree(gmm_ref / "tri1" / "tree"), mio.read_topo(gmm_ref / "lang_full" / "topo")
    )
    assert mio.transition_tuples(ref) == mio.transition_tuples(tm)
    assert list(ref.id2pdf_id) == list(tm.id2pdf_id)
    assert list(ref.id2state) == list(tm.id2state)
    assert list(ref.state2id) == list(tm.state2id)
    # With the constructor's (topology) probabilities, our rebuild equals Kaldi's bit for bit.
    rebuilt = mio.build_transition_model(ref.topo, mio.transition_tuples(ref))
    assert rebuilt.__getstate__()[6:] == ref.__getstate__()[6:]


def test_read_model_is_usable_for_training(tri1, gmm_ref: Path) -> None:
    """mle_update on the loaded model works; counts proportional to the probs keep them."""
    tm, _ = mio.read_model(gmm_ref / "tri1" / "final.mdl")
    lp = np.array(tm.log_probs, dtype=np.float64)
    counts = np.exp(lp) * 1e4
    counts[0] = 0.0
    tm.mle_update(counts.reshape(-1, 1), khg.MleTransitionUpdateConfig())
    np.testing.assert_allclose(np.array(tm.log_probs), lp, atol=1e-4)
    # An updated model writes and reads back exactly (log-probs and derived values).
    tm2, _ = mio.read_model(gmm_ref / "tri1" / "final.mdl")
    tm2.mle_update(counts.reshape(-1, 1), khg.MleTransitionUpdateConfig())
    back = mio.build_transition_model(tm2.topo, mio.transition_tuples(tm2), tm2.log_probs)
    assert back.__getstate__()[6:] == tm2.__getstate__()[6:]


def test_truncated_model_names_file(gmm_ref: Path, tmp_path: Path) -> None:
    data = (gmm_ref / "tri1" / "final.mdl").read_bytes()
    bad = tmp_path / "bad.mdl"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(mio.KaldiFormatError, match="bad.mdl"):
        mio.read_model(bad)
    bad.write_text("<TransitionModel> <Nonsense>\n")
    with pytest.raises(mio.KaldiFormatError, match="bad.mdl"):
        mio.read_model(bad)


def test_write_model_is_atomic_and_idempotent(tri1, tmp_path: Path) -> None:
    tm, am = tri1
    out = tmp_path / "final.mdl"
    mio.write_model(out, tm, am)
    first = out.read_bytes()
    mio.write_model(out, tm, am)
    assert out.read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.mdl"]


# ----------------------------------------------------------------------------- tree


@pytest.mark.parametrize("system", ["mono", "tri1"])
def test_text_tree_round_trip_equals_copy_tree(gmm_ref: Path, system: str, tmp_path: Path) -> None:
    cd = mio.read_tree(gmm_ref / system / "tree.txt")
    info = dict(
        line.split() for line in (gmm_ref / system / "tree-info.txt").read_text().splitlines()
    )
    assert cd.num_pdfs == int(info["num-pdfs"])
    assert cd.context_width == int(info["context-width"])
    assert cd.central_position == int(info["central-position"])
    out = tmp_path / "tree.txt"
    mio.write_tree(cd, out, binary=False)
    assert out.read_bytes() == (gmm_ref / system / "tree.txt").read_bytes()


def test_binary_tree_read_write_and_text_to_binary(gmm_ref: Path, tmp_path: Path) -> None:
    ref = (gmm_ref / "tri1" / "tree").read_bytes()
    out = tmp_path / "tree"
    mio.write_tree(mio.read_tree(gmm_ref / "tri1" / "tree"), out)
    assert out.read_bytes() == ref
    mio.write_tree(mio.read_tree(gmm_ref / "tri1" / "tree.txt"), out, binary=True)
    assert out.read_bytes() == ref
    # Our text writer agrees with kaldi_hmm_gmm's own writer (Kaldi's code).
    cd = mio.read_tree(out)
    cd.write(False, str(tmp_path / "khg.txt"))
    mio.write_tree(cd, tmp_path / "ours.txt", binary=False)
    assert (tmp_path / "khg.txt").read_bytes() == (tmp_path / "ours.txt").read_bytes()


def test_bad_tree_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "tree.txt"
    bad.write_text("ContextDependency 1 0 ToPdf XE 3 EndContextDependency\n")
    with pytest.raises(mio.KaldiFormatError, match="unknown EventMap type 'XE'"):
        mio.read_tree(bad)


# ----------------------------------------------------------------------------- topology


def test_topology_text_and_binary_round_trip(gmm_ref: Path, tmp_path: Path) -> None:
    src = gmm_ref / "lang_full" / "topo"
    topo = mio.read_topo(src)
    assert list(topo.phones) == list(range(1, 195))
    mio.write_topo(topo, tmp_path / "topo")
    assert (tmp_path / "topo").read_text().split() == src.read_text().split()
    mio.write_topo(topo, tmp_path / "topo.bin", binary=True)
    assert (tmp_path / "topo.bin").read_bytes().startswith(b"\0B<Topology> ")
    back = mio.read_topo(tmp_path / "topo.bin")
    mio.write_topo(back, tmp_path / "topo2")
    assert (tmp_path / "topo2").read_bytes() == (tmp_path / "topo").read_bytes()


# ----------------------------------------------------------------------------- alignments


def test_alignments_all_spellings_agree(gmm_ref: Path) -> None:
    ali_gz = gmm_ref / "tri1" / "ali.1.gz"
    ali = mio.read_alignments(ali_gz)
    assert len(ali) == 167
    assert all(v.dtype == np.int32 for v in ali.values())
    for spec in (
        f"ark:gunzip -c {ali_gz}|",
        f"ark:gunzip -c {gmm_ref / 'tri1' / 'ali.1.txt.gz'}|",
        f"ark,t:{gmm_ref / 'tri1' / 'ali.1.txt.gz'}",
        str(gmm_ref / "tri1" / "ali.1.txt.gz"),
    ):
        other = mio.read_alignments(spec)
        assert list(other) == list(ali), spec
        assert all(np.array_equal(other[k], ali[k]) for k in ali), spec
    # kaldiio agrees with our reader.
    with gzip.open(ali_gz) as f:
        ref = {k: v for k, v in kaldiio.load_ark(f)}
    assert all(np.array_equal(ref[k], ali[k]) for k in ali)


def test_write_alignments_equals_kaldi_bytes(gmm_ref: Path, tmp_path: Path) -> None:
    ali_gz = gmm_ref / "tri1" / "ali.1.gz"
    ali = mio.read_alignments(ali_gz)
    out = tmp_path / "ali.1.gz"
    mio.write_alignments(out, ali)
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(ali_gz.read_bytes())
    first = out.read_bytes()
    mio.write_alignments(out, ali)
    assert out.read_bytes() == first  # deterministic gzip (mtime 0)
    mio.write_alignments(tmp_path / "ali.ark", ali, gz=False)
    back = mio.read_alignments(f"ark:{tmp_path / 'ali.ark'}")
    assert all(np.array_equal(back[k], ali[k]) for k in ali)


def test_scp_alignments_via_kaldiio(tmp_path: Path) -> None:
    ali = {"u1": np.array([1, 2, 3], np.int32), "u2": np.array([4, 5], np.int32)}
    kaldiio.save_ark(str(tmp_path / "a.ark"), ali, scp=str(tmp_path / "a.scp"))
    got = mio.read_alignments(f"scp:{tmp_path / 'a.scp'}")
    assert list(got) == ["u1", "u2"] and all(np.array_equal(got[k], ali[k]) for k in ali)
    mio.write_alignments(tmp_path / "b.ark", ali, gz=False)
    assert (tmp_path / "b.ark").read_bytes() == (tmp_path / "a.ark").read_bytes()


def test_tid_maps_match_ali_to_pdf_and_ali_to_phones(gmm_ref: Path, tri1) -> None:
    tm, _ = tri1
    ali = mio.read_alignments(gmm_ref / "tri1" / "ali.1.gz")
    t2pdf = mio.tid_to_pdf(tm)
    t2phone = mio.tid_to_phone(tm)
    assert t2pdf.shape == t2phone.shape == (3413,)
    assert t2pdf[0] == -1 and t2phone[0] == -1
    pdfs = mio.read_alignments(f"ark,t:{gmm_ref / 'tri1' / 'ali.1.pdf.txt'}")
    assert list(pdfs) == list(ali)
    for utt, tids in ali.items():
        np.testing.assert_array_equal(t2pdf[tids], pdfs[utt], err_msg=utt)
    phones = mio.read_alignments(f"ark,t:{gmm_ref / 'tri1' / 'phones.3utts.perframe.txt'}")
    assert len(phones) == 3
    for utt, per_frame in phones.items():
        np.testing.assert_array_equal(t2phone[ali[utt]], per_frame, err_msg=utt)
    # Same as kaldi_hmm_gmm's own per-id lookups.
    for tid in (1, 2, 17, 1000, 3412):
        assert t2pdf[tid] == tm.transition_id_to_pdf(tid)
        assert t2phone[tid] == tm.transition_id_to_phone(tid)


def test_bad_alignment_names_utterance(tmp_path: Path) -> None:
    bad = tmp_path / "ali.txt"
    bad.write_text("utt1 1 2 3\nutt2 4 x 6\n")
    with pytest.raises(mio.KaldiFormatError, match="utt2"):
        mio.read_alignments(f"ark,t:{bad}")
    with pytest.raises(mio.KaldiFormatError, match="failed"):
        mio.read_alignments(f"ark:gunzip -c {tmp_path / 'missing.gz'}|")
