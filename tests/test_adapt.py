"""Speaker adaptation (pykd.adapt): gate-only updates, speaker files, decoding with them."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from pykd.adapt.config import AdaptConfig, AdaptError
from pykd.adapt.core import adapt_speaker, evaluate_loss, speaker_frames
from pykd.adapt.targets import decode_targets, read_best_wer, split_utterances
from pykd.cli import build_parser
from pykd.data.frames import UtteranceSource
from pykd.frontend.model import (
    ModelError,
    apply_speaker_params,
    file_sha256,
    load_acoustic_model,
    load_speaker_params,
    save_speaker_params,
    select_parameters,
)
from pykd.models import build_model, model_config_from_dict

DIM, CTX, PDFS = 4, 5, 6
HDNN_CFG = {"type": "hdnn", "hdnn": {"num_layers": 3, "hidden_dim": 16}}
DNN_CFG = {"type": "dnn", "dnn": {"num_layers": 1, "hidden_dim": 16}}
# speaker -> frames per utterance; s3 is too small to adapt (min-frames 100)
SPEAKERS = {"s1": [70, 60, 50], "s2": [55, 45, 40, 30, 40], "s3": [20]}


def _run_cli(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


def _save_model(path: Path, cfg: dict, num_pdfs: int, seed: int, input_dim: int) -> None:
    torch.manual_seed(seed)
    model = build_model(model_config_from_dict(cfg), input_dim, num_pdfs)
    meta = {"model_config": cfg, "num_pdfs": num_pdfs, "input_dim": input_dim}
    meta["input"] = {"splice": CTX, "cmvn": "mean"}
    torch.save({"model": model.state_dict(), "meta": meta, "summary": {}}, path)


def _write_data(data: Path, utt_frames: dict[str, tuple[str, int]], seed: int = 0) -> None:
    """feats.ark/scp, cmvn.scp, utt2spk, spk2utt of random features (per-speaker offset)."""
    rng = np.random.default_rng(seed)
    data.mkdir(parents=True)
    feats, utt2spk = {}, {}
    for utt, (spk, n) in sorted(utt_frames.items()):
        offset = (sum(map(ord, spk)) % 7) - 3.0
        feats[utt] = (rng.normal(size=(n, DIM)) + offset).astype(np.float32)
        utt2spk[utt] = spk
    kaldiio.save_ark(str(data / "feats.ark"), feats, scp=str(data / "feats.scp"))
    spks = sorted(set(utt2spk.values()))
    stats = {}
    for spk in spks:
        fs = np.concatenate([f for u, f in feats.items() if utt2spk[u] == spk]).astype(np.float64)
        st = np.zeros((2, DIM + 1))
        st[0, :DIM], st[0, DIM], st[1, :DIM] = fs.sum(0), len(fs), (fs**2).sum(0)
        stats[spk] = st
    kaldiio.save_ark(str(data / "cmvn.ark"), stats, scp=str(data / "cmvn.scp"))
    (data / "utt2spk").write_text("".join(f"{u} {utt2spk[u]}\n" for u in sorted(utt2spk)))
    (data / "spk2utt").write_text(
        "".join(f"{s} {' '.join(u for u in sorted(utt2spk) if utt2spk[u] == s)}\n" for s in spks)
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("adapt")
    utts = {f"{spk}-u{i}": (spk, n) for spk, lens in SPEAKERS.items() for i, n in enumerate(lens)}
    _write_data(tmp / "data", utts)
    _save_model(tmp / "base.pt", HDNN_CFG, PDFS, 1, DIM * (2 * CTX + 1))
    _save_model(tmp / "teacher.pt", DNN_CFG, PDFS, 2, DIM * (2 * CTX + 1))
    return {"data": tmp / "data", "base": tmp / "base.pt", "teacher": tmp / "teacher.pt"}


def _frames(data: Path, spk: str, targets: dict | None = None):
    source = UtteranceSource(
        data / "feats.scp",
        targets,
        cmvn_scp=data / "cmvn.scp",
        utt2spk=data / "utt2spk",
        left_context=CTX,
        right_context=CTX,
    )
    return speaker_frames(source, [u for u in source.utterances if u.startswith(spk + "-")])


def test_gate_only_adaptation_changes_only_gates_and_lowers_kd_loss(setup):
    base, _ = load_acoustic_model(setup["base"])
    teacher, _ = load_acoustic_model(setup["teacher"])
    before = {k: v.clone() for k, v in base.state_dict().items()}
    frames = _frames(setup["data"], "s1")
    assert len(frames) == sum(SPEAKERS["s1"])
    # spliced rows are Kaldi's splice-feats of the CMVN'd utterance
    src = UtteranceSource(
        setup["data"] / "feats.scp", cmvn_scp=setup["data"] / "cmvn.scp",
        utt2spk=setup["data"] / "utt2spk", left_context=CTX, right_context=CTX,
    )  # fmt: skip
    want = np.concatenate([src.spliced(u) for u in frames.utts])
    assert np.array_equal(frames.inputs(slice(None)).numpy(), want)

    cfg = AdaptConfig(params="gates", epochs=5, lr=5e-3, batch_size=32)
    res = adapt_speaker(base, frames, cfg, teacher)
    gates = set(select_parameters(base, "gates"))
    assert gates == {"gates.transform.weight", "gates.transform.bias"} | {
        "gates.carry.weight", "gates.carry.bias"
    }  # fmt: skip
    assert set(res.state) == gates
    assert res.stats.adapted_params == 2 * (16 * 16 + 16)
    adapted = res.model.state_dict()
    for name, tensor in before.items():
        if name in gates:
            assert not torch.equal(adapted[name], tensor), name
        else:
            assert torch.equal(adapted[name], tensor), name
        assert torch.equal(base.state_dict()[name], tensor), f"base model changed: {name}"
    assert res.stats.loss_after < res.stats.loss_before
    assert math.isclose(evaluate_loss(res.model, frames, teacher), res.stats.loss_after)
    # deterministic with a seed
    again = adapt_speaker(base, frames, cfg, teacher)
    assert all(torch.equal(again.state[k], v) for k, v in res.state.items())
    # teacher posteriors recomputed per mini-batch (no cache): the same adaptation
    cfg.teacher_cache_mb = 0
    fly = adapt_speaker(base, frames, cfg, teacher)
    assert all(torch.allclose(fly.state[k], v, atol=1e-5) for k, v in res.state.items())


def test_output_bias_only_and_kl_term_and_hard_targets(setup):
    base, _ = load_acoustic_model(setup["base"])
    rng = np.random.default_rng(3)
    targets = {
        f"s2-u{i}": rng.integers(0, PDFS, size=n).astype(np.int64)
        for i, n in enumerate(SPEAKERS["s2"])
    }
    frames = _frames(setup["data"], "s2", targets)
    assert frames.targets is not None and len(frames.targets) == len(frames)
    res = adapt_speaker(base, frames, AdaptConfig(params="output_bias", lr=1e-2, batch_size=32))
    assert set(res.state) == {"output.bias"} and res.stats.adapted_params == PDFS
    for name, tensor in base.state_dict().items():
        assert torch.equal(res.model.state_dict()[name], tensor) == (name != "output.bias"), name
    assert res.stats.loss_after < res.stats.loss_before
    # a strong KL term keeps the adapted posteriors closer to the SI model's
    free = adapt_speaker(base, frames, AdaptConfig(params="all", lr=1e-2, batch_size=32))
    tied = adapt_speaker(
        base, frames, AdaptConfig(params="all", lr=1e-2, batch_size=32, kl_weight=50.0)
    )
    x = frames.inputs(slice(None))
    with torch.no_grad():
        p_si = torch.log_softmax(base(x), -1)

        def kl(m: torch.nn.Module) -> float:
            q = torch.log_softmax(m(x), -1)
            return float((p_si.exp() * (p_si - q)).sum(-1).mean())

    assert kl(tied.model) < kl(free.model)
    with pytest.raises(ModelError, match="needs an HDNN"):
        select_parameters(load_acoustic_model(setup["teacher"])[0], "gates")


def test_adaptation_from_the_teachers_cached_posteriors(setup, tmp_path, caplog):
    """Targets from the teacher's cached posteriors (`pykd teacher-posts` over the adaptation
    data): with every pdf kept, the adaptation the teacher's forward pass gives; with top 2 a
    different one that still lowers the loss; through the CLI as --teacher-posts; a cache of
    another output size or both sources at once are refused."""
    from pykd.kaldi.posterior_io import PosteriorTable  # noqa: PLC0415
    from pykd.nnet.teacher_posts import write_teacher_posts  # noqa: PLC0415

    data = setup["data"]
    base, _ = load_acoustic_model(setup["base"])
    teacher, _ = load_acoustic_model(setup["teacher"])
    cfg = AdaptConfig(params="gates", epochs=3, lr=5e-3, batch_size=32)
    online = adapt_speaker(base, _frames(data, "s2"), cfg, teacher)

    def cached_frames(posts: Path):
        source = UtteranceSource(
            data / "feats.scp", {}, cmvn_scp=data / "cmvn.scp", utt2spk=data / "utt2spk",
            left_context=CTX, right_context=CTX, teacher_posts=PosteriorTable(posts / "post.scp"),
        )  # fmt: skip
        return speaker_frames(source, [u for u in source.utterances if u.startswith("s2-")])

    write_teacher_posts(setup["teacher"], data, tmp_path / "all", top_k=PDFS)
    frames = cached_frames(tmp_path / "all")
    assert frames.targets is None and frames.teacher_ids.shape == (sum(SPEAKERS["s2"]), PDFS)
    cached = adapt_speaker(base, frames, cfg)
    assert cached.stats.loss_before == pytest.approx(online.stats.loss_before, rel=1e-5)
    assert cached.stats.loss_after == pytest.approx(online.stats.loss_after, rel=1e-4)
    for name, tensor in online.state.items():
        torch.testing.assert_close(cached.state[name], tensor, rtol=1e-4, atol=1e-5)
    assert evaluate_loss(cached.model, frames) == pytest.approx(cached.stats.loss_after)

    write_teacher_posts(setup["teacher"], data, tmp_path / "top2", top_k=2)
    top2 = adapt_speaker(base, cached_frames(tmp_path / "top2"), cfg)
    assert top2.stats.loss_after < top2.stats.loss_before
    assert not torch.allclose(top2.state["gates.transform.weight"], cached.state[
        "gates.transform.weight"])  # fmt: skip

    out = tmp_path / "cli"
    argv = ["adapt-speakers", "--model", str(setup["base"]), "--min-frames", "100", "--epochs"]
    posts_all = str(tmp_path / "all")
    assert _run_cli([*argv, "1", "--teacher-posts", posts_all, str(data), str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_adapted"] == 2 and summary["method"] == "teacher"
    assert summary["teacher_posts"] == str(tmp_path / "all") and summary["teacher_top_k"] == PDFS
    with pytest.raises(AdaptError, match="exactly one of"):
        _run_cli([*argv, "1", "--teacher-posts", str(tmp_path / "all"), "--teacher",
                  str(setup["teacher"]), str(data), str(tmp_path / "both")])  # fmt: skip
    other = tmp_path / "other.pt"
    _save_model(other, DNN_CFG, PDFS + 1, 3, DIM * (2 * CTX + 1))
    write_teacher_posts(other, data, tmp_path / "other", top_k=3)
    with pytest.raises(AdaptError, match="outputs"):
        _run_cli([*argv, "1", "--teacher-posts", str(tmp_path / "other"), str(data),
                  str(tmp_path / "x")])  # fmt: skip


def test_speaker_file_reproduces_adapted_outputs(setup, tmp_path):
    base, _ = load_acoustic_model(setup["base"])
    teacher, _ = load_acoustic_model(setup["teacher"])
    frames = _frames(setup["data"], "s1")
    res = adapt_speaker(base, frames, AdaptConfig(epochs=1, batch_size=64), teacher)
    sha = file_sha256(setup["base"])
    path = save_speaker_params(
        tmp_path / "spk" / "s1.pt", res.state, speaker="s1", base_sha256=sha, meta={"x": 1}
    )
    data = load_speaker_params(path)
    assert set(data["params"]) == set(res.state) and data["base_sha256"] == sha
    model = apply_speaker_params(base, path, sha)
    x = frames.inputs(slice(None))
    with torch.no_grad():
        assert torch.equal(model(x), res.model(x))
        assert not torch.equal(base(x), res.model(x))
    with pytest.raises(ModelError, match="not this model"):
        apply_speaker_params(base, path, "0" * 64)


def test_split_utterances():
    adapt, test = split_utterances({"a": ["a3", "a1", "a2"], "b": ["b2", "b1"], "c": ["c1"]})
    assert adapt == {"a": ["a1", "a2"], "b": ["b1"], "c": ["c1"]}
    assert test == {"a": ["a3"], "b": ["b2"], "c": []}


def test_cli_adapt_and_decode_with_speaker_params(setup, tmp_path, caplog):
    data, base = setup["data"], setup["base"]
    out = tmp_path / "adapt"
    common = ["--model", str(base), "--teacher", str(setup["teacher"]), "--min-frames", "100"]
    with caplog.at_level(logging.WARNING):
        assert _run_cli(["adapt-speakers", *common, "--epochs", "2", str(data), str(out)]) == 0
    assert "speaker s3: 20 frames" in caplog.text and "left unadapted" in caplog.text
    rows = [ln.split("\t") for ln in (out / "adapt_stats.tsv").read_text().splitlines()]
    assert rows[0][:2] == ["speaker", "frames"] and rows[0][-1] == "status"
    status = {r[0]: r[-1] for r in rows[1:]}
    assert status == {"s1": "adapted", "s2": "adapted", "s3": "skipped-too-little-data"}
    assert {r[0]: int(r[1]) for r in rows[1:]} == {s: sum(n) for s, n in SPEAKERS.items()}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_adapted"] == 2 and summary["skipped_speakers"] == ["s3"]
    assert summary["adapted_params_per_speaker"] == 2 * (16 * 16 + 16)
    assert summary["mean_seconds_per_speaker"] > 0
    assert sorted(p.name for p in (out / "spk").iterdir()) == ["s1.pt", "s2.pt"]
    assert not (out / "adapt_utts").exists()

    def loglikes(name: str, *extra: str) -> dict[str, np.ndarray]:
        ark, scp = tmp_path / f"{name}.ark", tmp_path / f"{name}.scp"
        argv = ["make-loglikes", "--prior-scale", "0", *extra, str(base), str(data), str(ark)]
        assert _run_cli([*argv, str(scp)]) == 0
        return dict(kaldiio.load_scp(str(scp)))

    plain = loglikes("base")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        adapted = loglikes("spk", "--spk-params", str(out))
    warned = [r.getMessage() for r in caplog.records if "base model" in r.getMessage()]
    assert len(warned) == 1 and "speaker s3" in warned[0]
    model, _ = load_acoustic_model(base)
    sha = file_sha256(base)
    src = UtteranceSource(
        data / "feats.scp", cmvn_scp=data / "cmvn.scp", utt2spk=data / "utt2spk",
        left_context=CTX, right_context=CTX,
    )  # fmt: skip
    for utt in plain:
        spk = utt.split("-")[0]
        if spk == "s3":
            assert np.array_equal(adapted[utt], plain[utt])
            continue
        assert not np.allclose(adapted[utt], plain[utt])
        m = apply_speaker_params(model, out / "spk" / f"{spk}.pt", sha)
        with torch.no_grad():
            want = torch.log_softmax(m(torch.from_numpy(src.spliced(utt))).double(), 1).numpy()
        np.testing.assert_allclose(adapted[utt], want, atol=1e-5)

    # a speaker file of another base model is refused
    other = tmp_path / "other.pt"
    _save_model(other, HDNN_CFG, PDFS, 9, DIM * (2 * CTX + 1))
    with pytest.raises(ModelError, match="not this model"):
        _run_cli(
            ["make-loglikes", "--prior-scale", "0", "--spk-params", str(out), str(other),
             str(data), str(tmp_path / "x.ark"), str(tmp_path / "x.scp")]
        )  # fmt: skip

    # split protocol: lists disjoint, covering every utterance, first half (ceil) adapts
    out2 = tmp_path / "split"
    argv = ["adapt-speakers", *common, "--epochs", "1", "--protocol", "split", "--params", "all"]
    assert _run_cli([*argv, str(data), str(out2)]) == 0
    a = (out2 / "adapt_utts").read_text().split()
    t = (out2 / "test_utts").read_text().split()
    assert not set(a) & set(t) and sorted(a + t) == sorted(plain)
    assert a == ["s1-u0", "s1-u1", "s2-u0", "s2-u1", "s2-u2", "s3-u0"]
    stats = {r.split("\t")[0]: r.split("\t") for r in (out2 / "adapt_stats.tsv").open()}
    assert int(stats["s1"][1]) == 70 + 60 and stats["s3"][-1].strip().startswith("skipped")


def test_best_path_targets_from_kaldi_lattices(kaldi_ref: Path, tmp_path: Path):
    from pykd.kaldi.model_io import read_transition_model

    ddir = kaldi_ref / "gmm/tri1/decode_test"
    mdl = kaldi_ref / "gmm/tri1/final.mdl"
    assert read_best_wer(ddir) == (7, "0.0")
    n_frames = {
        u: int(n)
        for u, n in (ln.split() for ln in (kaldi_ref / "gmm/data/test/utt2num_frames").open())
    }
    targets, info = decode_targets(ddir, mdl)
    assert info["lmwt"] == 7 and info["wip"] == "0.0" and info["lattice_files"] == 3
    assert set(targets) == set(n_frames)
    n_pdfs = read_transition_model(mdl).num_pdfs
    for utt, pdfs in targets.items():
        assert len(pdfs) == n_frames[utt], utt
        assert pdfs.min() >= 0 and pdfs.max() < n_pdfs
    # the first-pass (decode) method end to end, on features of the same lengths
    utt2spk = dict(ln.split() for ln in (kaldi_ref / "gmm/data/test/utt2spk").open())
    utts = {u: (utt2spk[u], n) for u, n in n_frames.items()}
    _write_data(tmp_path / "data", utts)
    _save_model(tmp_path / "base.pt", HDNN_CFG, n_pdfs, 4, DIM * (2 * CTX + 1))
    out = tmp_path / "adapt"
    argv = ["adapt-speakers", "--model", str(tmp_path / "base.pt"), "--lattices", str(ddir)]
    argv += ["--gmm-model", str(mdl), "--epochs", "1", "--lr", "1e-2"]
    assert _run_cli([*argv, str(tmp_path / "data"), str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "decode" and summary["lmwt"] == 7
    assert summary["num_adapted"] == 3 and summary["frames_adapted"] == sum(n_frames.values())
    assert summary["mean_loss_after"] < summary["mean_loss_before"]
