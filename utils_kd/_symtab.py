#!/usr/bin/env python3
"""Shared code of pykd's sym2int.pl and int2sym.pl (Python 3, stdlib-only, written for pykd)."""

from __future__ import annotations

import sys


class UsageError(Exception):
    pass


def parse_fields(spec: str) -> list[tuple[int, int | None]]:
    """'-f' spec: comma-separated 'a', 'a-', '-b', 'a-b' (1-based, inclusive) -> (start, end)."""
    ranges: list[tuple[int, int | None]] = []
    for part in spec.split(","):
        try:
            if "-" not in part:
                ranges.append((int(part), int(part)))
            else:
                a, b = part.split("-", 1)
                ranges.append((int(a) if a else 1, int(b) if b else None))
        except ValueError:
            raise UsageError(f"bad field specification '-f {spec}'") from None
    return ranges


def in_fields(pos: int, ranges: list[tuple[int, int | None]] | None) -> bool:
    if ranges is None:
        return True
    return any(a <= pos and (b is None or pos <= b) for a, b in ranges)


def read_symtab(path: str, invert: bool) -> dict[str, str]:
    """symbol -> integer (or integer -> symbol if ``invert``) from a "symbol integer" file."""
    table: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        for lineno, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise UsageError(f"{path}:{lineno}: bad symbol-table line: {line.rstrip()}")
            sym, num = fields
            if invert:
                table[num] = sym
            else:
                table[sym] = num
    return table


def run(prog: str, argv: list[str], invert: bool, doc: str) -> int:
    """Map the selected fields of each input line through the table."""
    args = list(argv)
    fields_spec: str | None = None
    map_oov: str | None = None
    try:
        while args and args[0].startswith("-") and args[0] != "-" and len(args[0]) > 1:
            opt = args.pop(0)
            if opt == "-f" and args:
                fields_spec = args.pop(0)
            elif opt.startswith("-f") and len(opt) > 2:
                fields_spec = opt[2:]
            elif not invert and opt.startswith("--map-oov"):
                if "=" in opt:
                    map_oov = opt.split("=", 1)[1]
                elif args:
                    map_oov = args.pop(0)
                else:
                    raise UsageError("--map-oov needs a value")
            else:
                raise UsageError(f"unknown option {opt}")
        if not args:
            raise UsageError("missing symbol table")
        ranges = parse_fields(fields_spec) if fields_spec is not None else None
        table = read_symtab(args[0], invert)
    except (UsageError, OSError) as err:
        print(f"{prog}: {err}\n{doc}", file=sys.stderr)
        return 1
    oov_value = None
    if map_oov is not None:
        if map_oov in table:
            oov_value = table[map_oov]
        elif map_oov.lstrip("-").isdigit():
            oov_value = map_oov
        else:
            print(f"{prog}: --map-oov symbol '{map_oov}' is not in {args[0]}", file=sys.stderr)
            return 1
    n_oov = 0
    inputs = args[1:] or ["-"]
    for name in inputs:
        if name == "-":
            handle = open(
                sys.stdin.fileno(), encoding="utf-8", errors="surrogateescape", closefd=False
            )
        else:
            handle = open(name, encoding="utf-8", errors="surrogateescape")
        with handle:
            for lineno, line in enumerate(handle, 1):
                out = line.split()
                for i, sym in enumerate(out):
                    if not in_fields(i + 1, ranges):
                        continue
                    value = table.get(sym)
                    if value is None:
                        if oov_value is None:
                            print(
                                f"{prog}: undefined symbol '{sym}' (field {i + 1}) at "
                                f"{name}:{lineno}: {line.rstrip()}",
                                file=sys.stderr,
                            )
                            return 1
                        n_oov += 1
                        if n_oov <= 20:
                            print(f"{prog}: replacing {sym} with {map_oov}", file=sys.stderr)
                        elif n_oov == 21:
                            print(f"{prog}: not warning for OOVs any more times", file=sys.stderr)
                        value = oov_value
                    out[i] = value
                sys.stdout.write(" ".join(out) + "\n")
    if n_oov:
        print(f"** Replaced {n_oov} instances of OOVs with {map_oov}", file=sys.stderr)
    return 0
