"""Sequence-training speed: one epoch of ``pykd train-seq`` per setting, same data (benchmark).

Runs ``pykd train-seq`` (sMBR by default) for one epoch over the training set of a recipe dir
whose stage-12 denominator lattices exist, once per ``--utts-per-step`` value (1: per-utterance
updates, nnet1's; more: one batched lattice forward-backward and one update per B utterances)
and, with ``--before TREE``, once with an older pykd checkout (its own per-utterance trainer) for
the speed-up against it. Printed per run: the epoch's wall seconds (from the trainer's own
"epoch 1 done" line), frames per second, the epoch's mean objective per frame and the speed-up
over the first run; a CE epoch of the same network on the same frames is the floor (the network's
forward and backward passes are the same work).

    python bench/bench_seq_train.py --recipe DIR [--system hdnn_kd] [--criterion smbr] \
        [--utts-per-step 1 16 32] [--before /path/to/old/pykd] [--threads 0] [--out FILE.md]

The objective of the B = 1 run equals the old trainer's (the same updates in the same order);
larger B change the update schedule, not the objective's definition (the per-utterance losses
and gradients of a batch equal one-at-a-time ones: tests/test_seq_objectives.py).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DONE = re.compile(
    r"epoch 1 done: \w+ obj/frame (?P<obj>[-\d.]+).*?, (?P<utts>\d+) utts, (?P<frames>\d+) "
    r"frames.*?, (?P<secs>[\d.]+) s \("
)


def run_epoch(
    tree: Path, recipe: Path, system: str, criterion: str, per_step: int | None, threads: int
) -> dict[str, float]:
    """One epoch with the pykd of ``tree``; the trainer's own epoch figures."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pykd", "train-seq", "--criterion", criterion,
               "--epochs", "1", "--seed", "1", "--device", "cpu", "--num-threads", str(threads),
               "--log-every", "100000", "--checkpoint-every", "0"]  # fmt: skip
        if per_step is not None:
            cmd += ["--utts-per-step", str(per_step)]
        cmd += ["data/train_fbank", "data/lang", f"exp/{system}", "exp/tri1_ali",
                f"exp/{system}_denlats", str(Path(tmp) / "out")]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(tree))
        proc = subprocess.run(cmd, cwd=recipe, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        m = DONE.search(proc.stderr + proc.stdout)
        if m is None:
            raise SystemExit(f"no 'epoch 1 done' line from {tree}:\n{proc.stderr[-2000:]}")
        secs, frames = float(m["secs"]), int(m["frames"])
        return {"secs": secs, "frames": frames, "fps": frames / secs, "obj": float(m["obj"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", type=Path, required=True, help="recipe dir (stage 12 denlats)")
    ap.add_argument("--system", default="hdnn_kd", help="exp/<system> and exp/<system>_denlats")
    ap.add_argument("--criterion", default="smbr", choices=("smbr", "mmi", "mpfe"))
    ap.add_argument("--utts-per-step", type=int, nargs="+", default=[1, 16, 32])
    ap.add_argument("--before", type=Path, help="an older pykd checkout to compare with")
    ap.add_argument("--repeats", type=int, default=1, help="runs per setting (median reported)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = ap.parse_args()

    settings: list[tuple[str, Path, int | None]] = []
    if args.before:
        settings.append((f"before ({args.before.name}), per utterance", args.before, None))
    settings += [(f"utts-per-step {b}", REPO, b) for b in args.utts_per_step]
    rows = []
    for name, tree, per_step in settings:
        runs = [
            run_epoch(tree, args.recipe, args.system, args.criterion, per_step, args.threads)
            for _ in range(args.repeats)
        ]
        secs = statistics.median(r["secs"] for r in runs)
        rows.append((name, secs, runs[0]["frames"] / secs, runs[0]["obj"]))
        print(f"{name}: {secs:.1f} s/epoch", file=sys.stderr, flush=True)
    base = rows[0][1]
    lines = [
        f"{args.criterion} epoch of exp/{args.system} ({args.recipe}), {args.threads or 'all'} "
        f"threads, median of {args.repeats}:",
        "",
        "| setting | s/epoch | frames/s | objective/frame | speed-up |",
        "|---|---|---|---|---|",
    ]
    for name, secs, fps, obj in rows:
        lines.append(f"| {name} | {secs:.1f} | {fps:,.0f} | {obj:.4f} | {base / secs:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
