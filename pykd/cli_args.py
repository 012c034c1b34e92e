"""argparse helpers shared by the ``pykd`` sub-commands (each command module imports from here,
never from the dispatcher ``pykd/cli.py``)."""

from __future__ import annotations

import argparse


def str_to_bool(text: str) -> bool:
    """argparse type for Kaldi-style boolean options (true/false; also 1/0, yes/no)."""
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")
