"""Validate a Kaldi data directory (the checks behind ``utils/validate_data_dir.sh``).

Every check raises :class:`pykd.io.datadir.DataDirError` with a message naming the file and the
key (utterance, speaker or recording) that is wrong; the first error found is reported.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable
from pathlib import Path

from pykd.io.datadir import DataDirError, c_sorted, read_table

log = logging.getLogger(__name__)

# Optional per-utterance files that, when present, must cover exactly the utterances.
UTT_FILES = ("utt2dur", "utt2num_frames", "utt2uniq", "vad.scp", "utt2lang", "utt2warp")
# Optional per-speaker files that, when present, must cover exactly the speakers.
SPK_FILES = ("cmvn.scp", "spk2gender", "spk2warp")


def read_sorted_table(path: Path, *, allow_empty_value: bool = False) -> dict[str, str]:
    """Read a table, requiring unique keys in C-sorted order (as ``LC_ALL=C sort -c``)."""
    table = read_table(path, allow_empty_value=allow_empty_value)
    keys = list(table)
    for lineno in range(1, len(keys)):
        prev, key = keys[lineno - 1], keys[lineno]
        if prev.encode("utf-8") > key.encode("utf-8"):
            raise DataDirError(
                f"{path}:{lineno + 1}: not sorted in C order: key '{key}' comes after '{prev}' "
                "(sort with LC_ALL=C sort, or run utils/fix_data_dir.sh)"
            )
    return table


def _same_keys(path: Path, have: Iterable[str], want: Iterable[str], what: str, owner: str) -> None:
    """Error naming the first key of ``want`` missing from ``have``, or the first extra one."""
    have_set, want_set = set(have), set(want)
    missing = c_sorted(want_set - have_set)
    if missing:
        raise DataDirError(
            f"{path}: no entry for {what} '{missing[0]}' "
            f"({len(missing)} {what}s of {owner} missing)"
        )
    extra = c_sorted(have_set - want_set)
    if extra:
        raise DataDirError(
            f"{path}: {what} '{extra[0]}' is not in {owner} ({len(extra)} extra {what}s)"
        )


def _single_token_values(path: Path, table: dict[str, str], what: str) -> None:
    for key, value in table.items():
        if len(value.split()) != 1:
            raise DataDirError(f"{path}: {what} '{key}' must have exactly one value, got '{value}'")


def check_speakers(d: Path, *, spk_sort: bool = True) -> tuple[dict[str, str], dict[str, str]]:
    """Check utt2spk and spk2utt agree; return (utt2spk, spk2utt)."""
    for name in ("utt2spk", "spk2utt"):
        if not (d / name).is_file():
            raise DataDirError(f"{d}: no such file {name}")
    utt2spk = read_sorted_table(d / "utt2spk")
    _single_token_values(d / "utt2spk", utt2spk, "utterance")
    if not utt2spk:
        raise DataDirError(f"{d / 'utt2spk'}: empty")
    spk2utt = read_sorted_table(d / "spk2utt")
    seen: dict[str, str] = {}
    for spk, utts in spk2utt.items():
        for utt in utts.split():
            if utt in seen:
                raise DataDirError(
                    f"{d / 'spk2utt'}: utterance '{utt}' listed under speakers '{seen[utt]}' "
                    f"and '{spk}'"
                )
            seen[utt] = spk
            if utt not in utt2spk:
                raise DataDirError(
                    f"{d / 'spk2utt'}: utterance '{utt}' (speaker '{spk}') is not in utt2spk"
                )
            if utt2spk[utt] != spk:
                raise DataDirError(
                    f"{d}: utt2spk and spk2utt disagree: utterance '{utt}' has speaker "
                    f"'{utt2spk[utt]}' in utt2spk but '{spk}' in spk2utt"
                )
    for utt, spk in utt2spk.items():
        if utt not in seen:
            raise DataDirError(
                f"{d}: utt2spk and spk2utt disagree: utterance '{utt}' (speaker '{spk}') is "
                "missing from spk2utt (regenerate it with utils/utt2spk_to_spk2utt.pl)"
            )
    if spk_sort:
        by_spk = sorted(utt2spk, key=lambda u: (utt2spk[u].encode("utf-8"), u.encode("utf-8")))
        for by_utt_key, by_spk_key in zip(utt2spk, by_spk, strict=True):
            if by_utt_key != by_spk_key:
                raise DataDirError(
                    f"{d / 'utt2spk'}: not in sorted order when sorted first on speaker-id, at "
                    f"utterance '{by_utt_key}' (speaker '{utt2spk[by_utt_key]}'): make speaker "
                    "ids prefixes of utterance ids, or pass --no-spk-sort"
                )
    return utt2spk, spk2utt


ILLEGAL_WORDS = ("<s>", "</s>", "#0")


def check_text(d: Path, utts: Iterable[str]) -> None:
    path = d / "text"
    text = read_sorted_table(path, allow_empty_value=True)
    for utt, words in text.items():
        if not words.strip():
            raise DataDirError(f"{path}: utterance '{utt}' has an empty transcript")
        bad = [w for w in words.split() if w in ILLEGAL_WORDS]
        if bad:
            raise DataDirError(f"{path}: utterance '{utt}' contains the reserved symbol '{bad[0]}'")
    _same_keys(path, text, utts, "utterance", "utt2spk")


def check_audio(d: Path, utts: Iterable[str]) -> None:
    """wav.scp, plus segments and reco2file_and_channel/reco2dur when present."""
    wav_path = d / "wav.scp"
    wav = read_sorted_table(wav_path)
    for key, value in wav.items():
        if value.startswith("~"):
            raise DataDirError(f"{wav_path}: recording '{key}': do not use '~' in wav.scp")
    seg_path = d / "segments"
    if seg_path.is_file():
        segments = read_sorted_table(seg_path)
        _same_keys(seg_path, segments, utts, "utterance", "utt2spk")
        used: set[str] = set()
        for utt, value in segments.items():
            fields = value.split()
            if len(fields) not in (3, 4):
                raise DataDirError(
                    f"{seg_path}: utterance '{utt}': expected '<utt> <reco> <start> <end>', "
                    f"got '{utt} {value}'"
                )
            reco = fields[0]
            try:
                start, end = float(fields[1]), float(fields[2])
            except ValueError:
                raise DataDirError(
                    f"{seg_path}: utterance '{utt}': bad start/end times '{fields[1]} {fields[2]}'"
                ) from None
            if start < 0 or end <= start:
                raise DataDirError(
                    f"{seg_path}: utterance '{utt}': bad segment {fields[1]} to {fields[2]} seconds"
                )
            if reco not in wav:
                raise DataDirError(
                    f"{seg_path}: utterance '{utt}': recording '{reco}' is not in wav.scp"
                )
            used.add(reco)
        unused = c_sorted(set(wav) - used)
        if unused:
            raise DataDirError(
                f"{wav_path}: recording '{unused[0]}' has no segments "
                f"({len(unused)} such recordings; run utils/fix_data_dir.sh)"
            )
    else:
        _same_keys(wav_path, wav, utts, "utterance", "utt2spk")
    r2fc = d / "reco2file_and_channel"
    if r2fc.is_file():
        table = read_sorted_table(r2fc)
        for reco, value in table.items():
            if len(value.split()) != 2:
                raise DataDirError(
                    f"{r2fc}: recording '{reco}': expected '<reco> <file> <channel>', got "
                    f"'{reco} {value}'"
                )
        _same_keys(r2fc, table, wav, "recording", "wav.scp")
    reco2dur = d / "reco2dur"
    if reco2dur.is_file():
        table = read_sorted_table(reco2dur)
        _same_keys(reco2dur, table, wav, "recording", "wav.scp")
        check_numbers(reco2dur, table, float)


def check_numbers(path: Path, table: dict[str, str], kind: type) -> None:
    for key, value in table.items():
        try:
            number = kind(value)
        except ValueError:
            raise DataDirError(f"{path}: '{key}' has a non-numeric value '{value}'") from None
        if number <= 0:
            raise DataDirError(f"{path}: '{key}' has a non-positive value '{value}'")


def matrix_shape(location: str) -> tuple[int, int] | None:
    """(rows, cols) of a binary Kaldi matrix at ``ark:offset`` read from its header alone, or None
    where that is not possible (pipes, text arks): float, double and compressed matrices."""
    path, _, offset = location.rpartition(":")
    if not path or not offset.isdigit() or path.endswith("|"):
        return None
    try:
        with open(path, "rb") as f:
            f.seek(int(offset))
            head = f.read(2 + 4 + 16)
    except OSError:
        return None  # (archive paths may be relative to another dir; the readers name it)
    if head[:2] != b"\0B":
        return None
    token, _, rest = head[2:].partition(b" ")
    if token in (b"FM", b"DM") and len(rest) >= 10 and rest[0] == 4 and rest[5] == 4:
        return struct.unpack("<i", rest[1:5])[0], struct.unpack("<i", rest[6:10])[0]
    if token in (b"CM", b"CM2", b"CM3") and len(rest) >= 16:
        rows, cols = struct.unpack("<ii", rest[8:16])
        return rows, cols
    raise DataDirError(f"features at {location}: not a Kaldi matrix (header {head[:8]!r})")


def check_feature_dims(feats_scp: Path, table: dict[str, str]) -> None:
    """Every utterance of feats.scp has the same feature dimension (read from matrix headers)."""
    first: tuple[str, int] | None = None
    for utt, location in table.items():
        shape = matrix_shape(location)
        if shape is None:
            continue
        if first is None:
            first = (utt, shape[1])
        elif shape[1] != first[1]:
            raise DataDirError(
                f"{feats_scp}: utterance '{utt}' has {shape[1]}-dim features, "
                f"'{first[0]}' {first[1]}-dim"
            )


def validate_data_dir(
    data_dir: str | Path,
    *,
    no_feats: bool = False,
    no_text: bool = False,
    no_wav: bool = False,
    no_spk_sort: bool = False,
) -> None:
    """Raise :class:`DataDirError` if ``data_dir`` is not a valid Kaldi data directory."""
    d = Path(data_dir)
    if not d.is_dir():
        raise DataDirError(f"no such directory {d}")
    utt2spk, spk2utt = check_speakers(d, spk_sort=not no_spk_sort)
    # Like Kaldi: --no-X means X need not exist, but it is still checked when it does.
    for name, optional in (("text", no_text), ("wav.scp", no_wav), ("feats.scp", no_feats)):
        if not (d / name).is_file() and not optional:
            flag = "--no-" + name.split(".")[0]
            raise DataDirError(f"{d}: no such file {name} (if this is by design, use {flag})")
    if (d / "text").is_file():
        check_text(d, utt2spk)
    if (d / "segments").is_file() and not (d / "wav.scp").is_file():
        raise DataDirError(f"{d}: segments exists but wav.scp does not")
    if (d / "wav.scp").is_file():
        check_audio(d, utt2spk)
    feats = d / "feats.scp"
    if feats.is_file():
        feats_table = read_sorted_table(feats)
        _same_keys(feats, feats_table, utt2spk, "utterance", "utt2spk")
        check_feature_dims(feats, feats_table)
    for name in UTT_FILES:
        if (d / name).is_file():
            table = read_sorted_table(d / name)
            _same_keys(d / name, table, utt2spk, "utterance", "utt2spk")
            if name in ("utt2dur", "utt2num_frames"):
                check_numbers(d / name, table, float if name == "utt2dur" else int)
    if len(spk2utt) == 1:
        log.warning("%s: only one speaker; per-speaker CMVN/adaptation will be weak", d)
    for name in SPK_FILES:
        if (d / name).is_file():
            table = read_sorted_table(d / name)
            _same_keys(d / name, table, spk2utt, "speaker", "spk2utt")
            if name == "spk2gender":
                for spk, gender in table.items():
                    if gender not in ("m", "f"):
                        raise DataDirError(
                            f"{d / name}: speaker '{spk}': gender must be m or f, got '{gender}'"
                        )
