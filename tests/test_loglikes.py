"""Network log-likelihoods for hybrid decoding: maths, ark/scp, validation, Kaldi decoding."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch
from torch import nn

from pykd.cli import build_parser
from pykd.data.priors import log_priors, read_counts, write_counts
from pykd.decode.decoder import best_path
from pykd.frontend.model import ModelError, checkpoint_num_pdfs, load_acoustic_model, module_forward
from pykd.frontend.splice import splice
from pykd.kaldi.lattice_io import read_lattices
from pykd.models import build_model, model_config_from_dict
from pykd.nnet.loglikes import loglikes_from_logits, write_loglikes
from pykd.nnet.validate import LoglikesError, num_pdfs_of_model, validate_loglikes

REPO = Path(__file__).resolve().parents[1]
ACWT = 0.083333


def _run_cli(argv: list[str]) -> int:
    """Run a ``pykd`` sub-command's handler directly, so its exceptions reach the test."""
    args = build_parser().parse_args(argv)
    return args.func(args)


def _int_table(path: Path) -> dict[str, list[int]]:
    return {f[0]: [int(x) for x in f[1:]] for f in (ln.split() for ln in path.open()) if f}


# ----------------------------------------------------------------------------- maths
def test_log_softmax_minus_scaled_log_prior():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 5, size=(7, 11)).astype(np.float32)
    logits[0, 3] = 80.0  # large logit: no overflow
    counts = rng.integers(1, 100, size=11).astype(np.float64) + 0.5
    lp = np.log(counts / counts.sum())
    for scale in (0.0, 0.5, 1.0):
        got = loglikes_from_logits(logits, lp, scale)
        x = logits.astype(np.float64)
        m = x.max(1, keepdims=True)
        ref = x - (m + np.log(np.exp(x - m).sum(1, keepdims=True))) - scale * lp
        assert got.dtype == np.float32 and got.shape == (7, 11)
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-5)
        # adding the prior back gives posteriors that sum to one per frame
        np.testing.assert_allclose(np.exp(got.astype(np.float64) + scale * lp).sum(1), 1, 1e-5)
    assert np.isfinite(loglikes_from_logits(logits, lp, 1.0)).all()
    with pytest.raises(LoglikesError, match="10 log-priors for 11"):
        loglikes_from_logits(logits, lp[:10], 1.0)


def test_log_priors_from_kaldi_counts(kaldi_ref: Path):
    counts = read_counts(kaldi_ref / "nnet/ali_train_pdf.counts")
    lp = log_priors(counts)
    assert lp.shape == (272,)
    np.testing.assert_allclose(np.exp(lp).sum(), 1.0, rtol=1e-12)
    # the unseen pdf 1 (SPN) has count 0.5: a tiny prior, so a large boost after division
    assert counts[1] == 0.5 and lp[1] == lp.min()


# ----------------------------------------------------------------------------- writing
def _utts(rng: np.random.Generator, dim: int = 3) -> list[tuple[str, np.ndarray]]:
    return [
        (f"utt{i}", rng.normal(size=(n, dim)).astype(np.float32)) for i, n in enumerate([5, 1, 9])
    ]


def test_write_loglikes_ark_scp_roundtrip(tmp_path: Path):
    rng = np.random.default_rng(1)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(9, 16), nn.Sigmoid(), nn.Linear(16, 6))
    utts = _utts(rng)
    lp = np.log(np.full(6, 1 / 6))
    ark, scp = tmp_path / "out/ll.1.ark", tmp_path / "out/ll.1.scp"
    frames = write_loglikes(
        module_forward(net, chunk_frames=4), utts, lp, 0.7, ark, scp,
        splice_fn=lambda x: splice(x, 1, 1),
    )  # fmt: skip
    assert frames == {"utt0": 5, "utt1": 1, "utt2": 9}
    back = dict(kaldiio.load_scp(str(scp)))
    assert list(back) == ["utt0", "utt1", "utt2"]
    assert list(dict(kaldiio.load_ark(str(ark)))) == ["utt0", "utt1", "utt2"]
    for utt, feats in utts:
        with torch.no_grad():
            logits = net(torch.from_numpy(splice(feats, 1, 1)))
        want = (torch.log_softmax(logits.double(), 1).numpy() - 0.7 * lp).astype(np.float32)
        assert back[utt].dtype == np.float32 and back[utt].shape == (len(feats), 6)
        np.testing.assert_allclose(back[utt], want, atol=1e-6)
    assert scp.read_text().split()[1].startswith(str(ark) + ":")  # scp names the final ark


