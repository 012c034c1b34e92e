#!/usr/bin/env python3
"""Shared, stdlib-only helpers for pykd's Kaldi-compatible ``utils/`` scripts.

Kaldi data directories are "key rest-of-line" tables. These helpers read them keeping every
line verbatim (so files are copied byte-for-byte apart from the lines that are dropped), write
them atomically (temp file + rename), and implement the data-directory operations used by the
shell wrappers (split_data.sh, fix_data_dir.sh, subset_data_dir.sh, copy_data_dir.sh,
combine_data.sh, data/get_utt2dur.sh):  ``python3 _kdlib.py <operation> ...``.
Written from scratch for pykd; only file formats and command interfaces follow Kaldi.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

# Which key each optional file is indexed by (Kaldi conventions).
UTT_FILES = (
    "text",
    "feats.scp",
    "utt2dur",
    "utt2num_frames",
    "utt2uniq",
    "vad.scp",
    "utt2lang",
    "utt2warp",
    "utt2category",
)
SPK_FILES = ("cmvn.scp", "spk2gender", "spk2warp")
RECO_FILES = ("reco2file_and_channel", "reco2dur", "reco2num_frames")


class KdError(Exception):
    """A user-facing error: the message names the file and key."""


Table = list[tuple[str, str]]  # (key, full line without newline), in file order


def read_lines(path: str | Path, *, skip_blank: bool = False) -> Table:
    """Read a table keeping the lines verbatim; blank lines are errors unless ``skip_blank``."""
    path = Path(path)
    table: Table = []
    try:
        handle = open(path, encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise KdError(f"no such file {path}") from None
    with handle:
        for lineno, raw in enumerate(handle, 1):
            line = raw.rstrip("\n")
            fields = line.split()
            if not fields:
                if skip_blank:
                    continue
                raise KdError(f"{path}:{lineno}: empty line")
            table.append((fields[0], line))
    return table


def c_key(key: str) -> bytes:
    """Sort key matching ``LC_ALL=C sort``."""
    return key.encode("utf-8", errors="surrogateescape")


def c_sort(table: Table) -> Table:
    return sorted(table, key=lambda kv: c_key(kv[0]))


def check_sorted(path: Path, table: Table) -> None:
    """KdError naming the first line whose key is not after the previous one in C order: Kaldi's
    tools read data-dir tables in step, so an unsorted or repeated key gives wrong results."""
    for lineno in range(1, len(table)):
        prev, key = table[lineno - 1][0], table[lineno][0]
        if c_key(key) <= c_key(prev):
            what = "repeated" if key == prev else f"comes after '{prev}'"
            raise KdError(
                f"{path}:{lineno + 1}: not sorted in C order: key '{key}' {what} "
                f"(run utils/fix_data_dir.sh {path.parent})"
            )


@contextlib.contextmanager
def _atomic(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_lines(path: str | Path, lines: Iterable[str]) -> None:
    """Write lines atomically (temp file in the same directory, then rename)."""
    with _atomic(Path(path)) as handle:
        for line in lines:
            handle.write(line + "\n")


def second_field(line: str) -> str:
    fields = line.split()
    return fields[1] if len(fields) > 1 else ""


def spk2utt_lines(utt2spk: Table) -> list[str]:
    """spk2utt lines from utt2spk lines: speakers C-sorted, utterances in utt2spk order."""
    spk2utts: dict[str, list[str]] = {}
    for utt, line in utt2spk:
        spk2utts.setdefault(second_field(line), []).append(utt)
    return [f"{spk} {' '.join(spk2utts[spk])}" for spk in sorted(spk2utts, key=c_key)]


def keep(table: Table, keys: set[str] | dict[str, object]) -> list[str]:
    return [line for key, line in table if key in keys]


def segments_reco(segments: Table) -> dict[str, str]:
    """utt -> recording id from a segments table."""
    return {utt: second_field(line) for utt, line in segments}


_read_lines = read_lines


# ---------------------------------------------------------------------------------------------
# Subsetting a data directory (shared by split, subset, fix, copy)


def write_subset(
    src: Path,
    dst: Path,
    utts: set[str],
    *,
    rename_utt: Callable[[str], str] | None = None,
    rename_spk: Callable[[str], str] | None = None,
    sort: bool = False,
    cache: dict[str, Table] | None = None,
) -> None:
    """Write into ``dst`` every file of ``src`` restricted to ``utts`` (and the speakers and
    recordings they need); ``cache`` (file name -> table) avoids re-reading the source files when
    called once per piece. ``rename_*`` rewrite utterance/speaker ids (copy_data_dir.sh
    prefixes); recording ids never change.
    """
    ru = rename_utt or (lambda u: u)
    rs = rename_spk or (lambda s: s)

    def read_lines(path: Path) -> Table:  # shadows the module function: reads via the cache
        if cache is None:
            return _read_lines(path)
        if path.name not in cache:
            cache[path.name] = _read_lines(path)
        return cache[path.name]

    utt2spk = [(u, line) for u, line in read_lines(src / "utt2spk") if u in utts]
    spks = {second_field(line) for _, line in utt2spk}

    def re_utt(table: Table) -> Table:
        return [(ru(k), ru(k) + line[len(k) :]) for k, line in table if k in utts]

    def re_spk(table: Table) -> Table:
        return [(rs(k), rs(k) + line[len(k) :]) for k, line in table if k in spks]

    def out(name: str, table: Table) -> None:
        write_lines(dst / name, [line for _, line in (c_sort(table) if sort else table)])

    new_u2s = [(ru(u), f"{ru(u)} {rs(second_field(line))}") for u, line in utt2spk]
    out("utt2spk", new_u2s)
    write_lines(dst / "spk2utt", spk2utt_lines(c_sort(new_u2s) if sort else new_u2s))
    for name in UTT_FILES:
        if (src / name).is_file():
            out(name, re_utt(read_lines(src / name)))
    for name in SPK_FILES:
        if (src / name).is_file():
            out(name, re_spk(read_lines(src / name)))
    if (src / "segments").is_file():
        segments = [(k, line) for k, line in read_lines(src / "segments") if k in utts]
        recos = {second_field(line) for _, line in segments}
        out("segments", re_utt(segments))
        for name in ("wav.scp", *RECO_FILES):
            if (src / name).is_file():
                out(name, [(k, line) for k, line in read_lines(src / name) if k in recos])
    else:
        for name in ("wav.scp", *RECO_FILES):
            if (src / name).is_file():
                # without segments, recording id == utterance id
                out(name, re_utt(read_lines(src / name)))


def _source_files(src: Path) -> list[str]:
    names = ["utt2spk", "spk2utt", "segments", "wav.scp", *UTT_FILES, *SPK_FILES, *RECO_FILES]
    return [n for n in names if (src / n).is_file()]


# ---------------------------------------------------------------------------------------------
# split_data.sh


def partition(utt2spk: Table, n: int, per_utt: bool) -> list[list[str]]:
    """Split utterances into ``n`` contiguous, non-empty, balanced pieces (whole speakers,
    unless ``per_utt``)."""
    if per_utt:
        if n > len(utt2spk):
            raise KdError(f"refusing to split into {n} pieces: only {len(utt2spk)} utterances")
        size, rest = divmod(len(utt2spk), n)
        utts = [u for u, _ in utt2spk]
        starts = [k * size + min(k, rest) for k in range(n + 1)]
        return [utts[a:b] for a, b in zip(starts, starts[1:], strict=False)]
    else:
        by_spk: dict[str, list[str]] = {}
        for u, line in utt2spk:
            by_spk.setdefault(second_field(line), []).append(u)
        groups = list(by_spk.values())
    if n > len(groups):
        raise KdError(
            f"refusing to split into {n} pieces: only {len(groups)} speakers "
            "(speakers are never split; try --per-utt)"
        )
    total = sum(len(g) for g in groups)
    cum = [0]
    for g in groups:
        cum.append(cum[-1] + len(g))
    # boundary j (1..n-1): group index b_j whose cumulative count is closest to j*total/n
    bounds = [0]
    for j in range(1, n):
        target = j * total / n
        lo, hi = bounds[-1] + 1, len(groups) - (n - j)
        best = min(range(lo, hi + 1), key=lambda b: (abs(cum[b] - target), b))
        bounds.append(best)
    bounds.append(len(groups))
    return [[u for g in groups[a:b] for u in g] for a, b in zip(bounds, bounds[1:], strict=False)]


def split_data(data: Path, n: int, per_utt: bool) -> Path:
    if n < 1:
        raise KdError(f"number of pieces must be >= 1, got {n}")
    if not (data / "utt2spk").is_file():
        raise KdError(f"no such file {data / 'utt2spk'}")
    out = data / (f"split{n}utt" if per_utt else f"split{n}")
    names = _source_files(data)
    if _up_to_date(data, out, n, names):
        return out
    for name in names:
        check_sorted(data / name, read_lines(data / name, skip_blank=True))
    utt2spk = read_lines(data / "utt2spk")
    for name in ("feats.scp", "text", *(() if (data / "segments").is_file() else ("wav.scp",))):
        if (data / name).is_file():
            count = len(read_lines(data / name))
            if count != len(utt2spk):
                print(
                    f"split_data.sh: warning: #lines in (utt2spk, {name}) is "
                    f"({len(utt2spk)}, {count}); use utils/fix_data_dir.sh {data} to fix this.",
                    file=sys.stderr,
                )
    cache: dict[str, Table] = {}
    for k, piece in enumerate(partition(utt2spk, n, per_utt), 1):
        piece_dir = out / str(k)
        for stale in set(_all_names()) - set(names):  # files the source no longer has
            with contextlib.suppress(FileNotFoundError):
                (piece_dir / stale).unlink()
        write_subset(data, piece_dir, set(piece), cache=cache)
    return out


def _all_names() -> list[str]:
    return ["segments", "wav.scp", *UTT_FILES, *SPK_FILES, *RECO_FILES]


def _up_to_date(data: Path, out: Path, n: int, names: list[str]) -> bool:
    for k in range(1, n + 1):
        piece = out / str(k)
        for name in names:
            target = piece / name
            if not target.is_file() or target.stat().st_mtime < (data / name).stat().st_mtime:
                return False
        for stale in set(_all_names()) - set(names):
            if (piece / stale).exists():
                return False
    return True


# ---------------------------------------------------------------------------------------------
# fix_data_dir.sh


def fix_data_dir(data: Path, utt_extra: list[str], spk_extra: list[str]) -> str:
    """Keep utterances present everywhere; sort; back old files up in data/.backup."""
    if not (data / "utt2spk").is_file():
        raise KdError(f"no such file {data / 'utt2spk'}")
    backup = data / ".backup"
    backup.mkdir(exist_ok=True)
    names = _source_files(data)
    extra_utt = [f for f in utt_extra if (data / f).is_file()]
    extra_spk = [f for f in spk_extra if (data / f).is_file()]
    all_names = [*names, *extra_utt, *extra_spk]
    for name in all_names:
        shutil.copy2(data / name, backup / name)
    tables = {name: read_lines(data / name, skip_blank=True) for name in all_names}

    def keyset(name: str) -> set[str]:
        return {k for k, _ in tables[name]}

    utt2spk = c_sort(_dedup(tables["utt2spk"]))
    utts = {u for u, _ in utt2spk}
    n_before = len(utts)
    for name in [*UTT_FILES, *extra_utt]:
        if name in tables:
            utts &= keyset(name)
    if "segments" in tables:
        recos = keyset("wav.scp") if "wav.scp" in tables else set()
        utts &= {u for u, line in tables["segments"] if second_field(line) in recos}
    elif "wav.scp" in tables:
        utts &= keyset("wav.scp")
    # speakers must be in every per-speaker file (e.g. cmvn.scp)
    spks = {second_field(line) for u, line in utt2spk if u in utts}
    for name in [*SPK_FILES, *extra_spk]:
        if name in tables:
            spks &= keyset(name)
    utts = {u for u, line in utt2spk if u in utts and second_field(line) in spks}

    new_u2s = [(u, line) for u, line in utt2spk if u in utts]
    write_lines(data / "utt2spk", [line for _, line in new_u2s])
    write_lines(data / "spk2utt", spk2utt_lines(new_u2s))
    for name in [*UTT_FILES, *extra_utt]:
        if name in tables:
            write_lines(data / name, keep(c_sort(_dedup(tables[name])), utts))
    for name in [*SPK_FILES, *extra_spk]:
        if name in tables:
            write_lines(data / name, keep(c_sort(_dedup(tables[name])), spks))
    if "segments" in tables:
        segments = [(u, line) for u, line in c_sort(_dedup(tables["segments"])) if u in utts]
        write_lines(data / "segments", [line for _, line in segments])
        recos = set(segments_reco(segments).values())
    else:
        recos = utts
    for name in ("wav.scp", *RECO_FILES):
        if name in tables:
            write_lines(data / name, keep(c_sort(_dedup(tables[name])), recos))
    if len(utts) == n_before:
        msg = f"fix_data_dir.sh: kept all {n_before} utterances."
    else:
        msg = (
            f"fix_data_dir.sh: kept {len(utts)} utterances out of {n_before} "
            f"({n_before - len(utts)} removed)"
        )
    return msg + f"\nfix_data_dir.sh: old files are kept in {backup}"


def _dedup(table: Table) -> Table:
    """Drop exact duplicate lines (like ``sort -u``); conflicting duplicate keys are errors."""
    seen: dict[str, str] = {}
    out: Table = []
    for key, line in table:
        if key in seen:
            if seen[key] != line:
                raise KdError(f"duplicate key '{key}' with different values: '{line}'")
            continue
        seen[key] = line
        out.append((key, line))
    return out


# ---------------------------------------------------------------------------------------------
# subset_data_dir.sh


def read_id_list(path: Path) -> list[str]:
    return [k for k, _ in read_lines(path)]


def subset_utts(data: Path, mode: str, arg: str) -> set[str]:
    """Utterances selected by subset_data_dir.sh's mode (see the shell script's usage)."""
    utt2spk = read_lines(data / "utt2spk")
    utt_ids = [u for u, _ in utt2spk]
    if mode == "utt-list":
        wanted = set(read_id_list(Path(arg)))
        return {u for u in utt_ids if u in wanted}
    if mode == "spk-list":
        wanted = set(read_id_list(Path(arg)))
        return {u for u, line in utt2spk if second_field(line) in wanted}
    try:
        num = int(arg)
    except ValueError:
        raise KdError(f"expected a number of utterances, got '{arg}'") from None
    if num < 0:
        raise KdError(f"number of utterances must be >= 0, got {num}")
    if mode not in ("per-spk", "speakers") and num > len(utt_ids):
        raise KdError(f"cannot subset to more utterances ({num}) than {data} has ({len(utt_ids)})")
    if mode == "first":
        return set(utt_ids[:num])
    if mode == "last":
        return set(utt_ids[len(utt_ids) - num :])
    if mode == "per-spk":
        counts: dict[str, int] = {}
        chosen = set()
        for u, line in utt2spk:
            spk = second_field(line)
            if counts.get(spk, 0) < num:
                counts[spk] = counts.get(spk, 0) + 1
                chosen.add(u)
        return chosen
    if mode == "speakers":
        # whole speakers in a seeded random order, until about num utterances are selected
        import random

        by_spk: dict[str, list[str]] = {}
        for u, line in utt2spk:
            by_spk.setdefault(second_field(line), []).append(u)
        spk_list = list(by_spk)
        random.Random(0).shuffle(spk_list)
        chosen_s: list[str] = []
        total = 0
        for spk in spk_list:
            if total >= num:
                break
            chosen_s.append(spk)
            total += len(by_spk[spk])
        return {u for s in chosen_s for u in by_spk[s]}
    if mode == "shortest":
        lengths = _utt_lengths(data)
        missing = [u for u in utt_ids if u not in lengths]
        if missing:
            raise KdError(f"--shortest: no length for utterance '{missing[0]}'")
        return set(sorted(utt_ids, key=lambda u: (lengths[u], c_key(u)))[:num])
    if mode == "default":
        return {utt_ids[i] for i in _spaced(len(utt_ids), num)}
    raise KdError(f"unknown subset mode {mode}")


def _spaced(total: int, num: int) -> list[int]:
    """``num`` indices evenly spread over range(total) (deterministic)."""
    if num <= 0:
        return []
    return sorted({(i * total) // num for i in range(num)})


def _utt_lengths(data: Path) -> dict[str, float]:
    for name in ("utt2num_frames", "utt2dur"):
        if (data / name).is_file():
            return {k: float(second_field(line)) for k, line in read_lines(data / name)}
    if (data / "segments").is_file():
        out = {}
        for k, line in read_lines(data / "segments"):
            f = line.split()
            out[k] = float(f[3]) - float(f[2])
        return out
    raise KdError(f"--shortest needs {data}/utt2num_frames, utt2dur or segments")


# ---------------------------------------------------------------------------------------------
# combine_data.sh


def combine_data(dest: Path, sources: list[Path], extra_files: list[str]) -> list[str]:
    """Concatenate the tables of ``sources`` into ``dest`` (sorted); return info messages."""
    msgs: list[str] = []
    for src in sources:
        if not (src / "utt2spk").is_file():
            raise KdError(f"no such file {src / 'utt2spk'}")
    have_seg = [(s / "segments").is_file() for s in sources]
    names = ["utt2spk", "wav.scp", *UTT_FILES, *SPK_FILES, *RECO_FILES, *extra_files]
    for name in dict.fromkeys(names):
        present = [(s / name).is_file() for s in sources]
        if not any(present):
            continue
        if not all(present):
            msgs.append(
                f"combine_data.sh [info]: not combining {name} as it does not exist everywhere"
            )
            with contextlib.suppress(FileNotFoundError):
                (dest / name).unlink()
            continue
        table: Table = []
        for s in sources:
            table += read_lines(s / name)
        _write_unique(dest / name, table)
        msgs.append(f"combine_data.sh: combined {name}")
    if any(have_seg):
        table = []
        for s, seg in zip(sources, have_seg, strict=True):
            if seg:
                table += read_lines(s / "segments")
            elif (s / "wav.scp").is_file():
                # whole recording = one segment "<utt> <utt> 0 <duration>" (duration from
                # utt2dur, else from the audio headers)
                table += _whole_file_segments(s)
        _write_unique(dest / "segments", table)
        msgs.append("combine_data.sh: combined segments")
    else:
        with contextlib.suppress(FileNotFoundError):
            (dest / "segments").unlink()
    u2s = c_sort(read_lines(dest / "utt2spk"))
    write_lines(dest / "spk2utt", spk2utt_lines(u2s))
    return msgs


def _whole_file_segments(src: Path) -> Table:
    if (src / "utt2dur").is_file():
        durs = {k: second_field(line) for k, line in read_lines(src / "utt2dur")}
    else:
        durs = {}
        for k, line in read_lines(src / "wav.scp"):
            durs[k] = _fmt(wav_duration(line[len(k) :]))
    table: Table = []
    for k, _ in read_lines(src / "wav.scp"):
        if k not in durs:
            raise KdError(f"{src}/utt2dur: no duration for recording '{k}'")
        table.append((k, f"{k} {k} 0 {durs[k]}"))
    return table


def _write_unique(path: Path, table: Table) -> None:
    write_lines(path, [line for _, line in c_sort(_dedup(table))])


# ---------------------------------------------------------------------------------------------
# data/get_utt2dur.sh


def wav_duration(spec: str) -> float:
    """Duration in seconds of a wav.scp entry: a file name or a command ending in '|'."""
    import io
    import subprocess
    import wave

    spec = spec.strip()
    if not spec.endswith("|"):
        try:
            with wave.open(spec, "rb") as w:
                return w.getnframes() / w.getframerate()
        except (wave.Error, EOFError) as err:
            try:
                import soundfile  # optional: FLAC, NIST SPHERE, ...

                return float(soundfile.info(spec).duration)
            except Exception:
                raise KdError(f"cannot read the audio header of '{spec}': {err}") from None
    proc = subprocess.run(["bash", "-c", spec[:-1]], capture_output=True, check=False)
    if proc.returncode != 0:
        raise KdError(f"command failed (exit {proc.returncode}): {spec[:-1]}")
    data = proc.stdout
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            block = w.getsampwidth() * w.getnchannels()
            rate = w.getframerate()
    except (wave.Error, EOFError) as err:
        raise KdError(f"output of '{spec}' is not a wav file: {err}") from None
    # piped wav headers often carry no length: count the bytes after the 'data' chunk header
    pos = data.find(b"data", 12)
    if pos < 0:
        raise KdError(f"output of '{spec}' has no wav data chunk")
    return ((len(data) - pos - 8) // block) / rate


def get_utt2dur(data: Path) -> str:
    utt2spk = read_lines(data / "utt2spk")
    target = data / "utt2dur"
    if target.is_file() and {k for k, _ in read_lines(target)} == {u for u, _ in utt2spk}:
        return f"get_utt2dur.sh: {target} already exists with the expected length; not recomputing"
    lines: list[str] = []
    if (data / "segments").is_file():
        for utt, line in read_lines(data / "segments"):
            f = line.split()
            if len(f) < 4:
                raise KdError(f"{data}/segments: bad line for utterance '{utt}': {line}")
            start, end = float(f[2]), float(f[3])
            if end < 0:
                raise KdError(f"{data}/segments: utterance '{utt}' has end time -1; unknown length")
            lines.append(f"{utt} {_fmt(end - start)}")
    else:
        for utt, line in read_lines(data / "wav.scp"):
            spec = line[len(utt) :].strip()
            lines.append(f"{utt} {_fmt(wav_duration(spec))}")
    write_lines(target, lines)
    return f"get_utt2dur.sh: computed {target}"


def _speed_wav(spec: str, factor: str) -> str:
    """A wav.scp value whose audio is played ``factor`` times faster (sox's speed effect: tempo
    and pitch together)."""
    effect = f"sox -t wav - -t wav - speed {factor} |"
    spec = spec.strip()
    if spec.endswith("|"):  # a command: its output goes through sox
        return f"{spec} {effect}"
    if re.search(r":[0-9]+$", spec):  # an archive offset: Kaldi's wav-copy reads it
        return f"wav-copy {spec} - | {effect}"
    return f"sox -t wav {spec} -t wav - speed {factor} |"


def perturb_speed(src: Path, dst: Path, factor: str) -> int:
    """Write into ``dst`` a copy of data dir ``src`` whose audio is sped up by ``factor``:
    utterance, speaker and recording ids prefixed ``sp<factor>-`` (Kaldi's naming), durations
    and segment times divided by ``factor``, ``utt2uniq`` pointing each copy at its original.
    Features are not copied (they must be computed again). Returns the number of utterances."""
    scale = float(factor)
    if not scale > 0:
        raise KdError(f"speed factor must be positive, got {factor}")
    pre = f"sp{factor}-"

    def renamed(name: str, value: Callable[[str, str], str | None] | None = None) -> None:
        if not (src / name).is_file():
            return
        rows = []
        for key, line in read_lines(src / name):
            rest = line[len(key) :].strip()
            new = rest if value is None else value(key, rest)
            if new is not None:
                rows.append((pre + key, f"{pre}{key} {new}".rstrip()))
        write_lines(dst / name, [line for _, line in c_sort(rows)])

    utt2spk = read_lines(src / "utt2spk")
    segments: dict[str, tuple[str, float, float]] = {}
    if (src / "segments").is_file():
        for utt, line in read_lines(src / "segments"):
            reco, start, end = line.split()[1:4]
            begin, finish = float(start) / scale, float(end) / scale
            if finish > begin + 0.01:  # (a segment too short once sped up is left out)
                segments[utt] = (reco, begin, finish)
        utt2spk = [(u, line) for u, line in utt2spk if u in segments]
    kept = {u for u, _ in utt2spk}
    uniq = {}
    if (src / "utt2uniq").is_file():
        uniq = {k: second_field(line) for k, line in read_lines(src / "utt2uniq")}
    new_u2s = c_sort([(pre + u, f"{pre}{u} {pre}{second_field(line)}") for u, line in utt2spk])
    write_lines(dst / "utt2spk", [line for _, line in new_u2s])
    write_lines(dst / "spk2utt", spk2utt_lines(new_u2s))
    write_lines(dst / "utt2uniq", [f"{pre}{u} {uniq.get(u, u)}" for u, _ in c_sort(utt2spk)])
    speakers = {second_field(line) for _, line in utt2spk}
    recos = {reco for reco, _, _ in segments.values()} if segments else kept

    def only(keys: set[str], value: Callable[[str], str] = lambda rest: rest):
        return lambda key, rest: value(rest) if key in keys else None

    def slower(rest: str) -> str:
        return _fmt(float(rest) / scale)

    renamed("text", only(kept))
    renamed("utt2dur", only(kept, slower))
    renamed("spk2gender", only(speakers))
    renamed("reco2dur", only(recos, slower))
    if segments:
        rows = [
            (pre + u, f"{pre}{u} {pre}{r} {b:.2f} {e:.2f}") for u, (r, b, e) in segments.items()
        ]
        write_lines(dst / "segments", [line for _, line in c_sort(rows)])
    renamed("wav.scp", only(recos, lambda rest: _speed_wav(rest, factor)))
    return len(utt2spk)


def _fmt(x: float) -> str:
    """Like Kaldi's text output of a float (6 significant digits)."""
    return f"{x:.6g}"


# ---------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    op, args = argv[0], argv[1:]
    if op == "split":
        split_data(Path(args[0]), int(args[1]), args[2] == "true")
    elif op == "fix":
        print(fix_data_dir(Path(args[0]), args[1].split(), args[2].split()))
    elif op == "subset":  # subset MODE ARG SRC DST
        mode, arg, src, dst = args[0], args[1], Path(args[2]), Path(args[3])
        utts = subset_utts(src, mode, arg)
        write_subset(src, dst, utts)
        n_src = len(read_lines(src / "utt2spk"))
        print(f"subset_data_dir.sh: reducing #utt from {n_src} to {len(utts)}")
    elif op == "copy":  # copy SRC DST UTT_PREFIX UTT_SUFFIX SPK_PREFIX SPK_SUFFIX
        src, dst = Path(args[0]), Path(args[1])
        up, us, sp, ss = args[2:6]
        utts = {u for u, _ in read_lines(src / "utt2spk")}
        write_subset(
            src,
            dst,
            utts,
            rename_utt=lambda u: up + u + us,
            rename_spk=lambda s: sp + s + ss,
            sort=True,
        )
        print(f"copy_data_dir.sh: copied data from {src} to {dst}")
    elif op == "combine":  # combine EXTRA DEST SRC...
        for msg in combine_data(Path(args[1]), [Path(a) for a in args[2:]], args[0].split()):
            print(msg, file=sys.stderr)
    elif op == "perturb-speed":  # perturb-speed FACTOR SRC DST
        n = perturb_speed(Path(args[1]), Path(args[2]), args[0])
        print(f"perturb_data_dir_speed.sh: {n} utterances of {args[1]} at speed {args[0]}")
    elif op == "utt2dur":
        print(get_utt2dur(Path(args[0])), file=sys.stderr)
    else:
        raise KdError(f"unknown operation {op}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KdError as err:
        print(f"{os.environ.get('KD_SCRIPT', 'utils')}: error: {err}", file=sys.stderr)
        sys.exit(1)
