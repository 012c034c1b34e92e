"""Kaldi symbol tables (``phones.txt``, ``words.txt``) and ``sym2int.pl``-style mapping."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


class SymbolTable:
    """An ordered symbol -> integer map, written as ``<symbol> <id>`` lines."""

    def __init__(self, pairs: Iterable[tuple[str, int]] = ()) -> None:
        self.sym2id: dict[str, int] = {}
        self.id2sym: dict[int, str] = {}
        for sym, idx in pairs:
            self.add(sym, idx)

    def add(self, sym: str, idx: int) -> None:
        if sym in self.sym2id:
            raise ValueError(f"duplicate symbol {sym!r} in symbol table")
        self.sym2id[sym] = idx
        self.id2sym[idx] = sym

    @classmethod
    def from_symbols(cls, symbols: Sequence[str]) -> SymbolTable:
        """Number ``symbols`` 0, 1, 2, ... in order."""
        return cls((s, i) for i, s in enumerate(symbols))

    @classmethod
    def read(cls, path: str | Path) -> SymbolTable:
        table = cls()
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                    raise ValueError(f"{path}:{n}: expected '<symbol> <integer>', got {line!r}")
                try:
                    table.add(fields[0], int(fields[1]))
                except ValueError as err:
                    raise ValueError(f"{path}:{n}: {err}") from None
        return table

    def to_text(self) -> str:
        return "".join(f"{s} {i}\n" for s, i in self.sym2id.items())

    def __contains__(self, sym: str) -> bool:
        return sym in self.sym2id

    def __getitem__(self, sym: str) -> int:
        return self.sym2id[sym]

    def __len__(self) -> int:
        return len(self.sym2id)

    def map(self, syms: Iterable[str], what: str = "") -> list[int]:
        """Map symbols to ids; an unknown symbol is an error naming ``what``."""
        out = []
        for s in syms:
            if s not in self.sym2id:
                raise ValueError(
                    f"symbol {s!r} not in symbol table{' (' + what + ')' if what else ''}"
                )
            out.append(self.sym2id[s])
        return out


def sym2int_lines(
    lines: Iterable[str], table: SymbolTable, fields: slice = slice(None), what: str = ""
) -> str:
    """Like ``utils/sym2int.pl -f``: map the given (0-based slice of) fields of each line."""
    out = []
    for line in lines:
        parts = line.split()
        idx = range(len(parts))[fields]
        for i in idx:
            parts[i] = str(table.map([parts[i]], what)[0])
        out.append(" ".join(parts) + "\n")
    return "".join(out)
