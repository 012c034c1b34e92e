"""``pykd adapt-speakers``: adapt a trained network per speaker of a data dir (docs/adaptation.md).

Writes ``<out-dir>/spk/<spk>.pt`` (adapted tensors only), ``adapt_stats.tsv``, ``summary.json``
and, for ``--protocol split``, the utterance lists ``adapt_utts`` and ``test_utts``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pykd.adapt.config import OPTIMIZERS, AdaptConfig
from pykd.cli_args import add_torch_args, config_from_args
from pykd.frontend.groups import PARAM_SETS

log = logging.getLogger(__name__)

STATS_HEADER = ("speaker", "frames", "adapted_params", "loss_before", "loss_after", "seconds")
ADAPTED = "adapted"
SKIPPED = "skipped-too-little-data"


def _check_teacher(meta: dict[str, Any], t_meta: dict[str, Any], path: str) -> None:
    from pykd.adapt.config import AdaptError  # noqa: PLC0415
    from pykd.frontend.spec import InputSpec  # noqa: PLC0415

    def key(m: dict[str, Any]) -> tuple:
        return m["num_pdfs"], m["input_dim"], InputSpec.from_meta(m)

    mine, theirs = key(meta), key(t_meta)
    if mine != theirs:
        raise AdaptError(
            f"teacher {path} has (pdfs, input dim, input) = {theirs}, the model {mine}"
        )


def _cached_posteriors(posts_dir: Path, num_pdfs: int) -> tuple[Any, dict[str, Any]]:
    """The teacher's cached posteriors (``pykd teacher-posts`` dir) and their ``info.json``,
    checked against the model's outputs."""
    from pykd.adapt.config import AdaptError  # noqa: PLC0415
    from pykd.kaldi.posterior_io import PosteriorTable  # noqa: PLC0415
    from pykd.nnet.teacher_posts import read_info  # noqa: PLC0415

    info = read_info(posts_dir)
    if int(info["num_pdfs"]) != num_pdfs:
        raise AdaptError(
            f"{posts_dir}: the teacher has {info['num_pdfs']} outputs, the model {num_pdfs}"
        )
    return PosteriorTable(posts_dir / "post.scp"), info


def _fmt(x: float) -> str:
    return f"{x:.4f}"


@dataclass(frozen=True)
class AdaptJob:
    """One ``adapt-speakers`` run, typed: the base model, data, targets (exactly one of
    ``teacher``, ``teacher_posts``, ``lattices``, ``ali_dir``) and options (see ``--help``)."""

    model: str
    data_dir: Path
    out_dir: Path
    config: AdaptConfig
    teacher: str | None = None
    lattices: str | None = None
    ali_dir: str | None = None
    gmm_model: str | None = None
    lmwt: int | None = None
    wip: str | None = None
    protocol: str = "same"
    min_frames: int = 300
    teacher_posts: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, device: str) -> AdaptJob:
        """The job of ``pykd adapt-speakers``'s options, on ``device``."""
        return cls(
            args.model, Path(args.data_dir), Path(args.out_dir),
            config_from_args(AdaptConfig, args, device=device),
            args.teacher, args.lattices, args.ali_dir, args.gmm_model, args.lmwt, args.wip,
            args.protocol, args.min_frames, args.teacher_posts,
        )  # fmt: skip


