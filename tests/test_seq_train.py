"""Sequence training pipeline (pykd.seq): lattice scp I/O, denominator lattices from our decoder,
network alignment, sMBR/MMI training with KD and gates, resume, and bad-input accounting.

Real pieces at a tiny scale: Kaldi's tri1 model, tree, lang and HCLG (kaldi-ref), four of its
training utterances with Kaldi's own alignments as numerators, fbank-like features drawn around
a per-pdf mean (so a small network learns them), a small network trained here for a few steps,
and denominator lattices decoded by our decoder from that network.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from pykd.kaldi.lattice_io import (
    CompactLattice,
    LatticeFormatError,
    LatticeScpReader,
    read_lattice_dict,
    read_lattices,
    write_lattices,
)

REPO = Path(__file__).resolve().parents[1]
UTTS = ("awb-039", "awb-086", "awb-170", "awb-196")  # 175-190 frames each, C-sorted
SEED = 3
MEAN_SCALE = 0.15  # separation of the per-pdf feature means (noise: unit variance)
CE_STEPS = 8


# ----------------------------------------------------------------------------- fixture
def _model_cfg(kind: str) -> dict:
    if kind == "dnn":
        return {"type": "dnn", "dnn": {"num_layers": 1, "hidden_dim": 48, "activation": "relu"}}
    return {"type": "hdnn", "hdnn": {"num_layers": 2, "hidden_dim": 24, "activation": "sigmoid"}}


def _train_ce(kind: str, x: np.ndarray, y: np.ndarray, num_pdfs: int, path: Path) -> None:
    """A small network fitted to (x, y) for a few steps, saved in train-nnet's layout."""
    from pykd.models import build_model, model_config_from_dict

    torch.manual_seed(0)
    cfg = _model_cfg(kind)
    model = build_model(model_config_from_dict(dict(cfg)), x.shape[1], num_pdfs)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    for _ in range(CE_STEPS):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    meta = {
        "model_config": cfg,
        "num_pdfs": num_pdfs,
        "input_dim": x.shape[1],
        "input": {"splice": 5, "cmvn": "mean"},
        "loss": "ce",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "meta": meta, "summary": {}}, path)


