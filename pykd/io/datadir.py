"""Kaldi data directories: ``wav.scp``, ``segments``, ``text``, ``utt2spk``, ``spk2utt``, ...

Files are "key rest-of-line" tables sorted in C-locale (byte) order, as Kaldi requires.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pykd.io.atomic import atomic_write

log = logging.getLogger(__name__)


class DataDirError(ValueError):
    """A data directory is malformed; the message names the file and line or utterance."""


def c_sorted(keys: Iterable[str]) -> list[str]:
    """Sort like ``LC_ALL=C sort`` (byte order of the UTF-8 encoding)."""
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def read_table(path: str | Path, *, allow_empty_value: bool = False) -> dict[str, str]:
    """Read a "key value..." table; duplicate keys and (by default) empty values are errors."""
    path = Path(path)
    table: dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, 1):
            line = raw.rstrip("\n")
            if not line.strip():
                raise DataDirError(f"{path}:{lineno}: empty line")
            parts = line.strip().split(maxsplit=1)
            key = parts[0]
            value = parts[1] if len(parts) > 1 else ""
            if not value and not allow_empty_value:
                raise DataDirError(f"{path}:{lineno}: key '{key}' has no value")
            if key in table:
                raise DataDirError(f"{path}:{lineno}: duplicate key '{key}'")
            table[key] = value
    return table


def write_table(path: str | Path, table: Mapping[str, str]) -> None:
    """Write a table atomically, keys in C-locale order."""
    with atomic_write(path) as handle:
        for key in c_sorted(table):
            value = table[key]
            handle.write(f"{key} {value}\n" if value != "" else f"{key}\n")


def utt2spk_to_spk2utt(utt2spk: Mapping[str, str]) -> dict[str, str]:
    """Invert utt2spk; utterance lists keep the (sorted) utt2spk order."""
    spk2utts: dict[str, list[str]] = {}
    for utt in c_sorted(utt2spk):
        spk2utts.setdefault(utt2spk[utt], []).append(utt)
    return {spk: " ".join(utts) for spk, utts in spk2utts.items()}


@dataclass
class DataDir:
    """In-memory view of a Kaldi data directory (the files it has)."""

    wav_scp: dict[str, str] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)
    utt2spk: dict[str, str] = field(default_factory=dict)
    segments: dict[str, str] | None = None
    extra: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def spk2utt(self) -> dict[str, str]:
        return utt2spk_to_spk2utt(self.utt2spk)

    def write(self, directory: str | Path) -> None:
        """Write every file atomically (spk2utt derived from utt2spk)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_table(directory / "wav.scp", self.wav_scp)
        if self.text:  # an untranscribed data dir has none
            write_table(directory / "text", self.text)
        write_table(directory / "utt2spk", self.utt2spk)
        write_table(directory / "spk2utt", self.spk2utt)
        if self.segments is not None:
            write_table(directory / "segments", self.segments)
        for name, table in self.extra.items():
            write_table(directory / name, table)

    @classmethod
    def read(cls, directory: str | Path) -> DataDir:
        directory = Path(directory)
        segments_path = directory / "segments"
        return cls(
            wav_scp=read_table(directory / "wav.scp"),
            text=read_table(directory / "text", allow_empty_value=True)
            if (directory / "text").exists()
            else {},
            utt2spk=read_table(directory / "utt2spk"),
            segments=read_table(segments_path) if segments_path.exists() else None,
        )