def test_write_loglikes_is_atomic(tmp_path: Path):
    def forward(x: np.ndarray) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 4)
        if x.shape[0] == 9:
            out[2, 1] = float("nan")
        return out

    ark, scp = tmp_path / "ll.ark", tmp_path / "ll.scp"
    with pytest.raises(LoglikesError, match="utterance utt2: non-finite"):
        write_loglikes(forward, _utts(np.random.default_rng(2)), None, 1.0, ark, scp)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no partial ark, no scp


def test_load_acoustic_model_both_layouts(tmp_path: Path):
    cfg = {"type": "hdnn", "hdnn": {"num_layers": 2, "hidden_dim": 8}}
    torch.manual_seed(3)
    model = build_model(model_config_from_dict(cfg), 22, 5)
    x = torch.randn(4, 22)
    with torch.no_grad():
        want = model(x)
    flat = {
        "model_config": cfg, "state_dict": model.state_dict(), "num_pdfs": 5,
        "input": {"splice": 5, "cmvn": "mean"},
    }  # fmt: skip
    trainer = {"model": model.state_dict(), "meta": {"model_config": cfg, "num_pdfs": 5}}
    for name, ckpt in (("flat.pt", flat), ("trainer.pt", trainer)):
        torch.save(ckpt, tmp_path / name)
        loaded, meta = load_acoustic_model(tmp_path / name)
        assert not loaded.training
        assert meta["input_dim"] == 22 and meta["num_pdfs"] == 5
        assert meta["input"] == {"splice": 5, "cmvn": "mean"}
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), want)
        assert checkpoint_num_pdfs(tmp_path / name) == 5
    bad = dict(flat, num_pdfs=6)
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="does not fit"):
        load_acoustic_model(tmp_path / "bad.pt")
    torch.save({"weights": 1}, tmp_path / "odd.pt")
    with pytest.raises(ModelError, match="expected keys"):
        load_acoustic_model(tmp_path / "odd.pt")


# ----------------------------------------------------------------------------- validation
def _write(tmp_path: Path, mats: dict[str, np.ndarray]) -> Path:
    scp = tmp_path / "ll.scp"
    kaldiio.save_ark(str(tmp_path / "ll.ark"), mats, scp=str(scp))
    return scp


def test_validate_loglikes_accepts_good_and_names_bad_utts(tmp_path: Path):
    rng = np.random.default_rng(4)
    good = {u: rng.normal(size=(n, 6)).astype(np.float32) for u, n in [("a", 3), ("b", 4)]}
    frames = {"a": 3, "b": 4}
    rep = validate_loglikes(_write(tmp_path, good), 6, frames)
    assert rep.ok and rep.num_utts == 2 and rep.num_frames == 7

    with pytest.raises(LoglikesError, match=r"wrong dim.*b has 5 columns, model has 6 pdfs"):
        validate_loglikes(_write(tmp_path, {**good, "b": good["b"][:, :5]}), 6, frames)
    nan = good["a"].copy()
    nan[2, 4] = np.nan
    with pytest.raises(LoglikesError, match=r"non-finite.*a has NaN/inf in 1 rows \(first row 2\)"):
        validate_loglikes(_write(tmp_path, {**good, "a": nan}), 6, frames)
    inf = good["b"].copy()
    inf[0, 0] = -np.inf
    with pytest.raises(LoglikesError, match=r"b has NaN/inf"):
        validate_loglikes(_write(tmp_path, {**good, "b": inf}), 6)
    with pytest.raises(LoglikesError, match=r"missing.*b has no log-likelihoods"):
        validate_loglikes(_write(tmp_path, {"a": good["a"]}), 6, frames)
    with pytest.raises(LoglikesError, match=r"frame count.*b has 3 rows for 4 frames"):
        validate_loglikes(_write(tmp_path, {**good, "b": good["b"][:3]}), 6, frames)
    with pytest.raises(LoglikesError, match=r"unknown utterance.*c is not in the data dir"):
        validate_loglikes(_write(tmp_path, {**good, "c": good["a"]}), 6, frames)
    # without raising: every problem is listed
    bad = {"a": nan, "b": good["b"][:2, :5]}
    rep = validate_loglikes(_write(tmp_path, bad), 6, {**frames, "z": 1}, raise_on_error=False)
    assert set(rep.problems) == {"wrong dim", "non-finite", "frame count", "missing"}