def _sh(*argv: str) -> subprocess.CompletedProcess:
    """A recipe script run from the repository root (output captured, exit code not checked)."""
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def tiny(kaldi_ref: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Data dir, networks, alignments and our denominator lattices (see the module docstring)."""
    from pykd.data.priors import pdf_counts, write_counts
    from pykd.features.cmvn import CmvnResult, acc_cmvn_stats, apply_cmvn, write_cmvn
    from pykd.frontend.splice import splice
    from pykd.kaldi.model_io import (
        read_alignments,
        read_transition_model,
        tid_to_pdf,
        write_alignments,
    )

    torch.set_num_threads(1)  # tiny tensors: threads only add contention
    tri1 = kaldi_ref / "gmm" / "tri1"
    root = tmp_path_factory.mktemp("seq")
    tm = read_transition_model(tri1 / "final.mdl")
    t2p = tid_to_pdf(tm)
    alis = {u: a for u, a in read_alignments(tri1 / "ali.1.gz").items() if u in UTTS}
    texts = dict(
        line.split(maxsplit=1)
        for line in (kaldi_ref / "gmm/data/train/text").read_text().splitlines()
    )

    rng = np.random.default_rng(SEED)
    means = rng.normal(size=(tm.num_pdfs, 40)).astype(np.float32)
    data = root / "data"
    data.mkdir()
    feats = {}
    for u in UTTS:
        pdf = t2p[alis[u]]
        noise = rng.normal(size=(len(pdf), 40))
        feats[u] = (means[pdf] * MEAN_SCALE + noise + 5.0).astype(np.float32)
    with kaldiio.WriteHelper(f"ark,scp:{data}/feats.ark,{data}/feats.scp") as w:
        for u in UTTS:
            w(u, feats[u])
    (data / "utt2spk").write_text("".join(f"{u} awb\n" for u in UTTS))
    (data / "spk2utt").write_text("awb " + " ".join(UTTS) + "\n")
    (data / "text").write_text("".join(f"{u} {texts[u]}\n" for u in UTTS))
    stats = None
    for u in UTTS:
        stats = acc_cmvn_stats(feats[u], stats)
    write_cmvn(CmvnResult(stats={"awb": stats}), data / "cmvn.ark", data / "cmvn.scp")

    x = np.concatenate([splice(apply_cmvn(feats[u], stats), 5, 5) for u in UTTS])
    y = np.concatenate([t2p[alis[u]] for u in UTTS]).astype(np.int64)
    ali_dir = root / "ali"
    ali_dir.mkdir()
    write_alignments(ali_dir / "ali.1.gz", alis)
    shutil.copyfile(tri1 / "final.mdl", ali_dir / "final.mdl")
    nets = {}
    for kind in ("dnn", "hdnn"):
        nets[kind] = root / kind
        _train_ce(kind, x, y, tm.num_pdfs, nets[kind] / "final.pt")
        write_counts(nets[kind] / "prior.counts", pdf_counts([y], tm.num_pdfs))
        shutil.copyfile(tri1 / "final.mdl", nets[kind] / "final.mdl")

    # Denominator lattices of the DNN: the recipe's script, unigram graph built from the lang.
    lang = kaldi_ref / "gmm" / "lang_full"
    den = root / "denlats"
    proc = _sh("steps_kd/make_denlats.sh", "--nj", "1", "--gmm-dir", str(tri1),
               "--lattice-beam", "6", str(data), str(lang), str(nets["dnn"]), str(den))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lats = read_lattice_dict(str(den / "lat.1.ark"))
    return {
        "root": root,
        "data": data,
        "lang": lang,
        "ali": ali_dir,
        "dnn": nets["dnn"],
        "hdnn": nets["hdnn"],
        "den": den,
        "lats": lats,
        "tri1": tri1,
        "alis": alis,
    }


def _args(
    tiny: dict, out: Path, *extra: str, net: str = "dnn", den: Path | None = None, **opts: object
) -> argparse.Namespace:
    """``pykd train-seq`` arguments: 1 epoch, small logging/checkpoint intervals by default."""
    from pykd.cli import build_parser

    opts = {"epochs": 1, "log_every": 2, "checkpoint_every": 2, "lr": 0.05, **opts}
    argv = ["train-seq", *extra]
    for k, v in opts.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    argv += [str(tiny["data"]), str(tiny["lang"]), str(tiny[net]), str(tiny["ali"])]
    argv += [str(den or tiny["den"]), str(out)]
    return build_parser().parse_args(argv)


def _same(a: CompactLattice, b: CompactLattice, tol: float = 1e-5) -> bool:
    """Equal structure, transition-ids and words; costs equal to float32 precision."""
    if a.start != b.start or len(a.arcs) != len(b.arcs) or a.finals.keys() != b.finals.keys():
        return False
    for xs, ys in zip(a.arcs, b.arcs, strict=True):
        if len(xs) != len(ys):
            return False
        for x, y in zip(xs, ys, strict=True):
            if x[:2] != y[:2] or x[4] != y[4] or not np.allclose(x[2:4], y[2:4], rtol=tol):
                return False
    return all(
        a.finals[s][2] == b.finals[s][2] and np.allclose(a.finals[s][:2], b.finals[s][:2], rtol=tol)
        for s in a.finals
    )


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def test_denlats_from_the_teacher_posts_pass(tiny: dict, tmp_path: Path) -> None:
    """The teacher's log-likelihoods written by its posteriors pass (make_teacher_posts.sh
    --loglikes-dir) give make_denlats.sh --loglikes the lattices of its own forward pass, byte for
    byte; the posteriors are those of a pass without them; a table short of an utterance is an
    error naming the job."""
    teacher, data = str(tiny["dnn"] / "final.pt"), str(tiny["data"])
    plain, both, loglikes = tmp_path / "posts", tmp_path / "posts_ll", tmp_path / "loglikes"
    for out, extra in ((plain, ()), (both, ("--loglikes-dir", str(loglikes)))):
        proc = _sh("steps_kd/make_teacher_posts.sh", *extra, teacher, data, str(out))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (plain / "post.ark").read_bytes() == (both / "post.ark").read_bytes()
    assert json.loads((both / "info.json").read_text())["loglikes"]["dir"] == str(loglikes)
    den = tmp_path / "den"
    proc = _sh("steps_kd/make_denlats.sh", "--nj", "1", "--gmm-dir", str(tiny["tri1"]),
               "--lattice-beam", "6", "--loglikes", str(loglikes), data, str(tiny["lang"]),
               str(tiny["dnn"]), str(den))  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not computed again" in proc.stdout
    assert (den / "lat.1.ark").read_bytes() == (tiny["den"] / "lat.1.ark").read_bytes()
    assert (loglikes / "loglikes.ark").is_file()  # a given table is not the script's to remove

    short = tmp_path / "short"
    short.mkdir()
    lines = (loglikes / "loglikes.scp").read_text().splitlines()
    (short / "loglikes.scp").write_text("\n".join(lines[1:]) + "\n")
    proc = _sh("steps_kd/make_denlats.sh", "--nj", "1", "--gmm-dir", str(tiny["tri1"]),
               "--loglikes", str(short), data, str(tiny["lang"]), str(tiny["dnn"]),
               str(tmp_path / "den2"))  # fmt: skip
    assert proc.returncode != 0
    assert f"has {len(lines) - 1} of the {len(lines)} utterances of job 1" in proc.stderr


# ----------------------------------------------------------------------------- lattice I/O
def test_lattice_scp_roundtrip(tiny: dict, tmp_path: Path) -> None:
    """Our decoder's lattices through ark+scp (binary and text) and back; random access."""
    lats = tiny["lats"]
    assert all(isinstance(lat, CompactLattice) and lat.num_arcs() > 0 for lat in lats.values())
    reader = LatticeScpReader(tiny["den"] / "lat.scp")
    for utt in reversed(UTTS):  # random access, not in file order
        assert reader[utt] == lats[utt]
    seq = dict(read_lattices(f"scp:{tiny['den']}/lat.scp"))
    assert seq == lats == {u: reader[u] for u in UTTS}
    write_lattices(f"ark,scp,t:{tmp_path}/t.ark,{tmp_path}/t.scp", lats.items())
    text = LatticeScpReader(tmp_path / "t.scp")
    for utt in UTTS:
        assert _same(text[utt], lats[utt])  # text keeps 6 significant digits
    reader.close()


