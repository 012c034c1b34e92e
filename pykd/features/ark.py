"""Kaldi archive (ark) + script (scp) files: atomic writing, reading by rspecifier.

The ark is written through kaldiio (binary ``\\0B`` matrices, optionally Kaldi-compressed);
offsets for the scp are taken here so that the scp names the FINAL ark path while the data goes
to a temp file that is renamed only when every matrix was written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np

from pykd.io.atomic import atomic_write, atomic_write_text
from pykd.io.compressed import kaldiio

log = logging.getLogger(__name__)

# kaldiio's compression methods are Kaldi's CompressionMethod enum; 1 = kAutomaticMethod, the
# default of copy-feats --compress=true.
DEFAULT_COMPRESSION_METHOD = 1


class ArkScpWriter:
    """Write ``key matrix`` pairs to ``ark_path`` + ``scp_path`` atomically.

    Use as a context manager; on a clean exit the temp ark is renamed to ``ark_path`` and the
    scp (pointing at ``ark_path``) is written; on an exception nothing final is created.
    """

    def __init__(
        self,
        ark_path: str | Path,
        scp_path: str | Path | None = None,
        compression_method: int | None = None,
    ) -> None:
        self.ark_path = Path(ark_path)
        self.scp_path = Path(scp_path) if scp_path is not None else None
        self.compression_method = compression_method
        self.scp_lines: list[str] = []
        self._ctx = atomic_write(self.ark_path, "wb")
        self._fd = None

    def __enter__(self) -> ArkScpWriter:
        self._fd = self._ctx.__enter__()
        return self

    def write(self, key: str, matrix: np.ndarray) -> None:
        """Append one matrix (float32 -> "FM", float64 -> "DM")."""
        if not key or any(c.isspace() for c in key):
            raise ValueError(f"invalid archive key {key!r} (empty or contains whitespace)")
        assert self._fd is not None, "use ArkScpWriter as a context manager"
        start = self._fd.tell()
        kaldiio.save_ark(self._fd, {key: matrix}, compression_method=self.compression_method)
        offset = start + len(key.encode("utf-8")) + 1  # the scp offset points at "\0B"
        self.scp_lines.append(f"{key} {self.ark_path}:{offset}\n")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        result = self._ctx.__exit__(exc_type, exc, tb)
        if exc_type is None and self.scp_path is not None:
            atomic_write_text(self.scp_path, "".join(self.scp_lines))
        return result


def split_rspecifier(spec: str) -> tuple[str, str]:
    """``"scp:x"``/``"ark:x"`` (Kaldi options like ``scp,p:`` ignored) or a path -> (kind, path).

    A bare path is an scp when it ends in ``.scp``, an ark otherwise.
    """
    head, sep, rest = spec.partition(":")
    kind = head.split(",")[0]
    if sep and kind in ("scp", "ark"):
        return kind, rest
    return ("scp" if spec.endswith(".scp") else "ark"), spec


def read_matrices(spec: str) -> Iterator[tuple[str, np.ndarray]]:
    """Iterate ``(key, matrix)`` over an ark or scp (binary, text or compressed, via kaldiio)."""
    kind, path = split_rspecifier(spec)
    if path != "-" and not path.endswith("|") and not os.path.exists(path):
        raise FileNotFoundError(f"features not found: {path}")
    if kind == "scp":
        yield from kaldiio.load_scp_sequential(path)
    else:
        yield from kaldiio.load_ark(path)


def write_text_table(path: str | Path, table: dict[str, object] | list[tuple[str, object]]):
    """Write ``key value`` lines atomically (``-``: stdout), in the given order."""
    items = table.items() if isinstance(table, dict) else table
    text = "".join(f"{k} {v}\n" for k, v in items)
    if str(path) == "-":
        print(text, end="")
    else:
        atomic_write_text(path, text)