def adapt_speakers(job: AdaptJob) -> dict[str, Any]:
    """Run the whole thing; returns the summary written to ``summary.json``."""

    from pykd.adapt.config import AdaptError  # noqa: PLC0415
    from pykd.adapt.core import adapt_speaker, speaker_frames, stats_dict  # noqa: PLC0415
    from pykd.adapt.targets import (  # noqa: PLC0415
        decode_targets,
        oracle_targets,
        split_utterances,
    )
    from pykd.data.frames import UtteranceSource  # noqa: PLC0415
    from pykd.frontend.model import (  # noqa: PLC0415
        file_sha256,
        load_acoustic_model,
        save_speaker_params,
        select_parameters,
        speaker_file,
    )
    from pykd.frontend.spec import InputSpec  # noqa: PLC0415
    from pykd.io.atomic import atomic_write_text  # noqa: PLC0415
    from pykd.io.datadir import c_sorted, read_table  # noqa: PLC0415

    sources = [x for x in (job.teacher, job.teacher_posts, job.lattices, job.ali_dir) if x]
    if len(sources) != 1:
        raise AdaptError("give exactly one of --teacher, --teacher-posts, --lattices and --ali-dir")
    cfg = job.config
    cfg.validate()
    device = cfg.device
    data, out = job.data_dir, job.out_dir
    for f in ("feats.scp", "utt2spk", "spk2utt"):
        if not (data / f).is_file():
            raise FileNotFoundError(f"missing {data / f}")

    model, meta = load_acoustic_model(job.model, device=device)
    base_sha = file_sha256(job.model)
    n_adapt = sum(p.numel() for p in select_parameters(model, cfg.params).values())
    settings: dict[str, Any] = {"model": os.fspath(job.model), "base_sha256": base_sha}

    teacher = None
    targets = None
    posts = None
    if job.teacher:
        method = "teacher"
        teacher, t_meta = load_acoustic_model(job.teacher, device=device)
        _check_teacher(meta, t_meta, job.teacher)
        settings["teacher"] = os.fspath(job.teacher)
    elif job.teacher_posts:
        method = "teacher"
        posts, info = _cached_posteriors(Path(job.teacher_posts), int(meta["num_pdfs"]))
        targets = {}  # every utterance is "untranscribed": it learns from the posteriors alone
        settings.update(teacher=info["teacher"], teacher_posts=os.fspath(job.teacher_posts))
        settings.update(teacher_top_k=info["top_k"], teacher_kept_mass=info["kept_mass"])
    else:
        from pykd.data.targets import check_targets, num_pdfs  # noqa: PLC0415

        if not job.gmm_model:
            raise AdaptError("--lattices / --ali-dir need --gmm-model (final.mdl of the pdfs)")
        if num_pdfs(job.gmm_model) != meta["num_pdfs"]:
            raise AdaptError(
                f"{job.gmm_model} has {num_pdfs(job.gmm_model)} pdfs, the network "
                f"{meta['num_pdfs']} outputs"
            )
        settings["gmm_model"] = os.fspath(job.gmm_model)
        if job.lattices:
            method = "decode"
            targets, info = decode_targets(
                job.lattices, job.gmm_model, read_table(data / "utt2spk"), job.lmwt, job.wip
            )
            settings.update(lattices=os.fspath(job.lattices), **info)
        else:
            method = "oracle"
            targets = oracle_targets(job.ali_dir, job.gmm_model)
            settings["ali_dir"] = os.fspath(job.ali_dir)
        check_targets(targets, meta["num_pdfs"])

    source = UtteranceSource.of_data_dir(
        data, targets, InputSpec.from_meta(meta), teacher_posts=posts
    )
    have = set(source.utterances)
    spk2utts = {s: v.split() for s, v in read_table(data / "spk2utt").items()}
    missing = sorted(u for us in spk2utts.values() for u in us if u not in have)
    if missing:
        log.warning("%d utterances of spk2utt have no features (e.g. %s)", len(missing), missing[0])
    spk2utts = {s: c_sorted(u for u in us if u in have) for s, us in spk2utts.items()}
    out.mkdir(parents=True, exist_ok=True)
    if job.protocol == "split":
        adapt_utts, test_utts = split_utterances(spk2utts)
        for name, table in (("adapt_utts", adapt_utts), ("test_utts", test_utts)):
            utts = c_sorted(u for us in table.values() for u in us)
            atomic_write_text(out / name, "".join(u + "\n" for u in utts))
    else:
        adapt_utts = spk2utts
        for name in ("adapt_utts", "test_utts"):
            (out / name).unlink(missing_ok=True)

    log.info(
        "adapting %d speakers of %s: method %s, params %s (%d per speaker), %d epochs, %s lr %g, "
        "KL weight %g, protocol %s, on %s", len(spk2utts), data, method, cfg.params, n_adapt,
        cfg.epochs, cfg.optimizer, cfg.lr, cfg.kl_weight, job.protocol, device,
    )  # fmt: skip
    rows: list[str] = ["\t".join((*STATS_HEADER, "status"))]
    per_spk: dict[str, dict[str, Any]] = {}
    wall0 = time.perf_counter()
    for spk in spk2utts:
        t0 = time.perf_counter()
        frames = speaker_frames(source, adapt_utts[spk])
        path = speaker_file(out, spk)
        if len(frames) < job.min_frames or len(frames) == 0:
            log.warning(
                "speaker %s: %d frames (%d usable utterances) < --min-frames %d: "
                "left unadapted", spk, len(frames), len(frames.utts), job.min_frames,
            )  # fmt: skip
            path.unlink(missing_ok=True)
            rows.append("\t".join((spk, str(len(frames)), "0", "-", "-", "0.000", SKIPPED)))
            per_spk[spk] = {"status": SKIPPED, "frames": len(frames), "utts": len(frames.utts)}
            continue
        res = adapt_speaker(model, frames, cfg, teacher)
        st = res.stats
        spk_meta = {
            "method": method,
            "config": vars(cfg).copy(),
            "stats": stats_dict(st),
            "utts": frames.utts,
        }
        save_speaker_params(path, res.state, speaker=spk, base_sha256=base_sha, meta=spk_meta)
        total_s = time.perf_counter() - t0
        log.info(
            "speaker %s: %d frames (%d utts), %d params, loss %.4f -> %.4f, %d steps in %.2f s "
            "(%.2f s with I/O)", spk, st.frames, st.utts, st.adapted_params, st.loss_before,
            st.loss_after, st.steps, st.seconds, total_s,
        )  # fmt: skip
        if frames.skipped:
            log.warning("speaker %s: %d utterances without targets", spk, len(frames.skipped))
        rows.append(
            "\t".join(
                (
                    spk,
                    str(st.frames),
                    str(st.adapted_params),
                    _fmt(st.loss_before),
                    _fmt(st.loss_after),
                    f"{st.seconds:.3f}",
                    ADAPTED,
                )
            )
        )
        per_spk[spk] = {
            "status": ADAPTED,
            **stats_dict(st),
            "seconds_with_io": total_s,
            "utts_without_targets": len(frames.skipped),
        }
        del res
    adapted = {s: v for s, v in per_spk.items() if v["status"] == ADAPTED}
    skipped = c_sorted(s for s, v in per_spk.items() if v["status"] != ADAPTED)
    frames_ad = sum(v["frames"] for v in adapted.values())
    summary: dict[str, Any] = {
        "method": method,
        "protocol": job.protocol,
        "data_dir": os.fspath(data),
        **settings,
        "config": vars(cfg).copy(),
        "min_frames": job.min_frames,
        "num_speakers": len(per_spk),
        "num_adapted": len(adapted),
        "num_skipped": len(skipped),
        "skipped_speakers": skipped,
        "adapted_params_per_speaker": n_adapt,
        "frames_adapted": frames_ad,
        "seconds_total": sum(v["seconds"] for v in adapted.values()),
        "mean_seconds_per_speaker": (
            sum(v["seconds"] for v in adapted.values()) / len(adapted) if adapted else 0.0
        ),
        "mean_loss_before": (
            sum(v["loss_before"] * v["frames"] for v in adapted.values()) / frames_ad
            if frames_ad
            else None
        ),
        "mean_loss_after": (
            sum(v["loss_after"] * v["frames"] for v in adapted.values()) / frames_ad
            if frames_ad
            else None
        ),
        "wall_seconds": time.perf_counter() - wall0,
        "speakers": per_spk,
    }
    atomic_write_text(out / "adapt_stats.tsv", "\n".join(rows) + "\n")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    if skipped:
        log.warning(
            "%d of %d speakers left unadapted (too little data): %s",
            len(skipped), len(per_spk), " ".join(skipped),
        )  # fmt: skip
    log.info(
        "adapted %d speakers, %d parameters each, mean %.2f s per speaker -> %s",
        len(adapted), n_adapt, summary["mean_seconds_per_speaker"], out,
    )  # fmt: skip
    return summary


