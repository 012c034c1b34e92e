"""The exported model (pykd export-model): one ONNX file from raw features to log-likelihoods.

Checked against the checkpoint's own path (make-loglikes from final.pt), against an independent
numpy reference of online CMVN + splice, chunk by chunk against whole utterances, int8 against
fp32, and bad files / inputs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from pykd.cli import build_parser
from pykd.data.priors import log_priors, write_counts
from pykd.deploy.export import export_model, global_cmvn_prior
from pykd.deploy.loglikes import stream_utterance
from pykd.deploy.options import ExportOptions
from pykd.deploy.runtime import ExportedModel, ExportedModelError
from pykd.frontend.splice import splice
from pykd.models import build_model, model_config_from_dict

REPO = Path(__file__).resolve().parents[1]
DIM, SPLICE, PDFS = 6, 2, 7
HDNN = {"type": "hdnn", "hdnn": {"num_layers": 3, "hidden_dim": 48}}


def _data_dir(root: Path, rng: np.random.Generator) -> Path:
    """Two speakers, utterances of 1..60 frames (a 1-frame one too), Kaldi cmvn.scp per speaker."""
    data = root / "data"
    data.mkdir()
    lengths = {"a-1": 60, "a-2": 1, "a-3": 17, "b-1": 45, "b-2": 3}
    feats = {
        u: rng.normal(2.0 if u[0] == "a" else -1.0, 1.5, size=(n, DIM)).astype(np.float32)
        for u, n in lengths.items()
    }
    kaldiio.save_ark(str(data / "feats.ark"), feats, scp=str(data / "feats.scp"))
    (data / "utt2spk").write_text("".join(f"{u} {u[0]}\n" for u in feats))
    (data / "spk2utt").write_text("a a-1 a-2 a-3\nb b-1 b-2\n")
    stats = {}
    for spk in "ab":
        fs = np.concatenate([f for u, f in feats.items() if u[0] == spk]).astype(np.float64)
        st = np.zeros((2, DIM + 1))
        st[0, :DIM], st[0, DIM], st[1, :DIM] = fs.sum(0), len(fs), (fs**2).sum(0)
        stats[spk] = st
    kaldiio.save_ark(str(data / "cmvn.ark"), stats, scp=str(data / "cmvn.scp"))
    return data


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A small trained-shape HDNN checkpoint, priors, a data dir, and its two exports."""
    root = tmp_path_factory.mktemp("deploy")
    rng = np.random.default_rng(3)
    data = _data_dir(root, rng)
    torch.manual_seed(4)
    model = build_model(model_config_from_dict(HDNN), DIM * (2 * SPLICE + 1), PDFS)
    with torch.no_grad():  # logits far from uniform, so that argmax agreement means something
        model.output.weight.mul_(8.0)
    ckpt = root / "final.pt"
    torch.save(
        {"model_config": HDNN, "state_dict": model.state_dict(), "num_pdfs": PDFS,
         "input": {"splice": SPLICE, "cmvn": "mean"}},
        ckpt,
    )  # fmt: skip
    counts = rng.uniform(5, 500, size=PDFS)
    write_counts(root / "prior.counts", counts)
    speaker = export_model(
        ckpt, root / "spk", ExportOptions(str(root / "prior.counts"), 0.8, "speaker")
    )
    online = export_model(
        ckpt, root / "online",
        ExportOptions(str(root / "prior.counts"), 0.8, "online", str(data), prior_frames=10.0),
    )  # fmt: skip
    return {"root": root, "data": data, "model": model, "ckpt": ckpt, "counts": counts,
            "speaker": speaker, "online": online}  # fmt: skip


def _feats(data: Path) -> dict[str, np.ndarray]:
    return {u: np.asarray(m) for u, m in kaldiio.load_scp(str(data / "feats.scp")).items()}


def _cli(argv: list[str]) -> None:
    """Run a pykd command in this process; its exceptions propagate (as the dispatcher logs)."""
    args = build_parser().parse_args(argv)
    assert args.func(args) == 0


def test_speaker_cmvn_export_equals_the_checkpoints_loglikes(setup, tmp_path: Path) -> None:
    """make-loglikes --exported (fp32, speaker CMVN) = make-loglikes from final.pt, every utt."""
    root, data = setup["root"], setup["data"]
    ckpt = str(setup["ckpt"])
    _cli(["make-loglikes", "--prior-counts", str(root / "prior.counts"), "--prior-scale", "0.8",
          ckpt, str(data), str(tmp_path / "ck.ark"), str(tmp_path / "ck.scp")])  # fmt: skip
    _cli(["make-loglikes", "--exported", str(root / "spk/model.onnx"), str(data),
          str(tmp_path / "ex.ark"), str(tmp_path / "ex.scp")])  # fmt: skip
    want = dict(kaldiio.load_scp(str(tmp_path / "ck.scp")))
    got = dict(kaldiio.load_scp(str(tmp_path / "ex.scp")))
    assert got.keys() == want.keys() == _feats(data).keys()
    for utt in want:
        np.testing.assert_allclose(got[utt], want[utt], atol=1e-4, err_msg=utt)
    assert setup["speaker"]["max_abs_diff_fp32_vs_torch"] < 1e-4
    assert setup["speaker"]["model"]["num_params"] == sum(
        p.numel() for p in setup["model"].parameters()
    )


