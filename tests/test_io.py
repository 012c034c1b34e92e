"""pykd.io: atomic writes and Kaldi data-dir tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykd.io.atomic import atomic_path, atomic_write, atomic_write_text
from pykd.io.datadir import (
    DataDir,
    DataDirError,
    c_sorted,
    read_table,
    utt2spk_to_spk2utt,
    write_table,
)


def test_atomic_write_keeps_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "text"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("new partial")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["text"]  # no temp file left behind


def test_atomic_path_renames_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.bin"
    with atomic_path(target) as tmp:
        assert tmp != target and tmp.parent == target.parent
        tmp.write_bytes(b"abc")
        assert not target.exists()
    assert target.read_bytes() == b"abc"


def test_c_sorted_is_byte_order() -> None:
    # LC_ALL=C puts upper case and '_' before lower case, unlike a locale-aware sort.
    assert c_sorted(["b", "B", "a_1", "a-1", "A"]) == ["A", "B", "a-1", "a_1", "b"]


def test_datadir_round_trip(tmp_path: Path) -> None:
    d = DataDir(
        wav_scp={"s2_u1": "wav/b.wav", "s1_u1": "wav/a.wav", "s1_u2": "sox x.wav -t wav - |"},
        text={"s1_u1": "hello world", "s1_u2": "good morning", "s2_u1": "thanks"},
        utt2spk={"s1_u1": "s1", "s1_u2": "s1", "s2_u1": "s2"},
    )
    d.write(tmp_path)
    assert (tmp_path / "spk2utt").read_text() == "s1 s1_u1 s1_u2\ns2 s2_u1\n"
    assert (tmp_path / "wav.scp").read_text().splitlines()[0] == "s1_u1 wav/a.wav"
    back = DataDir.read(tmp_path)
    assert back.wav_scp == d.wav_scp and back.text == d.text and back.utt2spk == d.utt2spk
    assert back.segments is None


def test_read_table_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "utt2spk"
    path.write_text("u1 s1\nu1 s2\n")
    with pytest.raises(DataDirError, match=r"utt2spk:2: duplicate key 'u1'"):
        read_table(path)
    path.write_text("u1 s1\nu2\n")
    with pytest.raises(DataDirError, match=r"utt2spk:2: key 'u2' has no value"):
        read_table(path)
    assert read_table(path, allow_empty_value=True) == {"u1": "s1", "u2": ""}


def test_write_table_sorted_and_spk2utt() -> None:
    assert utt2spk_to_spk2utt({"b_2": "b", "a_1": "a", "b_1": "b"}) == {"a": "a_1", "b": "b_1 b_2"}


def test_write_table_empty_value(tmp_path: Path) -> None:
    write_table(tmp_path / "text", {"u2": "", "u1": "a b"})
    assert (tmp_path / "text").read_text() == "u1 a b\nu2\n"


def test_atomic_outputs_get_umask_mode_not_0600(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o644