def _run(args: argparse.Namespace) -> int:
    from pykd.train.distributed import setup_torch  # noqa: PLC0415

    adapt_speakers(AdaptJob.from_args(args, setup_torch(args.num_threads, args.device)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pykd adapt-speakers``."""
    p = subparsers.add_parser(
        "adapt-speakers",
        help="per-speaker adaptation (HDNN gates by default) with teacher/decode/oracle targets",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--model", required=True, help="base (speaker-independent) final.pt")
    p.add_argument("--teacher", help="teacher final.pt: targets = its posteriors (unsupervised)")
    p.add_argument(
        "--teacher-posts",
        help="the teacher's cached top-k posteriors over <data_dir> (`pykd teacher-posts` dir): "
        "targets as --teacher, without its forward pass",
    )
    p.add_argument("--lattices", help="first-pass decode dir (lat.N.gz, scoring_kaldi/best_wer)")
    p.add_argument("--ali-dir", help="dir with ali.N.gz of the reference transcripts (oracle)")
    p.add_argument("--gmm-model", help="final.mdl mapping transition-ids to pdfs")
    p.add_argument("--lmwt", type=int, help="LM weight for the best path (default: best_wer's)")
    p.add_argument("--wip", help="word insertion penalty for the best path (default: best_wer's)")
    d = AdaptConfig()  # every default once, in the config (shown by --help)
    p.add_argument(
        "--params", default=d.params, choices=PARAM_SETS,
        help="parameters adapted (default: %(default)s; gates: the HDNN's shared gates)",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over a speaker's data")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate (default %(default)s)")
    p.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="frames per mini-batch")
    p.add_argument(
        "--kl-weight", type=float, default=d.kl_weight,
        help="weight of KL(SI posteriors || adapted posteriors) added to the loss (%(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--min-frames", type=int, default=300,
        help="speakers with fewer adaptation frames are left unadapted (default 300)",
    )  # fmt: skip
    p.add_argument(
        "--protocol", default="same", choices=("same", "split"),
        help="same: adapt on all of a speaker's utterances; split: on the first half (sorted)",
    )  # fmt: skip
    p.add_argument(
        "--teacher-cache-mb", type=float, default=d.teacher_cache_mb,
        help="keep a speaker's teacher posteriors (computed once) up to this size; larger: "
        "recomputed per mini-batch (default %(default)s)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=d.seed)
    add_torch_args(p, num_threads=1)
    p.add_argument("data_dir", help="fbank data dir (feats.scp, cmvn.scp, utt2spk, spk2utt)")
    p.add_argument("out_dir", help="output: spk/<spk>.pt, adapt_stats.tsv, summary.json")
    p.set_defaults(func=_run)
