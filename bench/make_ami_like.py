"""Write AMI-shaped training data without AMI: a Kaldi data dir, alignments, a paper-size
teacher and its cached top-k posteriors (synthetic values, real formats).

For measuring what the network stages cost at AMI scale (~80 h, ~29M frames, ~4k tied states,
~150 speakers) on any machine. What is written under ``OUT``:

* ``data/train``: ``feats.scp`` + ``feats.N.ark`` (40-dim "fbank" as Kaldi compressed matrices,
  like ``compute-fbank-feats --compress``), ``utt2spk``, ``spk2utt``, ``cmvn.scp`` (per-speaker
  stats). Utterance lengths are log-normal around AMI's (median ~2 s, 0.3-20 s). Every frame is
  drawn around the mean of its pdf plus a per-speaker offset (which CMVN removes) and noise, and
  a pdf lasts 3-12 frames, so a network can learn something (frame accuracy well above chance).
* ``exp/tri1/final.mdl``: a transition model with ``--pdfs`` pdfs (3-state phones, many pdfs per
  phone state, as a large tree gives) and one Gaussian per pdf; ``exp/tri1_ali/ali.N.gz``: one
  transition-id per frame that maps to the frame's pdf (``ali-to-pdf`` gives the pdf sequence
  back; the alignments are not HMM-consistent paths, which frame-level training never needs).
* ``exp/teacher/final.pt``: a randomly initialised network of ``--teacher-config`` (the
  paper's 6 x 2048 sigmoid DNN by default) in pykd's checkpoint layout.
* ``exp/teacher/posts_train``: top-k "teacher" posteriors per frame in pykd's cached-target
  layout (``post.ark/scp`` + ``info.json``), most of the mass on the frame's pdf.

    python bench/make_ami_like.py --hours 10 /tmp/ami10 [--pdfs 4000 --speakers 150 --top-k 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pykd.features.cmvn import CmvnResult, acc_cmvn_stats, write_cmvn  # noqa: E402
from pykd.frontend.spec import DEFAULT_SPLICE as SPLICE  # noqa: E402
from pykd.io.compressed import kaldiio  # noqa: E402
from pykd.io.datadir import utt2spk_to_spk2utt, write_table  # noqa: E402
from pykd.kaldi.model_io import (  # noqa: E402
    build_transition_model,
    make_diag_gmm,
    read_topo,
    tid_to_pdf,
    write_alignments,
    write_model,
)
from pykd.kaldi.posterior_io import write_posteriors  # noqa: E402

FEAT_DIM = 40
FRAMES_PER_HOUR = 360_000
TOPO = """<Topology>
<TopologyEntry>
<ForPhones> {phones} </ForPhones>
<State> 0 <PdfClass> 0 <Transition> 0 0.75 <Transition> 1 0.25 </State>
<State> 1 <PdfClass> 1 <Transition> 1 0.75 <Transition> 2 0.25 </State>
<State> 2 <PdfClass> 2 <Transition> 2 0.75 <Transition> 3 0.25 </State>
<State> 3 </State>
</TopologyEntry>
</Topology>
"""


def utterance_lengths(rng: np.random.Generator, total_frames: int) -> np.ndarray:
    """AMI-like segment lengths in frames (log-normal, median ~2 s, 30..2000) summing to about
    ``total_frames``."""
    mean = float(np.exp(np.log(200) + 0.8**2 / 2))
    n = max(int(total_frames / mean * 1.2) + 16, 4)
    lengths = np.clip(rng.lognormal(np.log(200), 0.8, size=n), 30, 2000).astype(np.int64)
    cut = int(np.searchsorted(np.cumsum(lengths), total_frames)) + 1
    return lengths[: max(cut, 2)]


def pdf_sequence(rng: np.random.Generator, length: int, prior: np.ndarray) -> np.ndarray:
    """A frame-level pdf sequence: pdfs drawn from ``prior``, each lasting 3-12 frames."""
    runs = rng.integers(3, 13, size=length // 3 + 1)
    pdfs = rng.choice(len(prior), size=len(runs), p=prior)
    return np.repeat(pdfs, runs)[:length]


def write_transition_model(path: Path, num_pdfs: int, num_phones: int = 40) -> np.ndarray:
    """A ``final.mdl`` whose pdfs are spread over the states of ``num_phones`` 3-state phones
    (several pdfs per phone state, as a tree's leaves); returns a transition-id per pdf."""
    import kaldi_hmm_gmm as khg  # noqa: PLC0415

    phones = " ".join(str(p) for p in range(1, num_phones + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "topo").write_text(TOPO.format(phones=phones))
    topo = read_topo(path.parent / "topo")
    per_state = -(-num_pdfs // (3 * num_phones))
    tuples = []
    for pdf in range(num_pdfs):
        phone_state, _ = divmod(pdf, per_state)
        phone, state = divmod(phone_state, 3)
        tuples.append((phone + 1, state, pdf, pdf))
    tm = build_transition_model(topo, sorted(tuples))
    am = khg.AmDiagGmm()
    ones = np.ones((1, FEAT_DIM), dtype=np.float32)
    for _ in range(num_pdfs):
        am.add_pdf(make_diag_gmm(np.ones(1), np.zeros((1, FEAT_DIM)), ones))
    write_model(path, tm, am)
    t2p = tid_to_pdf(tm)
    pdf2tid = np.zeros(num_pdfs, dtype=np.int32)
    for tid in range(len(t2p) - 1, 0, -1):  # the lowest transition-id of each pdf
        pdf2tid[t2p[tid]] = tid
    return pdf2tid


def write_teacher(path: Path, config: str, num_pdfs: int) -> int:
    """A randomly initialised network of ``config`` in pykd's checkpoint layout; its parameters."""
    import torch  # noqa: PLC0415

    from pykd.frontend.spec import InputSpec  # noqa: PLC0415
    from pykd.models import build_model, count_parameters, load_model_config  # noqa: PLC0415
    from pykd.train.checkpoint import save_checkpoint  # noqa: PLC0415

    torch.manual_seed(0)
    cfg = load_model_config(config)
    input_dim = FEAT_DIM * (2 * SPLICE + 1)
    model = build_model(cfg, input_dim, num_pdfs)
    meta = {
        "model_config": cfg.to_dict(),
        "num_pdfs": num_pdfs,
        "input_dim": input_dim,
        "input": InputSpec(cmvn="mean", splice=SPLICE).to_meta(),
        "params": count_parameters(model),
        "loss": "ce",
        "note": "synthetic: randomly initialised (bench/make_ami_like.py)",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, {"model": model.state_dict(), "meta": meta})
    return int(meta["params"])


def generate(
    out: Path,
    hours: float,
    *,
    num_pdfs: int = 4000,
    speakers: int = 150,
    top_k: int = 20,
    num_jobs: int = 8,
    seed: int = 0,
    teacher_config: str | None = None,
    log_every: int = 5000,
) -> dict:
    """Write everything (module doc) under ``out``; returns the ``info.json`` content."""
    start = time.time()
    rng = np.random.default_rng(seed)
    data, ali_dir = out / "data" / "train", out / "exp" / "tri1_ali"
    posts_dir = out / "exp" / "teacher" / "posts_train"
    for d in (data, ali_dir, posts_dir):
        d.mkdir(parents=True, exist_ok=True)
    pdf2tid = write_transition_model(out / "exp" / "tri1" / "final.mdl", num_pdfs)
    shutil.copy(out / "exp" / "tri1" / "final.mdl", ali_dir / "final.mdl")
    (ali_dir / "num_jobs").write_text(f"{num_jobs}\n")

    lengths = utterance_lengths(rng, int(hours * FRAMES_PER_HOUR))
    prior = rng.zipf(1.5, size=num_pdfs).astype(np.float64) ** 0.5  # skewed, like tied states
    prior[0] *= 50.0  # one dominant "silence" pdf
    prior /= prior.sum()
    means = rng.normal(0.0, 1.0, size=(num_pdfs, FEAT_DIM)).astype(np.float32)
    spk_offsets = rng.normal(0.0, 2.0, size=(speakers, FEAT_DIM)).astype(np.float32)
    spk_of = np.sort(rng.integers(0, speakers, size=len(lengths)))  # grouped, as sorted ids
    utts = [f"spk{s:04d}-utt{i:07d}" for i, s in enumerate(spk_of)]
    utt2spk = {u: f"spk{s:04d}" for u, s in zip(utts, spk_of, strict=True)}
    write_table(data / "utt2spk", utt2spk)
    write_table(data / "spk2utt", utt2spk_to_spk2utt(utt2spk))

    cmvn = CmvnResult()
    scp_lines: list[str] = []
    alis: list[dict[str, np.ndarray]] = [{} for _ in range(num_jobs)]
    per_job = -(-len(utts) // num_jobs)
    frames = 0

    def posts() -> Iterator[tuple[str, tuple[np.ndarray, np.ndarray]]]:
        nonlocal frames
        arks = [open(data / f"feats.{j + 1}.ark", "wb") for j in range(num_jobs)]  # noqa: SIM115
        try:
            for i, (utt, n) in enumerate(zip(utts, lengths, strict=True)):
                job = i // per_job
                pdfs = pdf_sequence(rng, int(n), prior)
                spk = utt2spk[utt]
                feats = means[pdfs] + spk_offsets[spk_of[i]]
                feats += rng.normal(0.0, 0.8, size=feats.shape).astype(np.float32)
                ark = arks[job]
                offset = ark.tell() + len(utt) + 1
                kaldiio.save_ark(ark, {utt: feats}, compression_method=2)
                scp_lines.append(f"{utt} {data / f'feats.{job + 1}.ark'}:{offset}\n")
                cmvn.stats[spk] = acc_cmvn_stats(feats, cmvn.stats.get(spk))
                alis[job][utt] = pdf2tid[pdfs]
                frames += len(pdfs)
                yield utt, teacher_posteriors(rng, pdfs, num_pdfs, top_k)
                if log_every and (i + 1) % log_every == 0:
                    rate = frames / max(time.time() - start, 1e-9)
                    print(
                        f"  {i + 1}/{len(utts)} utterances, {frames / FRAMES_PER_HOUR:.1f} h, "
                        f"{rate:.0f} frames/s", flush=True,
                    )  # fmt: skip
        finally:
            for f in arks:
                f.close()

    post_frames = write_posteriors(posts_dir / "post.ark", posts_dir / "post.scp", posts())
    (data / "feats.scp").write_text("".join(scp_lines))
    cmvn.num_utts_done = len(utts)
    write_cmvn(cmvn, data / "cmvn.ark", data / "cmvn.scp")
    for j, ali in enumerate(alis):
        write_alignments(ali_dir / f"ali.{j + 1}.gz", ali)
    teacher = out / "exp" / "teacher" / "final.pt"
    config = teacher_config or str(REPO / "conf" / "teacher_dnn.yaml")
    teacher_params = write_teacher(teacher, config, num_pdfs)
    posts_bytes = (posts_dir / "post.ark").stat().st_size
    posts_info = {
        "teacher": str(teacher),
        "teacher_sha256": "",
        "data": str(data),
        "top_k": top_k,
        "num_pdfs": num_pdfs,
        "utterances": len(utts),
        "frames": post_frames,
        "kept_mass": 0.95,
        "bytes_per_frame": posts_bytes / post_frames,
        "seconds": 0.0,
        "note": "synthetic (bench/make_ami_like.py)",
    }
    (posts_dir / "info.json").write_text(json.dumps(posts_info, indent=1) + "\n")
    info = {
        "hours": frames / FRAMES_PER_HOUR,
        "frames": frames,
        "utterances": len(utts),
        "speakers": len(set(spk_of.tolist())),
        "num_pdfs": num_pdfs,
        "feat_dim": FEAT_DIM,
        "top_k": top_k,
        "feats_bytes": sum(p.stat().st_size for p in data.glob("feats.*.ark")),
        "posts_bytes": posts_bytes,
        "teacher_config": config,
        "teacher_params": teacher_params,
        "seed": seed,
        "seconds": round(time.time() - start, 1),
    }
    (out / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def teacher_posteriors(
    rng: np.random.Generator, pdfs: np.ndarray, num_pdfs: int, top_k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k posteriors per frame: 0.6-0.9 on the frame's pdf, the rest of 0.95 spread over
    k - 1 other pdfs, highest first."""
    t = len(pdfs)
    k = min(top_k, num_pdfs)
    ids = np.empty((t, k), dtype=np.int32)
    ids[:, 0] = pdfs
    if k > 1:
        others = rng.integers(0, num_pdfs - 1, size=(t, k - 1))
        ids[:, 1:] = others + (others >= pdfs[:, None])  # never the frame's own pdf
    probs = np.empty((t, k), dtype=np.float32)
    probs[:, 0] = rng.uniform(0.6, 0.9, size=t)
    if k > 1:
        rest = np.sort(rng.dirichlet(np.ones(k - 1), size=t), axis=1)[:, ::-1]
        probs[:, 1:] = rest * (0.95 - probs[:, :1])
    return ids, probs


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module doc."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=10.0, help="training hours (AMI: ~80)")
    ap.add_argument("--pdfs", type=int, default=4000, help="tied states (AMI: ~4k)")
    ap.add_argument("--speakers", type=int, default=150)
    ap.add_argument("--top-k", type=int, default=20, help="teacher posteriors kept per frame")
    ap.add_argument("--num-jobs", type=int, default=8, help="feats / alignment files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teacher-config", help="teacher YAML (default conf/teacher_dnn.yaml)")
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    info = generate(
        args.out, args.hours, num_pdfs=args.pdfs, speakers=args.speakers, top_k=args.top_k,
        num_jobs=args.num_jobs, seed=args.seed, teacher_config=args.teacher_config,
    )  # fmt: skip
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
