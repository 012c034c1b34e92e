"""``pykd`` sub-commands for frame-level data: pdf counts (priors) and the train/CV split."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pykd.cli_args import str_to_bool
from pykd.data.priors import pdf_counts, write_counts
from pykd.data.targets import load_pdf_alignments, num_pdfs
from pykd.io.atomic import atomic_write_text
from pykd.io.datadir import read_table

log = logging.getLogger(__name__)


def _ali_to_pdf_counts(args: argparse.Namespace) -> int:
    alis = load_pdf_alignments(args.alignments, args.model)
    dim = args.counts_dim if args.counts_dim is not None else num_pdfs(args.model)
    counts = pdf_counts(alis.values(), dim)
    zero = [i for i, c in enumerate(counts) if c <= 0.5]
    if zero:
        log.warning("zero count for %d pdfs (e.g. %s)", len(zero), zero[:10])
    write_counts(args.counts, counts, binary=args.binary)
    log.info(
        "summed %d alignments, %d frames, into %d pdf counts -> %s",
        len(alis),
        int(round(counts.sum() - 0.5 * dim)),
        dim,
        args.counts,
    )
    return 0


def _split_cv(args: argparse.Namespace) -> int:
    from pykd.data.frames import split_cv  # imports torch: only when this command runs

    utt2spk = read_table(Path(args.data) / "utt2spk")
    train, cv = split_cv(utt2spk, args.fraction, by=args.by, seed=args.seed)
    atomic_write_text(args.train_list, "".join(u + "\n" for u in train))
    atomic_write_text(args.cv_list, "".join(u + "\n" for u in cv))
    log.info("%d training and %d CV utterances (held out by %s)", len(train), len(cv), args.by)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ali-to-pdf-counts`` and ``split-cv``."""
    p = subparsers.add_parser(
        "ali-to-pdf-counts",
        help="pdf counts of alignments (Kaldi: ali-to-pdf | analyze-counts), for priors",
    )
    p.add_argument("--binary", type=str_to_bool, default=False, help="binary Vector<double>")
    p.add_argument("--counts-dim", type=int, default=None, help="default: pdfs of the model")
    p.add_argument("model", help="final.mdl (transition-id -> pdf map)")
    p.add_argument("alignments", nargs="+", help="ali.N.gz files or rspecifiers")
    p.add_argument("counts", help="output counts file (analyze-counts format, +0.5 per pdf)")
    p.set_defaults(func=_ali_to_pdf_counts)

    p = subparsers.add_parser("split-cv", help="hold out ~10%% of a data dir's utterances for CV")
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--by", choices=("speaker", "utterance"), default="speaker")
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("data", help="data dir (its utt2spk)")
    p.add_argument("train_list", help="output: training utterance list")
    p.add_argument("cv_list", help="output: CV utterance list")
    p.set_defaults(func=_split_cv)
