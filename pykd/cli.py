"""``pykd`` command line: a thin layer over library functions.

Each sub-command lives in the module of its concern; that module exposes
``register(subparsers)``, which adds one or more sub-parsers whose ``func`` default takes the
parsed ``argparse.Namespace`` and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Modules that contribute sub-commands, by concern.
COMMAND_MODULES = (
    "pykd.io.cli",
    "pykd.features.cli",
    "pykd.lang.cli",
    "pykd.lm.cli",
    "pykd.corpora.embedded.cli",
    "pykd.corpora.ami.cli",
    "pykd.graph.cli",
    "pykd.decode.cli",
    "pykd.gmm.cli",
    "pykd.gmm.decode_cli",
    "pykd.data.cli",
    "pykd.models.cli",
    "pykd.deploy.cli",
    "pykd.nnet.cli",
    "pykd.nnet.train_cli",
    "pykd.adapt.cli",
    "pykd.seq.cli",
    "pykd.report.results",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pykd", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s (%(name)s) %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, EOFError, RuntimeError) as err:
        # One line naming the file / utterance and the problem (OSError: disk full, read-only
        # dir, missing file, with the path in its message), not a traceback; -v shows it.
        logging.getLogger("pykd").error("%s", err, exc_info=bool(args.verbose))
        return 1


if __name__ == "__main__":
    sys.exit(main())
