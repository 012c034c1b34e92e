"""Sequence-training sub-commands (used by ``steps_kd/{train_seq,make_denlats,align_nnet}.sh``).

* ``pykd train-seq [opts] <data> <lang> <nnet-dir> <ali-dir> <denlat-dir> <out-dir>``
* ``pykd align-nnet [opts] <data> <lang> <gmm-dir> <nnet-dir> <ali-out.gz>``
* ``pykd make-unigram-arpa [--words words.txt --oov <unk>] <text> <out.arpa[.gz]>``
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from pykd.cli_args import add_torch_args, config_from_args, str_to_bool
from pykd.seq.config import CRITERIA, SeqTrainConfig
from pykd.train.options import OPTIMIZERS, PRECISIONS

log = logging.getLogger(__name__)


def _silence_phones(lang: Path) -> list[int]:
    csl = lang / "phones" / "silence.csl"
    if not csl.is_file():
        raise FileNotFoundError(f"missing {csl} (silence phones)")
    return [int(x) for x in csl.read_text().strip().split(":") if x]


def _first_file(*paths: Path) -> Path:
    for p in paths:
        if p.is_file():
            return p
    raise FileNotFoundError("none of " + ", ".join(map(str, paths)) + " exists")


def _check_teacher(meta: dict[str, Any], t_meta: dict[str, Any], path: str) -> None:
    for key in ("num_pdfs", "input_dim"):
        if int(meta[key]) != int(t_meta[key]):
            raise ValueError(f"teacher {path}: {key} {t_meta[key]} != the student's {meta[key]}")
    if meta["input"] != t_meta["input"]:
        raise ValueError(
            f"teacher {path}: input {t_meta['input']} != the student's {meta['input']}"
        )


def train_seq(args: argparse.Namespace) -> dict[str, Any]:
    """Load everything named by ``args`` and run :class:`pykd.seq.train.SeqTrainer`."""

    from pykd.data.frames import UtteranceSource  # noqa: PLC0415
    from pykd.data.priors import read_log_priors  # noqa: PLC0415
    from pykd.frontend.model import load_acoustic_model  # noqa: PLC0415
    from pykd.frontend.spec import InputSpec  # noqa: PLC0415
    from pykd.kaldi.model_io import (  # noqa: PLC0415
        alignment_files,
        read_alignments,
        read_transition_model,
        tid_to_pdf,
        tid_to_phone,
    )
    from pykd.models import count_parameters  # noqa: PLC0415
    from pykd.nnet.validate import check_network_pdfs  # noqa: PLC0415
    from pykd.seq.denlats import DenLattices  # noqa: PLC0415
    from pykd.seq.train import SeqTrainer  # noqa: PLC0415
    from pykd.train.checkpoint import latest_checkpoint, load_checkpoint  # noqa: PLC0415
    from pykd.train.distributed import setup_torch  # noqa: PLC0415

    data, lang, nnet_dir, ali_dir, den_dir, out = (
        Path(p) for p in (args.data, args.lang, args.nnet_dir, args.ali_dir, args.denlats, args.out)
    )
    device = setup_torch(args.num_threads, args.device)
    kd_q = args.kd_q if args.teacher or args.teacher_posts else 0.0
    cfg = config_from_args(SeqTrainConfig, args, kd_q=kd_q, device=device)
    cfg.validate()
    if args.teacher and args.teacher_posts:
        raise ValueError("give --teacher or --teacher-posts, not both")
    if args.kd_q > 0 and not (args.teacher or args.teacher_posts):
        raise ValueError("--kd-q needs --teacher or --teacher-posts")
    model_path = Path(args.model) if args.model else nnet_dir / "final.pt"
    mdl = Path(args.mdl) if args.mdl else _first_file(ali_dir / "final.mdl", nnet_dir / "final.mdl")
    counts_path = Path(args.prior_counts) if args.prior_counts else nnet_dir / "prior.counts"
    feats_scp = data / "feats.scp"
    for f in (feats_scp, model_path, mdl):
        if not f.is_file():
            raise FileNotFoundError(f"missing {f}")
    ali_files = alignment_files(ali_dir)

    model, meta = load_acoustic_model(model_path)
    tm = read_transition_model(mdl)
    check_network_pdfs(meta, model_path, tm.num_pdfs, mdl)
    log_prior = None
    if cfg.prior_scale != 0:
        if not counts_path.is_file():
            raise FileNotFoundError(f"missing {counts_path} (or use --prior-scale 0)")
        log_prior = read_log_priors(counts_path, int(meta["num_pdfs"]))
    alignments: dict[str, Any] = {}
    for path in ali_files:
        alignments.update(read_alignments(path))
    source = UtteranceSource.of_data_dir(data, None, InputSpec.from_meta(meta))
    if source.input_dim != int(meta["input_dim"]):
        raise ValueError(f"{data}: input dim {source.input_dim}, network {meta['input_dim']}")
    denlats = DenLattices(den_dir)
    utts = list(source.utterances)
    n_ali = sum(u in alignments for u in utts)
    n_lat = sum(u in denlats for u in utts)
    log.info(
        "%d utterances: %d with alignments (%s), %d with lattices (%s, %s layout)",
        len(utts), n_ali, ali_dir, n_lat, den_dir, denlats.layout,
    )  # fmt: skip
    if not n_ali or not n_lat:
        raise ValueError(f"{data}: no utterance has both an alignment and a lattice")

    teacher = None
    seq_meta: dict[str, Any] = {
        "criterion": cfg.criterion,
        "init_model": os.fspath(model_path),
        "denlats": os.fspath(den_dir),
        "ali_dir": os.fspath(ali_dir),
        "acwt": cfg.acwt,
        "lr": cfg.lr,
        "optimizer": cfg.optimizer,
        "epochs": cfg.epochs,
        "params": cfg.params,
        "boost": cfg.boost,
        "kd_q": cfg.kd_q,
    }
    if args.teacher:
        teacher, t_meta = load_acoustic_model(args.teacher)
        _check_teacher(meta, t_meta, args.teacher)
        seq_meta.update(teacher=os.fspath(args.teacher), kd_temperature=cfg.kd_temperature)
        log.info("teacher %s (%d params), q=%g", args.teacher, count_parameters(teacher), cfg.kd_q)
    teacher_posts = None
    if args.teacher_posts:
        from pykd.kaldi.posterior_io import PosteriorTable  # noqa: PLC0415
        from pykd.nnet.teacher_posts import read_info  # noqa: PLC0415

        info = read_info(args.teacher_posts)
        if info["num_pdfs"] != int(meta["num_pdfs"]):
            raise ValueError(
                f"{args.teacher_posts}: the teacher has {info['num_pdfs']} outputs, "
                f"{model_path} {meta['num_pdfs']}"
            )
        teacher_posts = PosteriorTable(Path(args.teacher_posts) / "post.scp")
        seq_meta.update(
            teacher=info["teacher"],
            teacher_posts=os.fspath(args.teacher_posts),
            kd_temperature=cfg.kd_temperature,
        )
        log.info(
            "teacher %s: cached top-%d posteriors %s, q=%g",
            info["teacher"], info["top_k"], args.teacher_posts, cfg.kd_q,
        )  # fmt: skip
    meta = dict(meta)
    prev = meta.get("loss", "ce")
    with_kd = (teacher is not None or teacher_posts is not None) and cfg.kd_q > 0
    meta["loss"] = cfg.criterion + ("+kd" if with_kd else "")
    meta["init_loss"] = prev
    meta["seq"] = seq_meta
    if args.resume:
        last = latest_checkpoint(out / "checkpoints")
        if last is not None:
            old = load_checkpoint(last, map_location="cpu").get("meta") or {}
            have = (old.get("num_pdfs"), old.get("model_config"), old.get("loss"))
            want = (meta.get("num_pdfs"), meta.get("model_config"), meta.get("loss"))
            if have != want:
                raise ValueError(f"--resume: {last} holds {have}, this run wants {want}")

    out.mkdir(parents=True, exist_ok=True)
    if counts_path.is_file() and counts_path.resolve() != (out / "prior.counts").resolve():
        shutil.copyfile(counts_path, out / "prior.counts")
    if mdl.resolve() != (out / "final.mdl").resolve():
        shutil.copyfile(mdl, out / "final.mdl")
    trainer = SeqTrainer(
        model,
        cfg,
        source,
        utts,
        denlats,
        alignments,
        tid_to_pdf(tm),
        tid_to_phone(tm),
        _silence_phones(lang),
        log_prior,
        out,
        meta=meta,
        teacher=teacher,
        teacher_posts=teacher_posts,
    )
    log.info(
        "%s training of %s (%s params: %d of %d), %s lr %g, acwt %g, %d epochs%s",
        cfg.criterion, model_path, cfg.params, sum(p.numel() for p in trainer.trainable),
        count_parameters(model), cfg.optimizer, cfg.lr, cfg.acwt, cfg.epochs,
        f", KD q={cfg.kd_q} from {args.teacher or args.teacher_posts}" if with_kd else "",
    )  # fmt: skip
    try:
        return trainer.fit(resume=args.resume)
    finally:
        denlats.close()


def _run_train(args: argparse.Namespace) -> int:
    summary = train_seq(args)
    log.info("train-seq: %s after %d epochs", summary["status"], summary["epochs"])
    return 0


def _run_align(args: argparse.Namespace) -> int:
    from pykd.seq.align import NnetAlignOptions, align_nnet  # noqa: PLC0415
    from pykd.train.distributed import setup_torch  # noqa: PLC0415

    gmm, nnet = Path(args.gmm_dir), Path(args.nnet_dir)
    model = Path(args.model) if args.model else nnet / "final.pt"
    counts = Path(args.prior_counts) if args.prior_counts else nnet / "prior.counts"
    if args.prior_scale != 0 and not counts.is_file():
        raise FileNotFoundError(f"missing {counts} (or use --prior-scale 0)")
    device = setup_torch(args.num_threads, args.device)
    opts = NnetAlignOptions(
        beam=args.beam,
        retry_beam=args.retry_beam,
        acoustic_scale=args.acoustic_scale,
        transition_scale=args.transition_scale,
        self_loop_scale=args.self_loop_scale,
        prior_scale=args.prior_scale,
        careful=args.careful,
    )
    align_nnet(
        args.data,
        args.lang,
        gmm / "final.mdl",
        gmm / "tree",
        model,
        counts if args.prior_scale != 0 else None,
        args.out_ali,
        opts,
        device=device,
    )
    return 0


def _run_unigram(args: argparse.Namespace) -> int:
    from pykd.lm.gfst import read_symbols  # noqa: PLC0415
    from pykd.seq.denlats import unigram_arpa  # noqa: PLC0415

    words = set(read_symbols(args.words)) if args.words else None
    unigram_arpa(args.text, args.out_arpa, words, args.oov, kaldi_text=not args.plain_text)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train-seq``, ``align-nnet`` and ``make-unigram-arpa``."""
    p = subparsers.add_parser(
        "train-seq",
        help="sequence training (sMBR/MPFE/MMI, optional KD) of an acoustic network",
        description="Utterance-level sequence training on denominator lattices (docs/sequence.md).",
    )
    d = SeqTrainConfig()  # every default once, in the config (shown by --help)
    p.add_argument(
        "--criterion", choices=CRITERIA, default=d.criterion, help="(default %(default)s)"
    )
    p.add_argument("--acwt", type=float, default=d.acwt, help="acoustic scale kappa (%(default)s)")
    p.add_argument(
        "--lm-scale", type=float, default=d.lm_scale, help="on graph costs (%(default)s)"
    )
    p.add_argument(
        "--old-acoustic-scale", type=float, default=d.old_acoustic_scale,
        help="keep this share of the lattice's acoustic costs (nnet1: %(default)s, discard)",
    )  # fmt: skip
    p.add_argument("--boost", type=float, default=d.boost, help="boosted MMI b (%(default)s)")
    p.add_argument("--one-silence-class", type=str_to_bool, default=d.one_silence_class)
    p.add_argument(
        "--drop-frames", type=str_to_bool, default=d.drop_frames,
        help="zero the gradient of frames whose numerator pdf is not in the lattice (%(default)s)",
    )  # fmt: skip
    p.add_argument("--teacher", help="teacher final.pt: add the KD regulariser")
    p.add_argument(
        "--teacher-posts",
        help="the KD regulariser from the teacher's cached top-k posteriors over <data> "
        "(steps_kd/make_teacher_posts.sh dir) instead of its forward pass",
    )
    p.add_argument("--kd-q", type=float, default=d.kd_q, help="L=(1-q)L_seq+q CE (%(default)s)")
    p.add_argument(
        "--kd-temperature", type=float, default=d.kd_temperature,
        help="temperature of the teacher's posteriors (%(default)s)",
    )  # fmt: skip
    p.add_argument("--params", choices=("all", "gates"), default=d.params, help="(%(default)s)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    p.add_argument("--lr", type=float, default=d.lr, help="(default %(default)s)")
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--epochs", type=int, default=d.epochs, help="(default %(default)s)")
    p.add_argument(
        "--utts-per-step", type=int, default=d.utts_per_step,
        help="utterances per update, their lattices in one batched forward-backward (1: "
        "nnet1's per-utterance SGD; default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--precision", choices=PRECISIONS, default=d.precision,
        help="the network's matrix products: bfloat16 (autocast), float32, or auto: bfloat16 "
        "where the device multiplies it natively (AMX CPUs, CUDA) (default %(default)s)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--shuffle", type=str_to_bool, default=d.shuffle, help="utterances per epoch")
    p.add_argument("--prior-scale", type=float, default=d.prior_scale)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="utterances")
    p.add_argument("--log-every", type=int, default=d.log_every, help="utterances")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints")
    add_torch_args(p, num_threads=0)
    p.add_argument("--model", help="initial network (default <nnet-dir>/final.pt)")
    p.add_argument("--prior-counts", help="pdf counts (default <nnet-dir>/prior.counts)")
    p.add_argument("--mdl", help="transition model (default <ali-dir>/final.mdl)")
    p.add_argument("--stop-after-utts", type=int, default=d.stop_after_utts, help=argparse.SUPPRESS)
    p.add_argument("data", help="fbank data dir (feats.scp, cmvn.scp, utt2spk)")
    p.add_argument("lang", help="lang dir (phones/silence.csl)")
    p.add_argument("nnet_dir", help="initial network dir (final.pt, prior.counts)")
    p.add_argument("ali_dir", help="numerator alignments ali.*.gz (+ final.mdl)")
    p.add_argument("denlats", help="denominator lattices: dir with lat.scp or lat.N.gz")
    p.add_argument("out", help="output dir")
    p.set_defaults(func=_run_train)

    p = subparsers.add_parser(
        "align-nnet", help="forced alignment with an acoustic network (nnet1 align.sh)"
    )
    p.add_argument("--beam", type=float, default=10.0)
    p.add_argument("--retry-beam", type=float, default=40.0)
    p.add_argument("--acoustic-scale", type=float, default=0.1)
    p.add_argument("--transition-scale", type=float, default=1.0)
    p.add_argument("--self-loop-scale", type=float, default=0.1)
    p.add_argument("--prior-scale", type=float, default=1.0)
    p.add_argument("--careful", type=str_to_bool, default=False)
    p.add_argument("--model", help="network (default <nnet-dir>/final.pt)")
    p.add_argument("--prior-counts", help="pdf counts (default <nnet-dir>/prior.counts)")
    add_torch_args(p, num_threads=0)
    p.add_argument("data", help="fbank data dir (one job's piece) with text")
    p.add_argument("lang", help="lang dir (L.fst, words.txt, phones/disambig.int)")
    p.add_argument("gmm_dir", help="dir with final.mdl and tree (the network's pdfs)")
    p.add_argument("nnet_dir", help="dir with final.pt and prior.counts")
    p.add_argument("out_ali", help="output ali.N.gz")
    p.set_defaults(func=_run_align)

    p = subparsers.add_parser(
        "make-unigram-arpa", help="maximum-likelihood unigram ARPA of a text (weak LM)"
    )
    p.add_argument("--words", help="words.txt: other words are counted as --oov")
    p.add_argument("--oov", default="<unk>")
    p.add_argument("--plain-text", action="store_true", help="no utterance ids in the text")
    p.add_argument("text")
    p.add_argument("out_arpa")
    p.set_defaults(func=_run_unigram)
