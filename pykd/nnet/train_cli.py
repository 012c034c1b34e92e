"""``pykd train-nnet``: train a frame-level acoustic network (CE, or KD from a teacher: run on
every batch, or its posteriors cached by ``pykd teacher-posts``).

Glue between the recipe's files and the building blocks: fbank data dir (feats.scp, optional
cmvn.scp + utt2spk) -> CMVN'd, spliced frames (:mod:`pykd.data`); ``ali.*.gz`` + ``final.mdl``
-> pdf targets; speaker-held-out CV split; ``prior.counts`` from the TRAIN split's alignments
(Kaldi analyze-counts style); model from a YAML config (:mod:`pykd.models`); newbob training
(:mod:`pykd.train.trainer`). ``<out-dir>/final.pt`` holds ``{"model", "meta", "summary"}`` with
the meta :func:`pykd.nnet.loglikes.load_acoustic_model` expects.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pykd.cli_args import add_torch_args
from pykd.train.options import PRECISIONS, DataOptions, KdOptions

log = logging.getLogger(__name__)


class TrainNnetError(ValueError):
    """A configuration or input problem found before training starts."""


@dataclass(frozen=True)
class NnetJob:
    """One ``train-nnet`` run, typed: inputs, output dir and every option (see ``--help``)."""

    data: Path  # fbank data dir
    ali_dir: Path  # ali.*.gz
    gmm_dir: Path  # final.mdl: the pdfs
    out: Path
    model_config: str
    train: Any  # pykd.train.trainer.TrainConfig (torch-heavy module: imported when run)
    data_opts: DataOptions = DataOptions()
    teacher: str | None = None  # KD from this checkpoint
    teacher_posts: Path | None = None  # KD from its cached posteriors (pykd teacher-posts)
    kd: KdOptions = KdOptions()
    num_threads: int = 0  # 0: torch's default

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> NnetJob:
        """The job of ``pykd train-nnet``'s options (the train config YAML read here)."""
        train, data_opts = _train_config(args)
        if args.teacher and args.teacher_posts:
            raise TrainNnetError("give --teacher or --teacher-posts, not both")
        return cls(
            Path(args.data), Path(args.ali_dir), Path(args.gmm_dir), Path(args.out),
            args.model_config, train, data_opts, args.teacher,
            Path(args.teacher_posts) if args.teacher_posts else None,
            KdOptions(float(args.kd_p), float(args.kd_temperature)), args.num_threads,
        )  # fmt: skip


def _train_config(args: argparse.Namespace) -> tuple[Any, DataOptions]:
    """(TrainConfig, DataOptions) from ``--train-config`` (``train:`` section or top level) and
    the command-line options over it; the defaults are the dataclasses'."""
    import yaml  # noqa: PLC0415

    from pykd.train.trainer import TrainConfig  # noqa: PLC0415

    data: dict[str, Any] = {}
    if args.train_config:
        with open(args.train_config, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle) or {}
        if not isinstance(loaded, dict):
            raise TrainNnetError(f"{args.train_config}: expected a YAML mapping")
        data = dict(loaded.get("train", loaded))
    # the data options (not the Trainer's): the YAML's, then the command line's
    names = [f.name for f in fields(DataOptions)]
    data_opts = {k: data.pop(k) for k in names if k in data}
    data_opts.update({k: getattr(args, k) for k in names if getattr(args, k, None) is not None})
    if args.lr is not None:
        data["lr"] = args.lr
    if args.seed is not None:
        data["seed"] = args.seed
    if args.precision is not None:
        data["precision"] = args.precision
    newbob = dict(data.get("newbob") or {})
    for key in ("min_epochs", "max_epochs", "keep_lr_epochs"):
        if getattr(args, key, None) is not None:
            newbob[key] = getattr(args, key)
    if newbob:
        data["newbob"] = newbob
    if args.resume:
        data["resume"] = True
    if args.device != "auto":
        data["device"] = args.device
    try:
        return TrainConfig.from_dict(data), DataOptions(**data_opts)
    except (TypeError, ValueError) as err:
        raise TrainNnetError(f"training config: {err}") from err


def _load_teacher(path: str, num_pdfs: int, input_dim: int, spec: Any) -> tuple[Any, dict]:
    """Load a teacher checkpoint and check it is compatible with the student's data."""
    from pykd.frontend.model import load_acoustic_model  # noqa: PLC0415

    teacher, meta = load_acoustic_model(path)
    if int(meta["num_pdfs"]) != num_pdfs:
        raise TrainNnetError(
            f"teacher {path} has {meta['num_pdfs']} outputs but the alignment model has "
            f"{num_pdfs} pdfs (train the teacher on the same tree)"
        )
    from pykd.frontend.spec import InputSpec  # noqa: PLC0415

    t_in, t_spec = int(meta.get("input_dim") or input_dim), InputSpec.from_meta(meta)
    if t_in != input_dim or t_spec != spec:
        raise TrainNnetError(
            f"teacher {path} takes {t_in}-dim input ({t_spec.describe()}); the student gets "
            f"{input_dim} ({spec.describe()})"
        )
    return teacher, meta