def _online_reference(feats: np.ndarray, prior: np.ndarray, model, counts, scale) -> np.ndarray:
    """Independent reference: frame t normalised by the mean of prior + frames 0..t (float64),
    spliced with edge frames repeated, network, log-softmax minus the scaled log-prior."""
    sums = prior[0, :DIM].astype(np.float64) + np.cumsum(feats.astype(np.float64), 0)
    count = prior[0, DIM] + np.arange(1, len(feats) + 1)
    normed = (feats - sums / count[:, None]).astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(splice(normed, SPLICE, SPLICE))).double()
    return torch.log_softmax(logits, 1).numpy() - scale * log_priors(counts)


def test_online_cmvn_matches_a_numpy_reference(setup) -> None:
    data = setup["data"]
    exported = ExportedModel(setup["root"] / "online/model.onnx")
    prior = global_cmvn_prior(data, 10.0)
    np.testing.assert_allclose(exported.info.online_prior_stats, prior, rtol=1e-6)
    assert prior[0, DIM] == pytest.approx(10.0)
    for utt, feats in _feats(data).items():
        want = _online_reference(feats, prior, setup["model"], setup["counts"], 0.8)
        np.testing.assert_allclose(exported.utterance(feats), want, atol=1e-4, err_msg=utt)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 20, 100])
def test_streaming_equals_whole_utterance(setup, chunk: int) -> None:
    """Chunks of any size (shorter than the splice too) give the whole-utterance output."""
    data = setup["data"]
    stats = dict(kaldiio.load_scp(str(data / "cmvn.scp")))
    for name in ("online", "spk"):
        exported = ExportedModel(setup["root"] / name / "model.onnx")
        for utt, feats in _feats(data).items():
            spk_stats = stats[utt[0]] if name == "spk" else None
            whole = exported.utterance(feats, spk_stats)
            assert whole.shape == (len(feats), PDFS)
            got, _ = stream_utterance(exported, feats, chunk, spk_stats)
            np.testing.assert_allclose(got, whole, atol=1e-5, err_msg=f"{name} {utt}")


def test_stream_returns_frames_as_their_right_context_arrives(setup) -> None:
    exported = ExportedModel(setup["root"] / "online/model.onnx")
    feats = _feats(setup["data"])["a-1"]
    stream = exported.stream()
    sizes = [stream.accept(feats[t : t + 10]).shape[0] for t in range(0, 60, 10)]
    assert sizes == [10 - SPLICE, 10, 10, 10, 10, 10]  # the first chunk waits for +-2 frames
    assert stream.finish().shape[0] == SPLICE
    assert len(stream.chunk_seconds) == 7


def test_int8_is_smaller_and_agrees_with_fp32(setup) -> None:
    files = setup["online"]["files"]
    assert files["int8"]["bytes"] < 0.6 * files["fp32"]["bytes"]  # biases etc. stay float32
    fp32 = ExportedModel(setup["root"] / "online/model.onnx")
    int8 = ExportedModel(setup["root"] / "online/model.int8.onnx")
    assert int8.info.quantization == "int8-dynamic" and fp32.info.quantization == "none"
    a = np.concatenate([fp32.utterance(f) for f in _feats(setup["data"]).values()])
    b = np.concatenate([int8.utterance(f) for f in _feats(setup["data"]).values()])
    assert np.abs(a - b).max() < 0.5
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.9


def test_bad_model_files_are_clear_errors(setup, tmp_path: Path) -> None:
    good = (setup["root"] / "online/model.onnx").read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ExportedModelError, match="truncated.onnx: onnxruntime cannot load it"):
        ExportedModel(truncated)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not an onnx model" * 50)
    with pytest.raises(ExportedModelError, match="garbage.onnx"):
        ExportedModel(garbage)
    import onnx  # noqa: PLC0415

    foreign = onnx.load_from_string(good)
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    with pytest.raises(ExportedModelError, match="foreign.onnx: not a pykd exported"):
        ExportedModel(tmp_path / "foreign.onnx")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        ExportedModel(tmp_path / "missing.onnx")