def test_kaldi_lattices_via_scp(kaldi_ref: Path, tmp_path: Path) -> None:
    """Kaldi's own lat.N.gz (stand-ins for Kaldi denlats): read, copied to ark+scp, read back."""
    from pykd.seq.denlats import DenLattices

    dec = kaldi_ref / "gmm" / "tri1" / "decode_test"
    for n in (1, 2, 3):
        shutil.copyfile(dec / f"lat.{n}.gz", tmp_path / f"lat.{n}.gz")
    mem = DenLattices(tmp_path)  # Kaldi's gz layout: read into memory
    n_lats = sum(len(read_lattice_dict(str(dec / f"lat.{n}.gz"))) for n in (1, 2, 3))
    assert mem.layout == "memory" and len(mem) == n_lats
    from pykd import cli

    for n in (1, 2, 3):
        spec = f"ark,scp:{tmp_path}/lat.{n}.ark,{tmp_path}/lat.{n}.scp"
        assert cli.main(["lattice-copy", f"{tmp_path}/lat.{n}.gz", spec]) == 0
    (tmp_path / "lat.scp").write_text(
        "".join((tmp_path / f"lat.{n}.scp").read_text() for n in (1, 2, 3))
    )
    scp = DenLattices(tmp_path)
    assert scp.layout == "scp" and sorted(scp.keys()) == sorted(mem.keys())
    for utt in mem.keys():
        assert scp[utt] == mem[utt]
    # an scp must not point into a gzip file: a clear error
    (tmp_path / "bad.scp").write_text(f"x {tmp_path}/lat.1.gz:10\n")
    with pytest.raises(LatticeFormatError, match="gzip"):
        LatticeScpReader(tmp_path / "bad.scp")["x"]