def test_validate_cli_with_data_dir_and_kaldi_model(kaldi_ref: Path, tmp_path: Path, caplog):
    mdl = kaldi_ref / "gmm/tri1/final.mdl"
    assert num_pdfs_of_model(mdl) == 272
    ref = dict(kaldiio.load_ark(str(kaldi_ref / "nnet/loglikes.ark")))
    data = tmp_path / "data"
    data.mkdir()
    kaldiio.save_ark(
        str(data / "feats.ark"),
        {u: np.zeros((len(m), 2), np.float32) for u, m in ref.items()},
        scp=str(data / "feats.scp"),
    )
    (data / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in ref))
    scp = _write(tmp_path, ref)
    assert (
        _run_cli(["validate-loglikes", "--model", str(mdl), "--data-dir", str(data), str(scp)]) == 0
    )
    (data / "utt2spk").write_text("".join(f"{u} x\n" for u in [*ref, "rms-001"]))
    with pytest.raises(LoglikesError, match="rms-001 has no log-likelihoods"):
        _run_cli(["validate-loglikes", "--num-pdfs", "272", "--data-dir", str(data), str(scp)])
    with pytest.raises(LoglikesError, match="model has 336 pdfs"):
        _run_cli(["validate-loglikes", "--num-pdfs", "336", str(scp)])


def test_validate_cli_does_not_import_torch(kaldi_ref: Path, tmp_path: Path):
    """Every network decode validates each set's log-likelihoods in a process of its own:
    against a GMM model that process must not import torch (1.2 of its 1.6 s otherwise)."""
    ref = dict(kaldiio.load_ark(str(kaldi_ref / "nnet/loglikes.ark")))
    scp = _write(tmp_path, ref)
    code = (
        "import sys; from pykd.cli import main; "
        f"rc = main(['validate-loglikes', '--model', {str(kaldi_ref / 'gmm/tri1/final.mdl')!r}, "
        f"{str(scp)!r}]); print(rc, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False"], out.stdout + out.stderr


