"""Cost growth: seconds of wall time per hour of audio for each kind of work, per recipe run.

Reads what a finished recipe dir already holds: ``exp/stage_times.txt`` (corpus and feature
stages), the header and footer lines that Kaldi's ``run.pl`` (and pykd's job runner) write in
every job log (``# Started at ...`` / ``# Ended (code 0) at ...``), the training logs' epoch lines
and ``data/*/utt2dur``. The wall time of a kind of work is the union of its jobs' intervals
(parallel jobs overlap), divided by the hours it processes: train hours for training, alignment
and lattice work, dev + eval hours for decoding and adaptation, all hours for corpus and
features. Networks are also given per epoch (their epoch counts differ run to run).

    python bench/bench_cost_growth.py RECIPE_DIR [RECIPE_DIR2 ...] [--out FILE.md]

With a default-size run and a ``--size double`` run (twice the training hours) side by side,
the last column is the growth of the per-hour cost (1.0: linear in hours; networks: per hour
and epoch, the second column of their cells); multiplying a row's
s/h by AMI's hours (80 h train, 18 h dev + eval) and dividing by the cores gives the AMI cost.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

STAMP = "%a %b %d %H:%M:%S %Z %Y"
STARTED = re.compile(r"^# Started at (.+)$", re.M)
ENDED = re.compile(r"^# Ended \(code 0\) at (.+?), elapsed time", re.M)
EPOCH = re.compile(r"\bepoch \d+(?:: train loss| done: \w+ obj/frame)")  # nnet / seq summaries

TEST = ("dev", "eval")
# kind -> (glob patterns of job logs under exp/, hours the work is over)
KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    "GMM decoding (dev + eval, both GMMs)": (
        tuple(f"{n}/decode_{x}/log/*.log" for n in ("mono", "tri1") for x in TEST),
        "test",
    ),
    "network CE training (teacher)": (("dnn/log/train.log",), "train"),
    "network CE training (student)": (("hdnn_ce/log/train.log",), "train"),
    "teacher posteriors (cache)": (("dnn/posts_train/log/*.log",), "train"),
    "network KD training (student)": (("hdnn_kd/log/train.log",), "train"),
    "network decoding (dev + eval, 3 networks)": (
        tuple(f"{n}/decode_{x}/log/*.log" for n in ("dnn", "hdnn_ce", "hdnn_kd") for x in TEST),
        "test",
    ),
    "denominator lattices (2 networks)": (
        ("*_denlats/log/*.log", "*_denlats/loglikes/log/*.log"),
        "train",
    ),
    "sequence training, teacher sMBR (dnn_smbr)": (("dnn_smbr/log/train.log",), "train"),
    "sequence training, student sMBR (hdnn_smbr)": (("hdnn_smbr/log/train.log",), "train"),
    "adaptation (all methods, both protocols)": (("hdnn_kd/adapt_*/log/*.log",), "test"),
}
GMM_TRAINING = "GMM training + alignment (stages 5-7 less GMM decoding)"
STAGES = {"corpus (stage 1)": 1, "features (stage 4)": 4}


def _time(text: str) -> datetime:
    return datetime.strptime(text.strip(), STAMP)


def intervals(logs: Iterable[Path]) -> list[tuple[float, float]]:
    """(start, end) epoch seconds of every finished job log."""
    out = []
    for log in logs:
        text = log.read_text(errors="replace")
        s, e = STARTED.search(text), ENDED.search(text)
        if s and e:
            out.append((_time(s[1]).timestamp(), _time(e[1]).timestamp()))
    return out


def union_seconds(spans: list[tuple[float, float]]) -> float:
    """Length of the union of the intervals (parallel jobs counted once)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def hours(recipe: Path, sets: Iterable[str]) -> float:
    """Audio hours of the data dirs (utt2dur) of ``sets``."""
    secs = 0.0
    for name in sets:
        for line in (recipe / "data" / name / "utt2dur").read_text().splitlines():
            secs += float(line.split()[1])
    return secs / 3600.0


