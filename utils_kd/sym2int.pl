#!/usr/bin/env python3
# pykd's sym2int.pl: Python 3 (stdlib-only) version of Kaldi's script of the same name and
# interface; written from scratch for pykd.
"""Usage: sym2int.pl [--map-oov <sym>] [-f <fields>] <symtab> [<input> ...] > output

Replaces symbols by their integer ids from <symtab> ("symbol integer" lines) in the selected
fields (default: all; e.g. -f 2- for all but the first, -f 1-3, -f 4). An unknown symbol is an
error naming it and the line, unless --map-oov gives a symbol (or integer) to map it to."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from _symtab import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run("sym2int.pl", sys.argv[1:], invert=False, doc=__doc__))