# ----------------------------------------------------------------------------- make-loglikes CLI
def test_make_loglikes_cli_cmvn_splice_priors(tmp_path: Path):
    rng = np.random.default_rng(5)
    data = tmp_path / "data"
    data.mkdir()
    feats = {
        f"s{i}-u{j}": rng.normal(3, 2, size=(4 + 3 * j, 4)).astype(np.float32)
        for i in (1, 2)
        for j in (1, 2)
    }
    kaldiio.save_ark(str(data / "feats.ark"), feats, scp=str(data / "feats.scp"))
    utt2spk = {u: u.split("-")[0] for u in feats}
    (data / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in utt2spk.items()))
    stats = {}
    for spk in ("s1", "s2"):
        fs = np.concatenate([f for u, f in feats.items() if utt2spk[u] == spk])
        st = np.zeros((2, 5))
        st[0, :4], st[0, 4], st[1, :4] = fs.sum(0), len(fs), (fs**2).sum(0)
        stats[spk] = st
    kaldiio.save_ark(str(data / "cmvn.ark"), stats, scp=str(data / "cmvn.scp"))
    cfg = {"type": "dnn", "dnn": {"num_layers": 1, "hidden_dim": 8}}
    torch.manual_seed(6)
    model = build_model(model_config_from_dict(cfg), 4 * 5, 3)
    ckpt = tmp_path / "final.pt"
    torch.save(
        {
            "model_config": cfg,
            "state_dict": model.state_dict(),
            "num_pdfs": 3,
            "input": {"splice": 2, "cmvn": "mean"},
        },
        ckpt,
    )
    counts = np.array([10.5, 1.5, 30.5])
    write_counts(tmp_path / "prior.counts", counts)
    ark, scp = tmp_path / "ll.ark", tmp_path / "ll.scp"
    rc = _run_cli(
        [
            "make-loglikes",
            "--prior-counts",
            str(tmp_path / "prior.counts"),
            "--prior-scale",
            "0.5",
            str(ckpt),
            str(data),
            str(ark),
            str(scp),
        ]
    )
    assert rc == 0
    back = dict(kaldiio.load_scp(str(scp)))
    assert set(back) == set(feats)
    lp = np.log(counts / counts.sum())
    for u, f in feats.items():
        st = stats[utt2spk[u]]
        x = splice((f - st[0, :4] / st[0, 4]).astype(np.float32), 2, 2)
        with torch.no_grad():
            logits = model(torch.from_numpy(x)).double()
        want = torch.log_softmax(logits, 1).numpy() - 0.5 * lp
        np.testing.assert_allclose(back[u], want, atol=2e-5)
    write_counts(tmp_path / "prior.counts", counts[:2])
    with pytest.raises(LoglikesError, match="has 2 counts, the model 3 pdfs"):
        _run_cli(
            [
                "make-loglikes",
                "--prior-counts",
                str(tmp_path / "prior.counts"),
                str(ckpt),
                str(data),
                str(ark),
                str(scp),
            ]
        )


# ----------------------------------------------------------------------------- Kaldi decoding
def _ref_data_dir(ref: Path, out: Path, utts: list[str]) -> None:
    """utt2spk/spk2utt/text of Kaldi's three nnet/ test utterances (all the decoder reads)."""
    utt2spk = dict(ln.split() for ln in (ref / "gmm/data/test/utt2spk").read_text().splitlines())
    text = dict(
        ln.split(maxsplit=1) for ln in (ref / "gmm/data/test/text").read_text().splitlines()
    )
    out.mkdir(parents=True)
    spks = sorted({utt2spk[u] for u in utts})
    (out / "utt2spk").write_text("".join(f"{u} {utt2spk[u]}\n" for u in utts))
    (out / "spk2utt").write_text(
        "".join(f"{s} {' '.join(u for u in utts if utt2spk[u] == s)}\n" for s in spks)
    )
    (out / "text").write_text("".join(f"{u} {text[u]}\n" for u in utts))


