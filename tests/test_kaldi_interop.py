"""Kaldi tier: real Kaldi reads what pykd's builtin backend writes.

Every file comes from the tiny builtin recipe run (``tiny_builtin_recipe``, no KALDI_ROOT) and is
handed to the Kaldi build in $PYKD_TEST_KALDI_ROOT: data and lang dirs through Kaldi's validators,
models, trees and alignments through Kaldi's info and conversion tools, graphs and log-likelihoods
through Kaldi's decoders, lattices through Kaldi's lattice tools; priors, features and CMVN are
recomputed by Kaldi and compared.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import kaldifst
import numpy as np
import pytest
from kaldi_tools import kaldi, kaldi_workdir

from pykd.data.frames import split_cv
from pykd.data.priors import read_counts
from pykd.decode.decoder import best_path
from pykd.io.compressed import kaldiio
from pykd.io.datadir import read_table
from pykd.kaldi.lattice_io import read_lattices
from pykd.kaldi.model_io import model_info, read_alignments, read_model, tid_to_pdf

pytestmark = [pytest.mark.kaldi, pytest.mark.slow]

# Where the builtin recipe leaves what each Kaldi tool reads (relative to the recipe dir).
RECIPE_LINKS = ("data", "exp", "corpus", "mfcc", "fbank", "conf")
# Decoding options of the tiny recipe (run.sh --decode-opts in tests/recipe_helpers.py).
TINY_BEAMS = "--beam=8 --lattice-beam=4 --max-active=7000 --allow-partial=true"
GMM_ACWT = 0.083333
NNET_ACWT = 0.1


@pytest.fixture(scope="module")
def kwork(repo_root: Path, kaldi_root: Path, tiny_builtin_recipe: Path, tmp_path_factory) -> Path:
    """A Kaldi recipe dir (Kaldi's steps/ utils/) that sees the builtin run's files at the same
    relative paths, so Kaldi's tools read them exactly as a recipe would."""
    work = kaldi_workdir(repo_root, kaldi_root, tmp_path_factory.mktemp("kaldi_reads_pykd"))
    for name in RECIPE_LINKS:
        (work / name).symlink_to(tiny_builtin_recipe / name)
    return work


def kaldi_words(text: str) -> dict[str, list[int]]:
    """'utt w1 w2 ...' lines (Kaldi's int word tables) -> {utt: [w1, w2, ...]}."""
    out = {}
    for line in text.splitlines():
        if line.strip():
            utt, *words = line.split()
            out[utt] = [int(w) for w in words]
    return out


@contextlib.contextmanager
def inside(directory: Path) -> Iterator[None]:
    """Run the block with ``directory`` as the working dir (tables there use relative paths)."""
    here = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(here)


def pykd_best_words(spec: str, acwt: float, cwd: Path) -> dict[str, list[int]]:
    """pykd's 1-best word ids of every lattice in ``spec`` (LM scale 1, acoustic scale ``acwt``)."""
    with inside(cwd):
        lats = list(read_lattices(spec))
    out = {}
    for utt, lat in lats:
        bp = best_path(lat, 1.0, acwt)
        assert bp is not None, f"{spec}: {utt} has no path"
        out[utt] = bp[0]
    return out


# ------------------------------------------------------------------ data and lang directories


@pytest.mark.parametrize(
    "sub", ["train", "dev", "eval", "train_fbank", "dev_fbank", "eval_fbank"]
)  # fmt: skip
def test_data_dirs_pass_kaldis_validate_data_dir(kwork: Path, kaldi_root: Path, sub: str) -> None:
    out = kaldi(kaldi_root, f"utils/validate_data_dir.sh data/{sub}", cwd=kwork)
    assert "Successfully validated data-directory" in out, out


@pytest.mark.parametrize("lang", ["lang", "lang_test", "lang_ug"])
def test_lang_dirs_pass_kaldis_validate_lang(kwork: Path, kaldi_root: Path, lang: str) -> None:
    out = kaldi(kaldi_root, f"utils/validate_lang.pl data/{lang}", cwd=kwork)
    assert "--> SUCCESS" in out and "--> ERROR" not in out, out[-3000:]


# ------------------------------------------------------------- models, trees, alignments


@pytest.mark.parametrize("sys", ["mono", "tri1"])
def test_kaldi_reads_final_mdl_and_tree(kwork: Path, kaldi_root: Path, sys: str) -> None:
    tm, am = read_model(kwork / "exp" / sys / "final.mdl")
    ours = model_info(tm, am)
    info = kaldi(kaldi_root, f"gmm-info exp/{sys}/final.mdl", cwd=kwork)
    theirs = dict(re.findall(r"^number of ([a-z-]+) (\d+)$", info, re.M))
    assert int(theirs["pdfs"]) == ours["pdfs"] and int(theirs["gaussians"]) == ours["gaussians"]
    assert int(theirs["transition-ids"]) == ours["transition-ids"], info
    assert int(theirs["phones"]) == ours["phones"], info
    tree = kaldi(kaldi_root, f"tree-info exp/{sys}/tree", cwd=kwork)
    assert f"num-pdfs {ours['pdfs']}" in tree, tree
    width = 1 if sys == "mono" else 3
    assert f"context-width {width}" in tree and f"central-position {width // 2}" in tree, tree


@pytest.mark.parametrize("ali_dir", ["mono_ali", "tri1_ali"])
def test_kaldi_reads_alignments(kwork: Path, kaldi_root: Path, ali_dir: str) -> None:
    ali = kwork / "exp" / ali_dir
    mdl = f"exp/{ali_dir}/final.mdl"
    tm, _ = read_model(ali / "final.mdl")
    to_pdf = tid_to_pdf(tm)
    for job in sorted(ali.glob("ali.*.gz")):
        rel = f"exp/{ali_dir}/{job.name}"
        pdfs = kaldi(kaldi_root, f'ali-to-pdf {mdl} "ark:gunzip -c {rel}|" ark,t:-', cwd=kwork)
        ours = read_alignments(job)
        theirs = {u: np.array(v) for u, v in kaldi_words(pdfs).items()}
        assert theirs.keys() == ours.keys() and ours, job
        for utt, tids in ours.items():
            np.testing.assert_array_equal(theirs[utt], to_pdf[tids], err_msg=utt)
        shown = kaldi(
            kaldi_root,
            f'show-alignments data/lang/phones.txt {mdl} "ark:gunzip -c {rel}|"',
            cwd=kwork,
        )
        # two lines per utterance (transition-ids, then phones), plus a blank line
        assert sum(line.startswith(tuple(ours)) for line in shown.splitlines()) == 2 * len(ours)


def test_prior_counts_equal_kaldis_analyze_counts(kwork: Path, kaldi_root: Path) -> None:
    """prior.counts = ali-to-pdf | analyze-counts over the training split (CV utterances out)."""
    for sys in ("dnn", "hdnn_kd"):
        ours = read_counts(kwork / "exp" / sys / "prior.counts")
        cv = (kwork / "exp" / sys / "cv_utts").read_text().split()
        utt2spk = read_table(kwork / "data" / "train_fbank" / "utt2spk")
        assert set(split_cv(utt2spk)[1]) == set(cv)  # the list is the split the trainer used
        (kwork / "cv_utts").write_text("\n".join(cv) + "\n")
        kaldi(
            kaldi_root,
            'ali-to-pdf exp/tri1_ali/final.mdl "ark:gunzip -c exp/tri1_ali/ali.*.gz | '
            'copy-int-vector ark:- ark,t:- | utils/filter_scp.pl --exclude cv_utts |" ark:- | '
            f"analyze-counts --binary=false --counts-dim={ours.size} ark:- kaldi.counts",
            cwd=kwork,
        )
        np.testing.assert_allclose(read_counts(kwork / "kaldi.counts"), ours, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------ graphs, decoders


def test_kaldi_reads_hclg_and_decodes_with_it(kwork: Path, kaldi_root: Path) -> None:
    """fstinfo and Kaldi's gmm-latgen-faster on pykd's HCLG.fst + final.mdl; Kaldi's 1-best equals
    pykd's own decode of the same utterances on most of them (same options)."""
    graph = kwork / "exp" / "tri1" / "graph"
    info = kaldi(kaldi_root, "fstinfo exp/tri1/graph/HCLG.fst", cwd=kwork)
    states = int(re.search(r"# of states\s+(\d+)", info).group(1))
    assert states == kaldifst.StdVectorFst.read(str(graph / "HCLG.fst")).num_states
    feats = (
        "ark,s,cs:apply-cmvn --utt2spk=ark:data/dev/utt2spk scp:data/dev/cmvn.scp "
        "scp:data/dev/feats.scp ark:- | add-deltas ark:- ark:- |"
    )
    log = kaldi(
        kaldi_root,
        f"gmm-latgen-faster {TINY_BEAMS} --acoustic-scale={GMM_ACWT} "
        f"--word-symbol-table=exp/tri1/graph/words.txt exp/tri1/final.mdl "
        f'exp/tri1/graph/HCLG.fst "{feats}" "ark:|gzip -c > kaldi_lat.gz" 2>&1',
        cwd=kwork,
    )
    utts = read_table(kwork / "data" / "dev" / "utt2spk")
    assert re.search(rf"Done {len(utts)} utterances, failed for 0", log), log[-2000:]
    theirs = pykd_best_words("ark:kaldi_lat.gz", GMM_ACWT, kwork)
    ours = pykd_best_words("ark:exp/tri1/decode_dev/lat.1.gz", GMM_ACWT, kwork)
    ours |= pykd_best_words("ark:exp/tri1/decode_dev/lat.2.gz", GMM_ACWT, kwork)
    assert theirs.keys() == ours.keys() == utts.keys()
    same = sum(theirs[u] == ours[u] for u in utts)
    assert same >= 0.9 * len(utts), f"identical 1-best on {same} of {len(utts)} utterances"


@pytest.mark.parametrize(
    "decode,acwt",
    [
        ("tri1/decode_dev", GMM_ACWT),
        ("hdnn_kd/decode_dev", NNET_ACWT),
        ("dnn/decode_eval", NNET_ACWT),
    ],
)
def test_kaldi_lattice_tools_read_pykd_lattices(
    kwork: Path, kaldi_root: Path, decode: str, acwt: float
) -> None:
    """lattice-copy reads every lattice; lattice-best-path gives pykd's 1-best words exactly."""
    for lat in sorted((kwork / "exp" / decode).glob("lat.*.gz")):
        rel = f"exp/{decode}/{lat.name}"
        ours = pykd_best_words(f"ark:{rel}", acwt, kwork)
        copied = kaldi(
            kaldi_root, f'lattice-copy "ark:gunzip -c {rel}|" ark,t:- 2>&1 >/dev/null', cwd=kwork
        )
        assert f"Done copying {len(ours)} lattices" in copied, copied
        words = kaldi(
            kaldi_root,
            f'lattice-best-path --acoustic-scale={acwt} "ark:gunzip -c {rel}|" ark,t:-',
            cwd=kwork,
        )
        assert kaldi_words(words) == ours, rel


def test_kaldi_reads_denominator_lattices(kwork: Path, kaldi_root: Path) -> None:
    """The denominator lattices (ark + scp, random access) through Kaldi's scp reader."""
    ours = pykd_best_words("scp:exp/hdnn_kd_denlats/lat.scp", NNET_ACWT, kwork)
    words = kaldi(
        kaldi_root,
        f"lattice-best-path --acoustic-scale={NNET_ACWT} scp:exp/hdnn_kd_denlats/lat.scp ark,t:-",
        cwd=kwork,
    )
    assert kaldi_words(words) == ours and ours


def test_kaldi_decodes_pykd_loglikes(kwork: Path, kaldi_root: Path) -> None:
    """pykd make-loglikes -> Kaldi's latgen-faster-mapped: every utterance decoded, and the same
    1-best as pykd's decode of the same network on most utterances."""
    out = kwork / "loglikes"
    out.mkdir(exist_ok=True)
    subprocess.run(
        ["pykd", "make-loglikes", "--prior-counts", "exp/hdnn_kd/prior.counts",
         "exp/hdnn_kd/final.pt", "data/dev_fbank", "loglikes/dev.ark", "loglikes/dev.scp"],
        cwd=kwork, check=True, capture_output=True,
    )  # fmt: skip
    log = kaldi(
        kaldi_root,
        f"latgen-faster-mapped {TINY_BEAMS} --acoustic-scale={NNET_ACWT} "
        "--word-symbol-table=exp/tri1/graph/words.txt exp/tri1/final.mdl exp/tri1/graph/HCLG.fst "
        'scp:loglikes/dev.scp "ark:|gzip -c > loglikes/lat.gz" 2>&1',
        cwd=kwork,
    )
    utts = read_table(kwork / "data" / "dev_fbank" / "utt2spk")
    assert re.search(rf"Done {len(utts)} utterances, failed for 0", log), log[-2000:]
    theirs = pykd_best_words("ark:loglikes/lat.gz", NNET_ACWT, kwork)
    ours: dict[str, list[int]] = {}
    for lat in sorted((kwork / "exp" / "hdnn_kd" / "decode_dev").glob("lat.*.gz")):
        ours |= pykd_best_words(f"ark:exp/hdnn_kd/decode_dev/{lat.name}", NNET_ACWT, kwork)
    assert theirs.keys() == ours.keys() == utts.keys()
    same = sum(theirs[u] == ours[u] for u in utts)
    assert same >= 0.9 * len(utts), f"identical 1-best on {same} of {len(utts)} utterances"


# ------------------------------------------------------------------------ features, CMVN

# Largest differences from Kaldi's binaries on the same wavs (both float, dither 0; float FFT and
# log rounding), measured on the tiny dev set (22 utterances): fbank 2.8e-4, MFCC 4.7e-4 (mean
# 1.2e-6 / 1.3e-5). The bounds leave ~4x headroom.
FEATURE_TOLERANCE = {"fbank": 1e-3, "mfcc": 2e-3}


@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
def test_features_equal_kaldis(kwork: Path, kaldi_root: Path, kind: str) -> None:
    subprocess.run(
        ["pykd", "compute-feats", "--kind", kind, "--config", f"conf/{kind}.conf", "data/dev",
         f"pykd_{kind}.ark", f"pykd_{kind}.scp"],
        cwd=kwork, check=True, capture_output=True,
    )  # fmt: skip
    kaldi(
        kaldi_root,
        f"compute-{kind}-feats --config=conf/{kind}.conf scp:data/dev/wav.scp ark:kaldi_{kind}.ark",
        cwd=kwork,
    )
    ours = dict(kaldiio.load_ark(str(kwork / f"pykd_{kind}.ark")))
    theirs = dict(kaldiio.load_ark(str(kwork / f"kaldi_{kind}.ark")))
    assert ours.keys() == theirs.keys() and ours
    worst = max(float(np.abs(ours[u] - theirs[u]).max()) for u in ours)
    assert all(ours[u].shape == theirs[u].shape for u in ours)
    assert worst < FEATURE_TOLERANCE[kind], f"{kind}: max abs difference {worst}"


@pytest.mark.parametrize("sub", ["dev", "dev_fbank"])
def test_compressed_features_read_as_kaldi_reads_them(
    kwork: Path, kaldi_root: Path, sub: str
) -> None:
    """feats.scp (compressed arks): pykd's reader gives exactly the floats of Kaldi's copy-feats."""
    kaldi(kaldi_root, f"copy-feats scp:data/{sub}/feats.scp ark:kaldi_{sub}.ark", cwd=kwork)
    theirs = dict(kaldiio.load_ark(str(kwork / f"kaldi_{sub}.ark")))
    with inside(kwork):
        ours = dict(kaldiio.load_scp(f"data/{sub}/feats.scp"))
    assert ours.keys() == theirs.keys() and ours
    for utt in ours:
        np.testing.assert_array_equal(ours[utt], theirs[utt], err_msg=utt)


@pytest.mark.parametrize("sub", ["dev", "dev_fbank"])
def test_cmvn_stats_equal_kaldis(kwork: Path, kaldi_root: Path, sub: str) -> None:
    """Kaldi's compute-cmvn-stats on pykd's feats.scp = pykd's cmvn.scp per speaker, bit for bit."""
    kaldi(
        kaldi_root,
        f"compute-cmvn-stats --spk2utt=ark:data/{sub}/spk2utt scp:data/{sub}/feats.scp "
        f"ark:kaldi_cmvn_{sub}.ark",
        cwd=kwork,
    )
    with inside(kwork):
        ours = dict(kaldiio.load_scp(f"data/{sub}/cmvn.scp"))
    theirs = dict(kaldiio.load_ark(str(kwork / f"kaldi_cmvn_{sub}.ark")))
    assert ours.keys() == theirs.keys() == read_table(kwork / "data" / sub / "spk2utt").keys()
    for spk in ours:
        np.testing.assert_array_equal(ours[spk], theirs[spk], err_msg=spk)
