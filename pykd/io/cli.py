"""``pykd`` sub-commands for data directories: ``pykd validate-data-dir``."""

from __future__ import annotations

import argparse
import logging
import sys

from pykd.io.datadir import DataDirError
from pykd.io.validate import validate_data_dir

log = logging.getLogger(__name__)


def _validate(args: argparse.Namespace) -> int:
    try:
        validate_data_dir(
            args.data_dir,
            no_feats=args.no_feats,
            no_text=args.no_text,
            no_wav=args.no_wav,
            no_spk_sort=args.no_spk_sort,
        )
    except DataDirError as err:
        print(f"validate_data_dir.sh: {err}", file=sys.stderr)
        return 1
    print(f"validate_data_dir.sh: Successfully validated data-directory {args.data_dir}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate-data-dir",
        help="check a Kaldi data directory (like utils/validate_data_dir.sh)",
        description="Check a Kaldi data directory: sorted unique keys, utt2spk/spk2utt "
        "agreement, text/wav/feats/cmvn coverage. Exit 1 with a message naming the file and "
        "key on the first error.",
    )
    p.add_argument("data_dir", help="the data directory")
    p.add_argument("--no-feats", action="store_true", help="do not require feats.scp")
    p.add_argument("--no-text", action="store_true", help="do not require text")
    p.add_argument("--no-wav", action="store_true", help="do not require wav.scp")
    p.add_argument(
        "--no-spk-sort",
        action="store_true",
        help="do not require utt2spk to sort the same by speaker as by utterance",
    )
    p.add_argument("--non-print", action="store_true", help="accepted for Kaldi compatibility")
    p.set_defaults(func=_validate)
