"""argparse helpers shared by the ``pykd`` sub-commands (each command module imports from here,
never from the dispatcher ``pykd/cli.py``)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def str_to_bool(text: str) -> bool:
    """argparse type for Kaldi-style boolean options (true/false; also 1/0, yes/no)."""
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


DEFAULT_DEVICE = "auto"  # cuda when torch sees a GPU, else cpu


def add_torch_args(parser: argparse.ArgumentParser, num_threads: int) -> None:
    """``--device`` (one default for every network command) and ``--num-threads``."""
    parser.add_argument(
        "--device", default=DEFAULT_DEVICE,
        help="cpu, cuda, cuda:N, or auto: cuda when available (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--num-threads", type=int, default=num_threads,
        help="torch CPU threads, 0: torch's default (default %(default)s)",
    )  # fmt: skip


def config_from_args(cls: type[T], args: argparse.Namespace, **values: Any) -> T:
    """The dataclass ``cls`` from the command-line options of the same names, ``values`` over
    them; fields without an option keep the dataclass default (argparse -> typed config)."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    given = {k: v for k, v in vars(args).items() if k in names}
    return cls(**{**given, **values})
