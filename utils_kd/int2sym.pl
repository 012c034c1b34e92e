#!/usr/bin/env python3
# pykd's int2sym.pl: Python 3 (stdlib-only) version of Kaldi's script of the same name and
# interface; written from scratch for pykd.
"""Usage: int2sym.pl [-f <fields>] <symtab> [<input> ...] > output

Replaces integer ids by their symbols from <symtab> ("symbol integer" lines) in the selected
fields (default: all; e.g. -f 2- for all but the first). An unknown integer is an error naming it
and the line."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from _symtab import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run("int2sym.pl", sys.argv[1:], invert=True, doc=__doc__))
