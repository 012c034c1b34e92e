#!/usr/bin/env python3
# pykd's filter_scp.pl: Python 3 (stdlib-only) version of Kaldi's script of the same name and
# interface; written from scratch for pykd.
"""Usage: filter_scp.pl [--exclude] [-f <field>] <id-list> [<input> ...] > output

Prints the lines of <input> (or stdin) whose field <field> (1-based, default 1; negative counts
from the end) is the first field of some line of <id-list>; with --exclude, the other lines.
The order of <input> is kept."""

import sys


def main(argv: list[str]) -> int:
    exclude, field = False, 1
    args = list(argv)
    while args and args[0].startswith("-") and args[0] != "-":
        opt = args.pop(0)
        if opt == "--exclude":
            exclude = True
        elif opt == "-f" and args:
            try:
                field = int(args.pop(0))
            except ValueError:
                field = 0
            if field == 0:
                print("filter_scp.pl: -f expects a non-zero field number", file=sys.stderr)
                return 1
        elif opt.startswith("-f") and opt[2:].lstrip("-").isdigit():
            field = int(opt[2:])
        else:
            print(__doc__, file=sys.stderr)
            return 1
    if not args:
        print(__doc__, file=sys.stderr)
        return 1
    ids = set()
    with open(args[0], encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            fields = line.split()
            if fields:
                ids.add(fields[0])
    idx = field - 1 if field > 0 else field
    out = sys.stdout
    for name in args[1:] or ["-"]:
        if name == "-":
            handle = open(
                sys.stdin.fileno(), encoding="utf-8", errors="surrogateescape", closefd=False
            )
        else:
            handle = open(name, encoding="utf-8", errors="surrogateescape")
        with handle:
            for lineno, line in enumerate(handle, 1):
                fields = line.split()
                try:
                    key = fields[idx]
                except IndexError:
                    print(
                        f"filter_scp.pl: {name}:{lineno}: no field {field} in line: "
                        f"{line.rstrip()}",
                        file=sys.stderr,
                    )
                    return 1
                if (key in ids) != exclude:
                    out.write(line if line.endswith("\n") else line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