def test_bad_inputs_name_the_utterance(setup, tmp_path: Path) -> None:
    exported = ExportedModel(setup["root"] / "spk/model.onnx")
    with pytest.raises(ExportedModelError, match="needs the speaker's CMVN stats"):
        exported.utterance(np.zeros((5, DIM), np.float32))
    data = tmp_path / "data"
    data.mkdir()
    kaldiio.save_ark(str(data / "feats.ark"), {"u1": np.zeros((4, DIM + 1), np.float32)},
                     scp=str(data / "feats.scp"))  # fmt: skip
    (data / "utt2spk").write_text("u1 u1\n")
    with pytest.raises(ExportedModelError, match=r"utterance u1 of .*feats.scp: features of shape"):
        _cli(["make-loglikes", "--exported", str(setup["root"] / "online/model.onnx"), str(data),
              str(tmp_path / "x.ark"), str(tmp_path / "x.scp")])  # fmt: skip
    assert not (tmp_path / "x.scp").exists()  # nothing half-written
    with pytest.raises(ValueError, match="holds its priors and CMVN"):
        _cli(["make-loglikes", "--exported", str(setup["root"] / "online/model.onnx"),
              "--prior-counts", str(setup["root"] / "prior.counts"), str(data),
              str(tmp_path / "x.ark"), str(tmp_path / "x.scp")])  # fmt: skip


def test_export_refuses_priors_of_another_model(setup, tmp_path: Path) -> None:
    write_counts(tmp_path / "prior.counts", np.ones(PDFS + 1))
    with pytest.raises(ValueError, match=f"has {PDFS + 1} counts"):
        export_model(setup["ckpt"], tmp_path / "out", ExportOptions(str(tmp_path / "prior.counts")))
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_runtime_does_not_import_torch(setup) -> None:
    """A device that runs the file needs onnxruntime and numpy, not torch."""
    code = (
        "import sys, numpy as np\n"
        "from pykd.deploy.runtime import ExportedModel\n"
        f"m = ExportedModel({str(setup['root'] / 'online/model.int8.onnx')!r})\n"
        f"m.utterance(np.zeros((30, {DIM}), np.float32))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([str(REPO / ".venv/bin/python"), "-c", code], check=True, cwd=REPO)


def test_int8_export_decodes_kaldis_utterances_as_fp32(kaldi_ref: Path, tmp_path: Path) -> None:
    """WER-level check of int8 (the tiny corpus's 2-epoch networks are at chance, so it cannot
    tell): a 272-pdf network that passes Kaldi's GMM log-posteriors through (floored at -30,
    Linear(I) + 30, ReLU, Linear(I) - 30) decodes Kaldi's 3 test utterances with 0 errors in 19
    words, exported fp32 and int8 alike, fed 25 frames at a time."""
    from test_loglikes import ACWT, _ref_data_dir  # noqa: PLC0415

    ref = dict(kaldiio.load_ark(str(kaldi_ref / "nnet/loglikes.ark")))
    data = tmp_path / "data"
    _ref_data_dir(kaldi_ref, data, sorted(ref))
    feats = {
        u: np.maximum(
            torch.log_softmax(torch.tensor(np.asarray(m), dtype=torch.float64), 1).numpy(), -30.0
        )
        for u, m in ref.items()
    }
    kaldiio.save_ark(str(data / "feats.ark"), {u: f.astype(np.float32) for u, f in feats.items()},
                     scp=str(data / "feats.scp"))  # fmt: skip
    cfg = {"type": "dnn", "dnn": {"num_layers": 1, "hidden_dim": 272, "activation": "relu"}}
    model = build_model(model_config_from_dict(cfg), 272, 272)
    with torch.no_grad():
        for layer, bias in ((model.hidden[0], 30.0), (model.output, -30.0)):
            layer.weight.copy_(torch.eye(272))
            layer.bias.fill_(bias)
    ckpt = tmp_path / "final.pt"
    torch.save({"model_config": cfg, "state_dict": model.state_dict(), "num_pdfs": 272,
                "input": {"splice": 0, "cmvn": "none"}}, ckpt)  # fmt: skip
    export_model(ckpt, tmp_path / "export", ExportOptions())
    mdl = kaldi_ref / "gmm/tri1/final.mdl"
    for name in ("model.onnx", "model.int8.onnx"):
        dec = tmp_path / f"decode_{name}"
        proc = subprocess.run(
            ["steps_kd/decode_nnet.sh", "--nj", "1", "--acwt", str(ACWT), "--gmm-dir",
             str(mdl.parent), "--exported", str(tmp_path / "export" / name), "--chunk-frames",
             "25", str(kaldi_ref / "gmm/tri1/graph"), str(data), str(tmp_path), str(dec)],
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        best = (dec / "scoring_kaldi/best_wer").read_text()
        assert best.startswith("%WER 0.00 [ 0 / 19,"), (name, best)