def test_lattice_copy_subset(kaldi_ref: Path, tmp_path: Path, caplog) -> None:
    """lattice-copy --include / --exclude keep exactly the listed / unlisted utterances, with
    Kaldi's "Wrote N out of M utterances." log line (steps_kd/subset_decode.sh reads it)."""
    from pykd import cli

    src = kaldi_ref / "gmm" / "tri1" / "decode_test" / "lat.1.gz"
    lats = read_lattice_dict(str(src))
    utts = sorted(lats)
    assert len(utts) >= 3
    listed = tmp_path / "utt2spk"
    listed.write_text("".join(f"{u} spk\n" for u in utts[:2]) + "not_decoded spk\n")
    for flag, want in (("--include", utts[:2]), ("--exclude", utts[2:])):
        out = tmp_path / f"{flag[2:]}.gz"
        caplog.clear()
        with caplog.at_level(logging.INFO):
            assert cli.main(["lattice-copy", flag, str(listed), str(src), str(out)]) == 0
        got = read_lattice_dict(str(out))
        assert sorted(got) == want and all(got[u] == lats[u] for u in want)
        assert f"Wrote {len(want)} out of {len(utts)} utterances." in caplog.text
    caplog.clear()
    both = ["--include", str(listed), "--exclude", str(listed), str(src), str(tmp_path / "x.gz")]
    assert cli.main(["lattice-copy", *both]) == 1
    assert "not both" in caplog.text and not (tmp_path / "x.gz").exists()


# ----------------------------------------------------------------------------- training
def test_smbr_epochs_change_model_and_write_outputs(tiny: dict, tmp_path: Path) -> None:
    from pykd.frontend.model import load_acoustic_model
    from pykd.seq.cli import train_seq

    out = tmp_path / "smbr"
    summary = train_seq(_args(tiny, out, epochs=3))
    assert summary["status"] == "finished" and summary["epochs"] == 3
    for name in ("final.pt", "epoch1.pt", "epoch3.pt", "prior.counts", "final.mdl",
                 "summary.json", "learning_curve.png", "checkpoints/last.pt"):  # fmt: skip
        assert (out / name).is_file(), name
    hist = json.loads((out / "summary.json").read_text())["history"]
    assert [r["utts"] for r in hist] == [4, 4, 4] and hist[0]["frames"] == 732
    assert all(r["skipped_total"] == 0 and r["dropped_frames"] == 0 for r in hist)
    acc = [r["objective_per_frame"] for r in hist]  # expected frame accuracy
    assert 0.0 < acc[0] < 1.0 and acc[2] > acc[0], acc  # sMBR raises it on its training data
    init, final = _state(tiny["dnn"] / "final.pt"), _state(out / "final.pt")
    assert any(not torch.equal(init[k], final[k]) for k in init)
    model, meta = load_acoustic_model(out / "epoch1.pt")  # decodable by steps_kd/decode_nnet.sh
    assert meta["loss"] == "smbr" and meta["seq"]["criterion"] == "smbr" and meta["num_pdfs"] == 272


def test_bfloat16_products_give_the_float32_objective(tiny: dict, tmp_path: Path) -> None:
    """``--precision bfloat16`` (the recipe's teacher on AMX CPUs): the network runs under
    autocast, the lattice forward-backward in float32; the epoch's objective is float32's to
    bfloat16 rounding (not bit for bit) and the saved network is float32."""
    from pykd.seq.cli import train_seq

    hist = {}
    for precision in ("float32", "bfloat16"):
        out = tmp_path / precision
        train_seq(_args(tiny, out, "--precision", precision))
        hist[precision] = json.loads((out / "summary.json").read_text())["history"][0]
        assert all(v.dtype == torch.float32 for v in _state(out / "final.pt").values())
    obj = {k: h["objective_per_frame"] for k, h in hist.items()}
    assert obj["bfloat16"] == pytest.approx(obj["float32"], abs=0.02) and 0 < obj["float32"] < 1
    assert obj["bfloat16"] != obj["float32"]


