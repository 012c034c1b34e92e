"""``pykd train-mono``, ``train-deltas`` and ``align`` (the builtin steps/train_mono.sh,
train_deltas.sh, align_si.sh), and the jobs they run through ``$cmd`` (``gmm-align-job``,
``gmm-tree-stats-job``)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from pykd.cli_args import config_from_args, str_to_bool
from pykd.gmm.align import align_job, align_si
from pykd.gmm.em import AlignOptions
from pykd.gmm.mono import REALIGN_ITERS, MonoOptions, train_mono
from pykd.gmm.tri import TriConfig, train_deltas, tree_stats_job
from pykd.io.jobs import DEFAULT_CMD

log = logging.getLogger(__name__)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers, got {text!r}") from None


def cmd_train_mono(args: argparse.Namespace) -> int:
    opts = MonoOptions(
        nj=args.nj,
        cmd=args.cmd,
        num_iters=args.num_iters,
        max_iter_inc=args.max_iter_inc,
        totgauss=args.totgauss,
        boost_silence=args.boost_silence,
        realign_iters=args.realign_iters,
        power=args.power,
        cmvn_opts=args.cmvn_opts,
        careful=args.careful,
    )
    result = train_mono(args.data, args.lang, args.dir, opts)
    last = result.iters[-1]
    print(
        f"train-mono: {args.dir}: {len(result.iters)} iterations, final avg like/frame "
        f"{last.like_per_frame:.4f}, {last.num_gauss} Gaussians, {result.seconds:.1f} s"
    )
    return 0


def align_options(args: argparse.Namespace) -> AlignOptions:
    """The gmm-align-compiled options of :func:`add_align_args`."""
    return AlignOptions(
        beam=args.beam,
        retry_beam=args.retry_beam,
        careful=args.careful,
        boost_silence=args.boost_silence,
    )


def cmd_align(args: argparse.Namespace) -> int:
    opts = align_options(args)
    result = align_si(args.data, args.lang, args.src_dir, args.ali_dir, args.nj, opts, args.cmd)
    st = result.stats
    print(
        f"align: {args.ali_dir}: {st.num_done} aligned, {st.num_failed} failed, "
        f"{st.num_retried} retried; log-likelihood/frame {st.like_per_frame():.4f}"
    )
    return 0


def cmd_align_job(args: argparse.Namespace) -> int:
    start = time.time()
    opts = None if args.equal else align_options(args)
    stats = align_job(
        Path(args.data), Path(args.lang), Path(args.model), Path(args.tree), args.cmvn_opts,
        opts, Path(args.ali_out), Path(args.stats_out),
        Path(args.graphs) if args.graphs else None,
    )  # fmt: skip
    what = "align-equal-compiled" if opts is None else "gmm-align-compiled"
    print(f"{what} ({args.data}): {stats.summary()}\n{what}: {time.time() - start:.1f} s")
    return 0


def cmd_train_deltas(args: argparse.Namespace) -> int:
    cfg = config_from_args(TriConfig, args)
    train_deltas(args.data, args.lang, args.ali_dir, args.exp_dir, cfg)
    return 0


def cmd_tree_stats_job(args: argparse.Namespace) -> int:
    start = time.time()
    ci = [int(x) for x in args.ci_phones.split(":") if x]
    n = tree_stats_job(
        Path(args.data), Path(args.src_model), Path(args.topo), Path(args.ali),
        args.cmvn_opts, args.context_width, args.central_position, ci, Path(args.out),
    )  # fmt: skip
    print(f"acc-tree-stats ({args.data}): {n} utterances, {time.time() - start:.1f} s")
    return 0


def add_align_args(p: argparse.ArgumentParser) -> None:
    """gmm-align-compiled's options (Kaldi's defaults)."""
    defaults = AlignOptions()
    p.add_argument("--beam", type=float, default=defaults.beam)
    p.add_argument("--retry-beam", type=float, default=defaults.retry_beam)
    p.add_argument("--careful", type=str_to_bool, default=defaults.careful)
    p.add_argument("--boost-silence", type=float, default=defaults.boost_silence)


def add_cmd_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cmd", default=DEFAULT_CMD, help="runner of the parallel jobs, e.g. 'queue.pl --mem 2G'"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-mono",
        help="monophone GMM-HMM training (Kaldi's steps/train_mono.sh)",
        description="Flat-start monophone training into <dir>: final.mdl, tree, ali.N.gz, "
        "num_jobs, cmvn_opts, log/. The alignment jobs over <data>/split<nj> run through --cmd.",
    )
    p.add_argument("--nj", type=int, default=4, help="parallel jobs (split by speaker)")
    add_cmd_arg(p)
    p.add_argument("--num-iters", type=int, default=40)
    p.add_argument("--max-iter-inc", type=int, default=30, help="last iteration adding Gaussians")
    p.add_argument("--totgauss", type=int, default=1000, help="target number of Gaussians")
    p.add_argument("--boost-silence", type=float, default=1.0)
    p.add_argument(
        "--realign-iters",
        type=_int_list,
        default=REALIGN_ITERS,
        help='iterations that realign, e.g. "1 2 3 5 10" (default: Kaldi\'s schedule)',
    )
    p.add_argument("--power", type=float, default=0.25, help="mixing-up exponent of occupancy")
    p.add_argument("--cmvn-opts", default="", help='apply-cmvn options, e.g. "--norm-vars=true"')
    p.add_argument("--careful", type=str_to_bool, default=False)
    p.add_argument("data")
    p.add_argument("lang")
    p.add_argument("dir")
    p.set_defaults(func=cmd_train_mono)

    p = subparsers.add_parser(
        "align",
        help="align a data dir with a GMM model (Kaldi's steps/align_si.sh)",
        description="Writes <ali-dir>/ali.N.gz with <src-dir>/final.mdl; alignment failures "
        "are retried with --retry-beam, then skipped, counted and named in the log.",
    )
    p.add_argument("--nj", type=int, default=4)
    add_cmd_arg(p)
    add_align_args(p)
    p.add_argument("data")
    p.add_argument("lang")
    p.add_argument("src_dir")
    p.add_argument("ali_dir")
    p.set_defaults(func=cmd_align)

    p = subparsers.add_parser(
        "gmm-align-job",
        help="one alignment job of a GMM step (run through $cmd by train-mono/train-deltas/align)",
        description="compile-train-graphs + align-equal-compiled (--equal) or gmm-align-compiled "
        "for one piece of split data: writes <ali-out> and the statistics to --stats-out.",
    )
    p.add_argument("--equal", action="store_true", help="equal alignment (flat start)")
    add_align_args(p)
    p.add_argument("--cmvn-opts", default="", help="apply-cmvn options of the model")
    p.add_argument("--stats-out", required=True, help="JSON file for the alignment statistics")
    p.add_argument(
        "--graphs", help="fsts.JOB.gz: training graphs read from it, or compiled and written"
    )
    p.add_argument("model")
    p.add_argument("tree")
    p.add_argument("lang")
    p.add_argument("data", help="one piece of split data, e.g. data/train/split4/2")
    p.add_argument("ali_out")
    p.set_defaults(func=cmd_align_job)

    defaults = TriConfig(0, 0)
    p = subparsers.add_parser(
        "train-deltas",
        help="tied-state triphone GMM training (steps/train_deltas.sh)",
        description="Tree statistics from <ali-dir>'s alignments, questions, decision tree, "
        "one Gaussian per leaf, converted alignments, then EM with realignment and mixing up. "
        "The tree-statistics and alignment jobs (one per <ali-dir>/num_jobs) run through --cmd.",
    )
    add_cmd_arg(p)
    p.add_argument("--num-iters", type=int, default=defaults.num_iters)
    p.add_argument("--realign-iters", type=_int_list, default=defaults.realign_iters)
    p.add_argument("--max-iter-inc", type=int, default=defaults.max_iter_inc)
    p.add_argument("--power", type=float, default=defaults.power)
    add_align_args(p)
    p.add_argument(
        "--split-thresh", type=float, default=defaults.split_thresh, help="build-tree --thresh"
    )
    p.add_argument("--cluster-thresh", type=float, default=defaults.cluster_thresh)
    p.add_argument("--min-leaf-count", type=float, default=defaults.min_leaf_count)
    p.add_argument("--context-width", type=int, default=defaults.context_width)
    p.add_argument("--central-position", type=int, default=defaults.central_position)
    p.add_argument("num_leaves", type=int)
    p.add_argument("tot_gauss", type=int)
    p.add_argument("data")
    p.add_argument("lang")
    p.add_argument("ali_dir")
    p.add_argument("exp_dir")
    p.set_defaults(func=cmd_train_deltas)

    p = subparsers.add_parser(
        "gmm-tree-stats-job",
        help="one tree-statistics job of train-deltas (run through $cmd)",
        description="acc-tree-stats for one piece of split data: writes <out> (npz).",
    )
    p.add_argument("--context-width", type=int, default=defaults.context_width)
    p.add_argument("--central-position", type=int, default=defaults.central_position)
    p.add_argument("--ci-phones", default="", help="context-independent phones, colon-separated")
    p.add_argument("--cmvn-opts", default="", help="apply-cmvn options of the source model")
    p.add_argument("src_model")
    p.add_argument("topo")
    p.add_argument("ali")
    p.add_argument("data", help="one piece of split data, e.g. data/train/split4/2")
    p.add_argument("out")
    p.set_defaults(func=cmd_tree_stats_job)