def _check_resume(out: Path, n_pdfs: int, input_dim: int, model_config: dict) -> None:
    """A resumed run must continue the same network (same pdfs, input and architecture)."""
    from pykd.train.checkpoint import latest_checkpoint, load_checkpoint  # noqa: PLC0415

    last = latest_checkpoint(out / "checkpoints")
    if last is None:
        return
    meta = load_checkpoint(last, map_location="cpu").get("meta") or {}
    have = (meta.get("num_pdfs"), meta.get("input_dim"), meta.get("model_config"))
    if have != (n_pdfs, input_dim, model_config):
        raise TrainNnetError(
            f"--resume: {last} is a network with {have[0]} outputs, {have[1]} inputs, "
            f"config {have[2]}; this run wants {n_pdfs}, {input_dim}, {model_config}"
        )


def train_nnet(job: NnetJob) -> dict[str, Any]:
    """Run the whole thing; returns the trainer's summary."""
    import torch  # noqa: PLC0415 (keep `pykd --help` light)

    from pykd.data import (  # noqa: PLC0415
        FrameShuffleDataset,
        SequentialFrameDataset,
        UtteranceSource,
        load_pdf_alignments,
        num_pdfs,
        pdf_counts,
        split_cv,
        write_counts,
    )
    from pykd.data.targets import check_targets  # noqa: PLC0415
    from pykd.frontend.spec import InputSpec  # noqa: PLC0415
    from pykd.io.atomic import atomic_write_text  # noqa: PLC0415
    from pykd.io.datadir import c_sorted, read_table  # noqa: PLC0415
    from pykd.kaldi.model_io import alignment_files  # noqa: PLC0415
    from pykd.kaldi.posterior_io import PosteriorTable  # noqa: PLC0415
    from pykd.models import (  # noqa: PLC0415
        build_model,
        count_parameters,
        load_model_config,
        mflops_per_frame,
    )
    from pykd.nnet.teacher_posts import read_info  # noqa: PLC0415
    from pykd.train.distributed import current_info, training_device  # noqa: PLC0415
    from pykd.train.losses import cached_kd_loss, ce_loss, kd_loss  # noqa: PLC0415
    from pykd.train.trainer import Trainer, seed_everything  # noqa: PLC0415

    data, ali_dir, gmm_dir, out = job.data, job.ali_dir, job.gmm_dir, job.out
    feats_scp = data / "feats.scp"
    mdl = gmm_dir / "final.mdl"
    for f in (feats_scp, mdl):
        if not f.is_file():
            raise FileNotFoundError(f"missing {f}")
    ali_files = alignment_files(ali_dir)
    if job.num_threads > 0:
        torch.set_num_threads(job.num_threads)

    model_cfg = load_model_config(job.model_config)
    cfg, data_opts = job.train, job.data_opts
    batch_size, buffer_frames = data_opts.batch_size, data_opts.buffer_frames
    cv_fraction = data_opts.cv_fraction

    n_pdfs = num_pdfs(mdl)
    targets = load_pdf_alignments(ali_files, mdl, compact=True)
    check_targets(targets, n_pdfs)
    # per-speaker mean normalisation when the data dir has CMVN stats
    spec = InputSpec(cmvn="mean" if (data / "cmvn.scp").is_file() else "none")
    posts_info, posts = None, None
    if job.teacher_posts is not None:
        posts_info = read_info(job.teacher_posts)
        if posts_info["num_pdfs"] != n_pdfs:
            raise TrainNnetError(
                f"{job.teacher_posts}: the teacher has {posts_info['num_pdfs']} outputs but {mdl} "
                f"has {n_pdfs} pdfs (train the teacher on the same tree)"
            )
        posts = PosteriorTable(job.teacher_posts / "post.scp")
    source = UtteranceSource.of_data_dir(data, targets, spec, teacher_posts=posts)
    utts = [u for u in source.utterances if u in targets]
    # with cached teacher posteriors, utterances without a transcript (no alignment) train from
    # the teacher alone; they never go to CV and do not count in the priors
    untranscribed = [u for u in source.utterances if source.is_untranscribed(u)]
    if len(utts) < 2:
        raise TrainNnetError(f"only {len(utts)} utterances of {feats_scp} have alignments")
    if len(utts) + len(untranscribed) < len(source.utterances):
        missing = [u for u in source.utterances if u not in targets and u not in untranscribed]
        log.warning(
            "%d of %d utterances of %s have no alignment in %s (left out): %s%s",
            len(missing), len(source.utterances), feats_scp, ali_dir, " ".join(missing[:10]),
            " ..." if len(missing) > 10 else "",
        )  # fmt: skip
    utt2spk_path = data / "utt2spk"
    utt2spk = read_table(utt2spk_path) if utt2spk_path.is_file() else {u: u for u in utts}
    train_utts, cv_utts = split_cv({u: utt2spk.get(u, u) for u in utts}, cv_fraction)
    counts = pdf_counts((targets[u] for u in train_utts), n_pdfs)
    if untranscribed:
        log.info(
            "%d untranscribed utterances (cached teacher posteriors, no alignment) join training",
            len(untranscribed),
        )
        train_utts = c_sorted([*train_utts, *untranscribed])
    log.info("%d train / %d CV utterances, %d pdfs", len(train_utts), len(cv_utts), n_pdfs)

    out.mkdir(parents=True, exist_ok=True)
    if current_info().is_main:  # under torchrun every rank reads the same data; one writes
        write_counts(out / "prior.counts", counts)
        # The held-out utterances, so the priors (and the CV figures) can be recomputed
        # elsewhere, e.g. by Kaldi's ali-to-pdf | analyze-counts over the other utterances.
        atomic_write_text(out / "cv_utts", "".join(f"{u}\n" for u in sorted(cv_utts)))

    input_dim = source.input_dim
    seed_everything(cfg.seed)  # before the weights are drawn: --seed fixes the initial network
    model = build_model(model_cfg, input_dim, n_pdfs)
    with torch.no_grad():
        out_dim = int(model.eval()(torch.zeros(1, input_dim)).shape[-1])
    model.train()
    if out_dim != n_pdfs:
        raise TrainNnetError(f"network outputs {out_dim} values but {mdl} has {n_pdfs} pdfs")
    if cfg.resume:
        _check_resume(out, n_pdfs, input_dim, model_cfg.to_dict())
    params, mflops = count_parameters(model), mflops_per_frame(model, input_dim)
    log.info("model %s: %d parameters, %.3f MFLOPs/frame", model_cfg.type, params, mflops)

    teacher = None
    meta: dict[str, Any] = {
        "model_config": model_cfg.to_dict(),
        "num_pdfs": n_pdfs,
        "input_dim": input_dim,
        "input": spec.to_meta(),
        "params": params,
        "mflops_per_frame": mflops,
        "train_utts": len(train_utts),
        "untranscribed_utts": len(untranscribed),
        "cv_utts": len(cv_utts),
        "loss": "ce",
        "seed": cfg.seed,
    }
    if job.teacher:
        teacher, t_meta = _load_teacher(job.teacher, n_pdfs, input_dim, spec)
        p, temp = job.kd.p, job.kd.temperature

        def loss_fn(out_: torch.Tensor, y: torch.Tensor, t_out: torch.Tensor) -> torch.Tensor:
            return kd_loss(out_, t_out, y, p, temp)

        meta.update(
            loss="kd",
            teacher=os.fspath(job.teacher),
            teacher_params=count_parameters(teacher),
            kd_p=p,
            kd_temperature=temp,
        )
        log.info("KD from %s (%s): p=%g T=%g", job.teacher, t_meta["model_config"], p, temp)
    elif posts_info is not None:
        p, temp = job.kd.p, job.kd.temperature

        def loss_fn(out_, y, t_ids, t_probs):  # type: ignore[no-redef,misc]
            return cached_kd_loss(out_, y, t_ids, t_probs, p, temp)

        meta.update(
            loss="kd",
            teacher=posts_info["teacher"],
            teacher_posts=os.fspath(job.teacher_posts),
            teacher_top_k=posts_info["top_k"],
            kd_p=p,
            kd_temperature=temp,
        )
        log.info(
            "KD from the cached posteriors of %s (%s, top %d, %.4f of the mass): p=%g T=%g",
            posts_info["teacher"], job.teacher_posts, posts_info["top_k"],
            posts_info["kept_mass"], p, temp,
        )  # fmt: skip
    else:
        loss_fn = ce_loss  # type: ignore[assignment]

    train_ds = None
    if data_opts.data_on_device:
        train_ds = _device_dataset(source, train_utts, training_device(cfg.device), data_opts, cfg)
    if train_ds is None:
        train_ds = FrameShuffleDataset(
            source, train_utts, batch_size=batch_size, buffer_frames=buffer_frames, seed=cfg.seed
        )
    cv_ds = SequentialFrameDataset(source, cv_utts, batch_size=max(batch_size, 1024), shard=True)

    def train_batches(epoch: int) -> Any:
        train_ds.set_epoch(epoch)
        return train_ds

    trainer = Trainer(
        model, None, loss_fn, train_batches, lambda: cv_ds, cfg, out, meta=meta, teacher=teacher
    )
    return trainer.fit()


