"""Peak memory (RSS) and throughput of real training runs on the recipe's data (benchmark).

Runs ``pykd train-nnet`` for a few epochs on ``data/train_fbank`` with the tri1 alignments, once
per model config (CE for both, and KD of the student from the teacher when ``--kd`` is given),
and prints each training process's peak RSS (its own rusage, from ``os.wait4``), its frames/s
and wall time. Needs run.sh stages 1-7 (and a teacher for --kd).

    python bench/bench_train_memory.py [--epochs 1] [--threads 2] [--buffer-frames 100000]
        [--kd exp/dnn/final.pt]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(config: str, out: Path, args: argparse.Namespace, teacher: str | None) -> dict:
    """One ``pykd train-nnet`` child process; returns its figures."""
    cmd = [
        sys.executable, "-m", "pykd", "train-nnet",
        "--model-config", config, "--train-config", args.train_config,
        "--max-epochs", str(args.epochs), "--num-threads", str(args.threads),
        "--buffer-frames", str(args.buffer_frames), "--device", "cpu",
    ]  # fmt: skip
    if teacher:
        cmd += ["--teacher", teacher]
    cmd += [args.data, args.ali_dir, args.gmm_dir, str(out)]
    out.mkdir(parents=True)
    log_path = out / "train.log"
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{log_path.read_text()[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    rates = [h["frames_per_s"] for h in summary["history"] if "frames_per_s" in h]
    peak_mb = usage.ru_maxrss / 1024  # Linux: kilobytes
    return {"wall_s": wall, "frames_per_s": sum(rates) / len(rates), "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--buffer-frames", type=int, default=100_000)
    parser.add_argument("--train-config", default="conf/train_nnet.yaml")
    parser.add_argument("--student", default="conf/student_hdnn.yaml")
    parser.add_argument("--teacher-config", default="conf/teacher_dnn_small.yaml")
    parser.add_argument("--kd", default=None, help="teacher final.pt: also time a KD run")
    parser.add_argument("--data", default="data/train_fbank")
    parser.add_argument("--ali-dir", default="exp/tri1_ali")
    parser.add_argument("--gmm-dir", default="exp/tri1")
    args = parser.parse_args()

    runs = [("student CE", args.student, None), ("teacher CE", args.teacher_config, None)]
    if args.kd:
        runs.insert(1, ("student KD", args.student, args.kd))
    print(f"{args.epochs} epoch(s), {args.threads} threads, buffer {args.buffer_frames} frames")
    print(f"{'run':<11} {'frames/s':>9} {'wall s':>7} {'peak RSS MB':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, config, teacher) in enumerate(runs):
            res = run_once(config, Path(tmp) / str(i), args, teacher)
            print(
                f"{name:<11} {res['frames_per_s']:>9,.0f} {res['wall_s']:>7.1f} "
                f"{res['peak_rss_mb']:>12,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
