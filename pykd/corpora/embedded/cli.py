"""``pykd make-embedded-corpus``: generate the embedded meeting corpus and its data dirs."""

from __future__ import annotations

import argparse
import logging

from .build import SIZES, make_corpus

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "make-embedded-corpus",
        help="synthesise the embedded meeting corpus (flite + sox) and write Kaldi data dirs",
        description=(
            "Generate a seeded meeting-style English corpus offline with flite + sox + noise: "
            "<corpus-dir>/wav/<split>/*.wav and <data-dir>/{train,dev,eval} (+ untrans, without "
            "text, with --untrans-minutes), "
            "<data-dir>/local/{lm/train_text.txt,corpus_words.txt,corpus_stats.txt}. "
            "Re-running reuses finished wavs whose settings are unchanged."
        ),
    )
    p.add_argument("--size", choices=sorted(SIZES), default="default")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nj", type=int, default=2, help="parallel synthesis workers")
    p.add_argument("--corpus-dir", required=True, help="where the wavs go")
    p.add_argument("--data-dir", default="data", help="where the Kaldi data dirs go")
    for split in ("train", "dev", "eval", "untrans"):
        p.add_argument(f"--{split}-minutes", type=float, default=None, help="override the size")
        p.add_argument(f"--{split}-speakers", type=int, default=None, help="override the size")
    # (untrans: untranscribed speech of new speakers in <data-dir>/untrans, no text; default 0)
    p.add_argument("--min-words", type=int, default=None)
    p.add_argument("--max-words", type=int, default=None)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.nj < 1:
        raise ValueError(f"--nj must be >= 1, got {args.nj}")
    stats = make_corpus(
        args.corpus_dir,
        args.data_dir,
        size=args.size,
        seed=args.seed,
        nj=args.nj,
        train_minutes=args.train_minutes,
        dev_minutes=args.dev_minutes,
        eval_minutes=args.eval_minutes,
        train_speakers=args.train_speakers,
        dev_speakers=args.dev_speakers,
        eval_speakers=args.eval_speakers,
        untrans_minutes=args.untrans_minutes,
        untrans_speakers=args.untrans_speakers,
        min_words=args.min_words,
        max_words=args.max_words,
    )
    print(stats, end="")
    return 0
