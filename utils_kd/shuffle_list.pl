#!/usr/bin/env python3
# pykd's shuffle_list.pl: Python 3 (stdlib-only) version of Kaldi's script of the same name and
# interface; written from scratch for pykd (same seed -> same order as pykd's, not Kaldi's, Perl).
"""Usage: shuffle_list.pl [--srand <seed>] [<input> ...] > output

Writes the lines of <input> (or stdin) in a random order, reproducible for a given seed
(default 0)."""

import random
import sys


def main(argv: list[str]) -> int:
    seed = 0
    args = list(argv)
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        name, eq, value = opt.partition("=")
        if name != "--srand":
            print(__doc__, file=sys.stderr)
            return 1
        if not eq:
            if not args:
                print(__doc__, file=sys.stderr)
                return 1
            value = args.pop(0)
        try:
            seed = int(value)
        except ValueError:
            print(f"shuffle_list.pl: --srand expects an integer, got '{value}'", file=sys.stderr)
            return 1
    lines: list[str] = []
    for name in args or ["-"]:
        if name == "-":
            handle = open(
                sys.stdin.fileno(), encoding="utf-8", errors="surrogateescape", closefd=False
            )
        else:
            handle = open(name, encoding="utf-8", errors="surrogateescape")
        with handle:
            lines += [line if line.endswith("\n") else line + "\n" for line in handle]
    random.Random(seed).shuffle(lines)
    sys.stdout.writelines(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