def test_mmi_kd_gates_only_on_hdnn(tiny: dict, tmp_path: Path) -> None:
    """Student MMI + KD (teacher: the DNN) updating only the HDNN's shared gates, via the script."""
    out = tmp_path / "hdnn_mmi_kd"
    proc = subprocess.run(
        ["steps_kd/train_seq.sh", "--criterion", "mmi", "--boost", "0.1", "--params", "gates",
         "--teacher", str(tiny["dnn"] / "final.pt"), "--kd-q", "0.5", "--epochs", "1",
         "--lr", "0.05", str(tiny["data"]), str(tiny["lang"]), str(tiny["hdnn"]),
         str(tiny["ali"]), str(tiny["den"]), str(out)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr + (out / "log/train.log").read_text()
    init, final = _state(tiny["hdnn"] / "final.pt"), _state(out / "final.pt")
    changed = {k for k in init if not torch.equal(init[k], final[k])}
    assert changed and all(k.startswith("gates.") for k in changed), changed
    assert changed == {k for k in init if k.startswith("gates.")}
    summary = json.loads((out / "summary.json").read_text())
    row = summary["history"][0]
    assert row["kd_loss_per_frame"] > 0 and row["utts"] == 4
    assert summary["trainable_params"] == sum(v.numel() for k, v in init.items() if "gates" in k)
    meta = torch.load(out / "final.pt", weights_only=False)["meta"]
    assert meta["loss"] == "mmi+kd" and meta["seq"]["teacher"].endswith("dnn/final.pt")


def test_cached_teacher_posteriors_give_the_teacher_regulariser(tiny: dict, tmp_path: Path) -> None:
    """The KD term from the teacher's cached posteriors (all pdfs kept, ``pykd teacher-posts``)
    trains the student as the teacher's forward pass does; with top 3 it differs but trains; a
    posteriors dir of another teacher size is refused."""
    from pykd.nnet.teacher_posts import write_teacher_posts
    from pykd.seq.cli import train_seq

    teacher = tiny["dnn"] / "final.pt"
    num_pdfs = torch.load(teacher, weights_only=False)["meta"]["num_pdfs"]
    write_teacher_posts(teacher, tiny["data"], tmp_path / "posts_all", top_k=num_pdfs)
    write_teacher_posts(teacher, tiny["data"], tmp_path / "posts_3", top_k=3)
    opts = {"kd_q": 0.5, "utts_per_step": 2}
    ref = train_seq(_args(tiny, tmp_path / "online", "--teacher", str(teacher), net="hdnn", **opts))
    runs = {
        k: train_seq(
            _args(
                tiny,
                tmp_path / k,
                "--teacher-posts",
                str(tmp_path / f"posts_{k}"),
                net="hdnn",
                **opts,
            )
        )  # fmt: skip
        for k in ("all", "3")
    }
    a, b = _state(tmp_path / "online/final.pt"), _state(tmp_path / "all/final.pt")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    kd = [r["history"][0]["kd_loss_per_frame"] for r in (ref, runs["all"], runs["3"])]
    assert kd[0] == pytest.approx(kd[1], rel=1e-4) and kd[2] != pytest.approx(kd[0], rel=1e-4)
    meta = torch.load(tmp_path / "all/final.pt", weights_only=False)["meta"]
    assert meta["loss"] == "smbr+kd" and meta["seq"]["teacher_posts"].endswith("posts_all")
    info = json.loads((tmp_path / "posts_all/info.json").read_text())
    info["num_pdfs"] += 1
    (tmp_path / "posts_all/info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="posts_all.*outputs"):
        train_seq(_args(tiny, tmp_path / "bad", "--teacher-posts", str(tmp_path / "posts_all"),
                        net="hdnn", **opts))  # fmt: skip


def test_gates_need_an_hdnn(tiny: dict, tmp_path: Path) -> None:
    from pykd.seq.cli import train_seq
    from pykd.seq.train import SeqTrainError

    with pytest.raises(SeqTrainError, match="HDNN"):
        train_seq(_args(tiny, tmp_path / "x", params="gates"))


@pytest.mark.parametrize("per_step", [1, 3])
def test_resume_reaches_the_same_state(tiny: dict, tmp_path: Path, per_step: int) -> None:
    """Killed mid-epoch and resumed: the same weights as one run (per-utterance updates, and
    3 utterances per batched update: steps of 3 + 1 per epoch, the cut inside epoch 2)."""
    from pykd.seq.cli import train_seq

    opts = {"epochs": 2, "optimizer": "adam", "lr": 1e-3, "utts_per_step": per_step}
    ref = train_seq(_args(tiny, tmp_path / "ref", **opts))
    part = train_seq(_args(tiny, tmp_path / "cut", stop_after_utts=5, **opts))
    assert part["status"] == "interrupted" and not (tmp_path / "cut/final.pt").exists()
    assert part["global_utts"] == (5 if per_step == 1 else 7)
    done = train_seq(_args(tiny, tmp_path / "cut", "--resume", **opts))
    assert done["status"] == "finished"
    a, b = _state(tmp_path / "ref/final.pt"), _state(tmp_path / "cut/final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    for ra, rb in zip(ref["history"], done["history"], strict=True):
        assert ra["objective_per_frame"] == pytest.approx(rb["objective_per_frame"], abs=1e-12)
        assert ra["utts"] == rb["utts"] and ra["frames"] == rb["frames"]


def _bad_denlats(tiny: dict, root: Path) -> Path:
    """UTTS[0] fine, [1] empty lattice, [2] unreadable (bad offset), [3] no lattice at all."""
    den = root / "den_bad"
    den.mkdir()
    lats = tiny["lats"]
    write_lattices(
        f"ark,scp:{den}/lat.1.ark,{den}/lat.1.scp",
        [(UTTS[0], lats[UTTS[0]]), (UTTS[1], CompactLattice())],
    )
    lines = (den / "lat.1.scp").read_text()
    lines += f"{UTTS[2]} {den}/lat.1.ark:3\n"  # inside the first key: no lattice there
    (den / "lat.scp").write_text(lines)
    return den


def test_bad_lattices_and_missing_numerator_frames_are_counted(
    tiny: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from pykd.kaldi.model_io import read_transition_model, tid_to_pdf, write_alignments
    from pykd.seq import lattice_to_graph
    from pykd.seq.cli import train_seq

    den = _bad_denlats(tiny, tmp_path)
    # numerator of UTTS[0] moved off the lattice on 3 frames: a pdf no lattice arc has there
    tm = read_transition_model(tiny["ali"] / "final.mdl")
    t2p = tid_to_pdf(tm)
    utt = UTTS[0]
    graph = lattice_to_graph(tiny["lats"][utt], t2p, utt=utt)
    ali = tiny["alis"][utt].copy()
    for t in (20, 60, 100):
        on_lat = set(graph.pdf[(graph.frame == t) & (graph.tid > 0)].tolist())
        ali[t] = next(tid for tid in range(1, len(t2p)) if t2p[tid] not in on_lat)
    ali_dir = tmp_path / "ali"
    ali_dir.mkdir()
    write_alignments(ali_dir / "ali.1.gz", {**tiny["alis"], utt: ali})
    shutil.copyfile(tiny["ali"] / "final.mdl", ali_dir / "final.mdl")
    args = _args(tiny, tmp_path / "out", den=den)
    args.ali_dir = str(ali_dir)
    with caplog.at_level("WARNING"):
        summary = train_seq(args)
    row = summary["history"][0]
    assert row["utts"] == 1 and row["frames"] == len(ali)
    assert row["dropped_frames"] == 3
    assert row["skipped"]["lattice_empty"] == 1
    assert row["skipped"]["lattice_unreadable"] == 1
    assert row["skipped"]["no_lattice"] == 1
    assert row["skipped_total"] == 3
    for u in UTTS[1:]:
        assert any(u in r.getMessage() for r in caplog.records), u


def test_dropped_frames_get_no_gradient(tiny: dict) -> None:
    from pykd.kaldi.model_io import read_transition_model, tid_to_pdf, tid_to_phone
    from pykd.seq import lattice_to_graph, smbr

    tm = read_transition_model(tiny["ali"] / "final.mdl")
    t2p, t2ph = tid_to_pdf(tm), tid_to_phone(tm)
    utt = UTTS[1]
    graph = lattice_to_graph(tiny["lats"][utt], t2p, t2ph, utt=utt)
    ali = tiny["alis"][utt].copy()
    on_lat = set(graph.pdf[(graph.frame == 50) & (graph.tid > 0)].tolist())
    ali[50] = next(tid for tid in range(1, len(t2p)) if t2p[tid] not in on_lat)
    x = torch.randn(graph.num_frames, tm.num_pdfs, dtype=torch.float64, requires_grad=True)
    grads = {}
    for drop in (False, True):
        loss, st = smbr(graph, x, ali, kappa=0.1, silence_phones=[1, 2], drop_frames=drop)
        (grads[drop],) = torch.autograd.grad(loss, x)
        assert st.dropped_frames == 1
    assert grads[False][50].abs().sum() > 0 and torch.all(grads[True][50] == 0)
    keep = [t for t in range(graph.num_frames) if t != 50]
    assert torch.equal(grads[True][keep], grads[False][keep])


def test_nonfinite_gradient_skips_the_utterance(
    tiny: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import pykd.seq.train as seq_train
    from pykd.seq.cli import train_seq

    real_smbr = seq_train.smbr_batch
    bad_utt = UTTS[2]

    def smbr_with_inf_grad(graphs, loglikes, *a, **kw):  # noqa: ANN001, ANN202
        loss, st = real_smbr(graphs, loglikes, *a, **kw)
        if any(g.utt == bad_utt for g in graphs):
            loss = loss + _InfGradFn.apply(loglikes)
        return loss, st

    monkeypatch.setattr(seq_train, "smbr_batch", smbr_with_inf_grad)
    out = tmp_path / "nf"
    with caplog.at_level("WARNING"):  # one utterance per step: only the bad one is lost
        summary = train_seq(_args(tiny, out, utts_per_step=1))
    row = summary["history"][0]
    assert row["skipped"]["nonfinite"] == 1 and row["utts"] == 3
    assert any(bad_utt in r.getMessage() and "gradient" in r.getMessage() for r in caplog.records)
    final = _state(out / "final.pt")
    assert all(torch.isfinite(v).all() for v in final.values())


class _InfGradFn(torch.autograd.Function):
    """Value 0, gradient +inf: a finite loss whose gradient is not."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.shape = x.shape
        return x.new_zeros(())

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.full(ctx.shape, float("inf"), dtype=g.dtype)


# ----------------------------------------------------------------------------- alignment
def test_align_nnet_script(tiny: dict, tmp_path: Path) -> None:
    """Network forced alignment: ali.1.gz close to Kaldi's tri1 alignment it was trained on."""
    from pykd.kaldi.model_io import read_alignments, read_transition_model, tid_to_pdf

    out = tmp_path / "dnn_ali"
    proc = subprocess.run(
        ["steps_kd/align_nnet.sh", "--nj", "1", "--gmm-dir", str(tiny["tri1"]),
         str(tiny["data"]), str(tiny["lang"]), str(tiny["dnn"]), str(out)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("ali.1.gz", "final.mdl", "tree", "num_jobs"):
        assert (out / name).is_file()
    alis = read_alignments(out / "ali.1.gz")
    assert sorted(alis) == sorted(UTTS)
    t2p = tid_to_pdf(read_transition_model(out / "final.mdl"))
    agree = np.mean(np.concatenate([t2p[alis[u]] == t2p[tiny["alis"][u]] for u in UTTS]))
    assert agree > 0.7, agree


# ----------------------------------------------------------------------------- weak LM
def test_unigram_arpa(tmp_path: Path) -> None:
    from pykd.lm.arpa import read_arpa
    from pykd.seq.denlats import unigram_arpa

    text = tmp_path / "text"
    text.write_text("u1 a b a\nu2 b zz\n")
    counts = unigram_arpa(text, tmp_path / "lm.arpa.gz", words={"a", "b", "<unk>"})
    assert counts == {"a": 2, "b": 2, "<unk>": 1}
    lm = read_arpa(tmp_path / "lm.arpa.gz")
    assert lm.words() >= {"a", "b", "<unk>"}
    probs = [10**lp for lp, *_ in (lm.ngrams[1][(w,)] for w in ("a", "b", "<unk>", "</s>"))]
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert probs[0] == pytest.approx(2 / 7, rel=1e-5)
    with pytest.raises(ValueError, match="OOV symbol"):
        unigram_arpa(text, tmp_path / "x.arpa", words={"a", "b"})