def _device_dataset(source: Any, utts: list[str], device: Any, opts: DataOptions, cfg: Any) -> Any:
    """The training set loaded onto ``device`` (:mod:`pykd.data.device`), or None with a
    warning when it does not fit there (the caller then streams it from the CPU)."""
    from pykd.data.device import DataDoesNotFit, DeviceFrameDataset  # noqa: PLC0415

    dataset = DeviceFrameDataset(
        source, utts, device, batch_size=opts.batch_size, buffer_frames=opts.buffer_frames,
        seed=cfg.seed, dtype=opts.device_dtype,
    )  # fmt: skip
    try:
        return dataset.load()
    except DataDoesNotFit as err:
        log.warning("--data-on-device: %s; streaming the data from the CPU instead", err)
        return None


def _run(args: argparse.Namespace) -> int:
    from pykd.train import distributed as ddp  # noqa: PLC0415

    device = ddp.setup_torch(0, args.device, ddp_ok=True)
    job = NnetJob.from_args(args)
    with ddp.process_group(device) as info:
        if not info.is_main:  # one copy of the log: rank 0's (warnings and errors from all)
            logging.getLogger().setLevel(logging.WARNING)
        summary = train_nnet(job)
    log.info("train-nnet: %s, best CV loss %s", summary["status"], summary["cv_loss"])
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pykd train-nnet``."""
    p = subparsers.add_parser(
        "train-nnet",
        help="train an acoustic network (CE, or KD with --teacher) from a data dir + alignments",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--model-config", required=True, help="YAML with a model: section")
    p.add_argument("--train-config", help="YAML with a train: section (TrainConfig fields)")
    p.add_argument("--lr", type=float, help="initial learning rate (overrides the YAML)")
    p.add_argument("--max-epochs", type=int, help="newbob max_epochs (overrides the YAML)")
    p.add_argument(
        "--min-epochs", type=int, help="newbob min_epochs: no stop before (overrides the YAML)"
    )
    p.add_argument(
        "--keep-lr-epochs", type=int,
        help="newbob keep_lr_epochs: epochs at the initial lr before halving may start "
        "(overrides the YAML)",
    )  # fmt: skip
    data = DataOptions()
    p.add_argument(
        "--batch-size", type=int, help=f"frames per mini-batch (default {data.batch_size})"
    )
    p.add_argument(
        "--buffer-frames", type=int, help=f"shuffle buffer in frames (default {data.buffer_frames})"
    )
    p.add_argument(
        "--cv-fraction", type=float, help=f"held-out share, by speaker (default {data.cv_fraction})"
    )
    p.add_argument(
        "--data-on-device", action="store_const", const=True,
        help="hold the training set on the training device (GPU): CMVN once, splice and shuffle "
        "there by index; falls back to streaming when it does not fit",
    )  # fmt: skip
    p.add_argument(
        "--device-dtype", choices=("float16", "bfloat16", "float32"),
        help=f"type of the features held on the device (default {data.device_dtype})",
    )  # fmt: skip
    p.add_argument("--seed", type=int, help="random seed (overrides the YAML)")
    p.add_argument(
        "--precision", choices=PRECISIONS,
        help="matrix products in training: bfloat16 (autocast), float32, or auto: bfloat16 where "
        "the device multiplies it natively (AMX / AVX-512 BF16 CPUs, CUDA) (overrides the YAML)",
    )  # fmt: skip
    p.add_argument("--teacher", help="teacher final.pt: train with KD (teacher run on each batch)")
    p.add_argument(
        "--teacher-posts",
        help="dir of `pykd teacher-posts` (post.scp, info.json): KD from the teacher's cached "
        "top-k posteriors",
    )
    kd = KdOptions()
    p.add_argument("--kd-p", type=float, default=kd.p, help=f"KD weight p (default {kd.p})")
    p.add_argument(
        "--kd-temperature", type=float, default=kd.temperature,
        help=f"KD temperature T (default {kd.temperature})",
    )  # fmt: skip
    p.add_argument("--resume", action="store_true", help="resume from <out-dir>/checkpoints")
    add_torch_args(p, num_threads=0)
    p.add_argument("data", help="fbank data dir (feats.scp, cmvn.scp, utt2spk)")
    p.add_argument("ali_dir", help="dir with ali.*.gz")
    p.add_argument("gmm_dir", help="dir with final.mdl (the pdfs the network outputs)")
    p.add_argument("out", help="output dir (final.pt, prior.counts, summary.json)")
    p.set_defaults(func=_run)