def test_our_loglikes_decode_to_kaldis_best_path(kaldi_ref: Path, tmp_path: Path):
    """Kaldi's GMM log-likelihoods through our writer (identity "model", zero priors): the
    per-frame log-softmax normalisation shifts every path equally, so the best path is Kaldi's."""
    ref = dict(kaldiio.load_ark(str(kaldi_ref / "nnet/loglikes.ark")))
    utts = sorted(ref)
    ll = tmp_path / "exp/dnn/decode/loglikes"
    frames = write_loglikes(
        lambda x: torch.tensor(x), ((u, ref[u]) for u in utts), np.zeros(272), 1.0,
        ll / "loglikes.1.ark", ll / "loglikes.scp",
    )  # fmt: skip
    assert frames == {u: len(ref[u]) for u in utts}
    data = tmp_path / "data/sub3"
    _ref_data_dir(kaldi_ref, data, utts)
    mdl = kaldi_ref / "gmm/tri1/final.mdl"
    validate_loglikes(ll / "loglikes.scp", num_pdfs_of_model(mdl), frames, utts)
    dec = tmp_path / "exp/dnn/decode"
    proc = subprocess.run(
        ["steps_kd/decode_loglikes.sh", "--nj", "1", "--model", str(mdl),
         str(kaldi_ref / "gmm/tri1/graph"), str(data), str(ll / "loglikes.scp"), str(dec)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    words = {}
    for j in (1,):
        for utt, lat in read_lattices(str(dec / f"lat.{j}.gz")):
            words[utt] = best_path(lat, acoustic_scale=ACWT)[0]
    assert words == _int_table(kaldi_ref / "nnet/best_path.words.int")
    assert (dec / "scoring_kaldi/best_wer").read_text().startswith("%WER 0.00 [ 0 / 19,")


def test_decode_nnet_sh_rejects_bad_inputs(kaldi_ref: Path, tmp_path: Path):
    data = tmp_path / "data"
    _ref_data_dir(kaldi_ref, data, ["awb-186"])
    nnet = tmp_path / "nnet"
    nnet.mkdir()
    args = [str(kaldi_ref / "gmm/tri1/graph"), str(data), str(nnet), str(tmp_path / "dec")]
    proc = subprocess.run(
        ["steps_kd/decode_nnet.sh", *args], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "no such file" in proc.stderr


def test_decode_nnet_sh_end_to_end(kaldi_ref: Path, tmp_path: Path):
    """Checkpoint -> make_loglikes.sh -> validation -> decode_loglikes.sh -> scoring, on Kaldi's
    39-dim CMN+delta features of the 3 nnet/ utterances, a tiny random DNN and Kaldi's priors."""
    import gzip
    import io

    raw = gzip.decompress((kaldi_ref / "nnet/feats.cmvn_deltas.txt.gz").read_bytes())
    feats = dict(kaldiio.load_ark(io.BytesIO(raw)))
    utts = sorted(feats)
    data = tmp_path / "data/sub3"
    _ref_data_dir(kaldi_ref, data, utts)
    kaldiio.save_ark(str(data / "feats.ark"), feats, scp=str(data / "feats.scp"))
    nnet, gmm = tmp_path / "exp/dnn", tmp_path / "exp/tri1"
    nnet.mkdir(parents=True)
    gmm.mkdir(parents=True)
    shutil.copy(kaldi_ref / "gmm/tri1/final.mdl", gmm / "final.mdl")
    shutil.copy(kaldi_ref / "nnet/ali_train_pdf.counts", nnet / "prior.counts")
    cfg = {"type": "dnn", "dnn": {"num_layers": 1, "hidden_dim": 16}}
    torch.manual_seed(7)
    model = build_model(model_config_from_dict(cfg), 39 * 3, 272)
    torch.save(
        {"model": model.state_dict(),
         "meta": {"model_config": cfg, "num_pdfs": 272, "input": {"splice": 1, "cmvn": "none"}}},
        nnet / "final.pt",
    )  # fmt: skip
    dec = nnet / "decode_sub3"
    proc = subprocess.run(
        ["steps_kd/decode_nnet.sh", "--nj", "2", "--beam", "8", "--lattice-beam", "3",
         "--gmm-dir", str(gmm),
         str(kaldi_ref / "gmm/tri1/graph"), str(data), str(nnet), str(dec)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    decoded = [u for j in (1, 2) for u, _ in read_lattices(str(dec / f"lat.{j}.gz"))]
    assert sorted(decoded) == utts
    assert (dec / "scoring_kaldi/best_wer").read_text().startswith("%WER")
    assert not list((dec / "loglikes").glob("*.ark"))  # removed after decoding (default)
    assert "OK, 3 utterances" in (dec / "loglikes/log/validate.log").read_text()

    # a model with the wrong number of outputs is stopped before decoding, naming the problem
    bad = build_model(model_config_from_dict(cfg), 39 * 3, 271)
    torch.save(
        {"model": bad.state_dict(),
         "meta": {"model_config": cfg, "num_pdfs": 271, "input": {"splice": 1, "cmvn": "none"}}},
        nnet / "final.pt",
    )  # fmt: skip
    (nnet / "prior.counts").write_text(" [ " + "1 " * 271 + "]\n")
    proc = subprocess.run(
        ["steps_kd/decode_nnet.sh", "--nj", "1", "--gmm-dir", str(gmm),
         str(kaldi_ref / "gmm/tri1/graph"), str(data), str(nnet), str(tmp_path / "dec_bad")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "awb-186 has 271 columns, model has 272 pdfs" in proc.stderr
    assert not list((tmp_path / "dec_bad").glob("lat.*.gz"))
