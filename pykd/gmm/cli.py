"""``pykd train-mono`` and ``pykd align`` (the builtin steps/train_mono.sh, align_si.sh)."""

from __future__ import annotations

import argparse
import logging

from pykd.cli_args import str_to_bool
from pykd.gmm.align import align_si
from pykd.gmm.em import AlignOptions
from pykd.gmm.mono import REALIGN_ITERS, MonoOptions, train_mono

log = logging.getLogger(__name__)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers, got {text!r}") from None


def cmd_train_mono(args: argparse.Namespace) -> int:
    opts = MonoOptions(
        nj=args.nj,
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


def cmd_align(args: argparse.Namespace) -> int:
    opts = AlignOptions(
        beam=args.beam,
        retry_beam=args.retry_beam,
        careful=args.careful,
        boost_silence=args.boost_silence,
    )
    result = align_si(args.data, args.lang, args.src_dir, args.ali_dir, args.nj, opts)
    st = result.stats
    print(
        f"align: {args.ali_dir}: {st.num_done} aligned, {st.num_failed} failed, "
        f"{st.num_retried} retried; log-likelihood/frame {st.like_per_frame():.4f}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-mono",
        help="monophone GMM-HMM training (Kaldi's steps/train_mono.sh)",
        description="Flat-start monophone training into <dir>: final.mdl, tree, ali.N.gz, "
        "num_jobs, cmvn_opts, log/. Jobs run in a process pool over <data>/split<nj>.",
    )
    p.add_argument("--nj", type=int, default=4, help="parallel jobs (split by speaker)")
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
    p.add_argument("--beam", type=float, default=10.0)
    p.add_argument("--retry-beam", type=float, default=40.0)
    p.add_argument("--careful", type=str_to_bool, default=False)
    p.add_argument("--boost-silence", type=float, default=1.0)
    p.add_argument("data")
    p.add_argument("lang")
    p.add_argument("src_dir")
    p.add_argument("ali_dir")
    p.set_defaults(func=cmd_align)

    from pykd.gmm import tri

    tri.register(subparsers)  # pykd train-deltas