def epochs(logs: Iterable[Path]) -> int:
    """Training epochs run (accepted or rejected) in the training logs, summed."""
    return sum(len(EPOCH.findall(log.read_text(errors="replace"))) for log in logs)


def stage_seconds(recipe: Path) -> dict[int, float]:
    """Last recorded wall seconds of each stage (exp/stage_times.txt)."""
    out: dict[int, float] = {}
    path = recipe / "exp" / "stage_times.txt"
    for line in path.read_text().splitlines() if path.is_file() else []:
        parts = line.split("\t")
        if len(parts) >= 5 and parts[2].startswith("stage "):
            out[int(parts[2].split()[1])] = float(parts[4].rstrip("s"))
    return out


def run_label(recipe: Path) -> str:
    """The corpus/size a recipe dir was run with (exp/stage_times.txt), else its path."""
    path = recipe / "exp" / "stage_times.txt"
    lines = path.read_text().splitlines() if path.is_file() else []
    return lines[-1].split("\t")[1] if lines and "\t" in lines[-1] else str(recipe)


def measure(recipe: Path) -> dict[str, tuple[float, float, str]]:
    """kind -> (wall seconds, seconds per hour of its audio, note)."""
    h = {"train": hours(recipe, ["train"]), "test": hours(recipe, ["dev", "eval"])}
    h["all"] = h["train"] + h["test"]
    rows: dict[str, tuple[float, float, str]] = {}
    stages = stage_seconds(recipe)
    for name, stage in STAGES.items():
        if stage in stages:
            rows[name] = (stages[stage], stages[stage] / h["all"], f"{h['all']:.2f} h")
    exp = recipe / "exp"
    gmm_decode = union_seconds(
        intervals(
            p for pat in KINDS["GMM decoding (dev + eval, both GMMs)"][0] for p in exp.glob(pat)
        )
    )
    if all(k in stages for k in (5, 6, 7)):
        secs = stages[5] + stages[6] + stages[7] - gmm_decode
        rows[GMM_TRAINING] = (secs, secs / h["train"], f"{h['train']:.2f} h")
    for name, (patterns, over) in KINDS.items():
        logs = sorted({p for pat in patterns for p in exp.glob(pat)})
        secs = union_seconds(intervals(logs))
        if not secs:
            continue
        note = f"{h[over]:.2f} h"
        if "training" in name and "GMM" not in name:
            n = epochs(logs)
            if n:
                note += f", {n} epochs: {secs / n / h[over]:.0f} s/h per epoch"
        per_h = secs / h[over]
        if "training" in name and "GMM" not in name and epochs(logs):
            per_h /= epochs(logs)  # networks grow per epoch (their epoch counts differ)
        rows[name] = (secs, per_h, note)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recipes", type=Path, nargs="+", help="finished recipe dirs")
    ap.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = ap.parse_args()
    runs = [measure(r) for r in args.recipes]
    labels = [f"{run_label(r)}: s (s per hour of audio)" for r in args.recipes]
    head = "| work | " + " | ".join(labels)
    head += " | growth |" if len(runs) > 1 else " |"
    lines = [head, "|---" * (len(runs) + 1 + (len(runs) > 1)) + "|"]
    for name in [*STAGES, GMM_TRAINING, *KINDS]:
        cells = []
        for rows in runs:
            secs, per_h, note = rows.get(name, (0.0, 0.0, ""))
            cells.append(f"{secs:.0f} ({per_h:.0f}; {note})" if secs else "-")
        growth = ""
        if len(runs) > 1:
            a, b = runs[0].get(name), runs[-1].get(name)
            growth = f" {b[1] / a[1]:.2f} |" if a and b and a[1] else " - |"
        lines.append(f"| {name} | " + " | ".join(cells) + " |" + growth)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
