"""``pykd ami-data-prep``: AMI (IHM / SDM) -> Kaldi data directories."""

from __future__ import annotations

import argparse
import logging

from pykd.corpora.ami.prepare import PrepConfig, prepare_ami

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ami-data-prep",
        help="AMI corpus -> data/<mic>/{train,dev,eval} (official full-corpus ASR split)",
        description="Write Kaldi data dirs data/<mic>/{train,dev,eval}/{wav.scp,segments,text,"
        "utt2spk,spk2utt,reco2file_and_channel,stats.txt} from a local AMI copy.",
    )
    p.add_argument(
        "--ami-dir",
        required=True,
        help="folder with amicorpus/<MEET>/audio/*.wav (and usually the annotations)",
    )
    p.add_argument(
        "--annotations",
        default=None,
        help="ami_public_manual_1.6.x folder or zip (default: found inside --ami-dir)",
    )
    p.add_argument("--mic", default="ihm", help="ihm or sdm1 (default: ihm)")
    p.add_argument("--data-dir", default="data", help="output root (default: data)")
    p.add_argument(
        "--max-words", type=int, default=30, help="split segments longer than this (default 30)"
    )
    p.add_argument(
        "--keep-truncated",
        action="store_true",
        help='keep truncated words (trunc="true") in the text (default: dropped)',
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.max_words < 1:
        raise ValueError(f"--max-words must be >= 1, got {args.max_words}")
    config = PrepConfig(mic=args.mic, max_words=args.max_words, keep_truncated=args.keep_truncated)
    report = prepare_ami(args.ami_dir, args.data_dir, config, annotations=args.annotations)
    print(f"{'split':<6} {'meetings':>8} {'utts':>8} {'hours':>8} {'speakers':>8}")
    for split, s in report.stats.items():
        print(
            f"{split:<6} {s['meetings']:>8} {s['utterances']:>8} {s['hours']:>8.2f} "
            f"{s['speakers']:>8}"
        )
    return 0 if report.stats else 1
