"""What the network stages cost at AMI scale: memory, data-path speed and epoch time against the
training hours (benchmark; data from ``bench/make_ami_like.py``).

For each data set (e.g. 10, 40 and 80 hours) it runs, each in its own process so that the peak
RSS (``os.wait4``'s rusage) is that run's alone:

* **data path alone**: reading + CMVN + splicing + shuffling (``FrameShuffleDataset``), no
  model, over ``--data-frames`` frames; and the same with the set held in memory
  (``DeviceFrameDataset`` on ``--device``: load time, then frames/s);
* ``pykd train-nnet`` for ``--steps`` steps of the CE student, the KD student from the cached
  teacher posteriors, and the teacher (``--teacher-steps``): frames/s (median of the logged
  rates), time to the first step (reading alignments, CV pass), peak RSS.

The student's epoch time is the training frames over its measured rate; ``--full-epoch``
also trains one whole CE-student epoch on the first data set and reports its wall time.

    python bench/bench_ami_scale.py /tmp/ami10 /tmp/ami40 /tmp/ami80 [--device cpu|cuda]
        [--data-on-device] [--threads 2] [--out bench/results/ami_scale_cpu.md]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STEP_RATE = re.compile(r"epoch \d+ step \d+\S* loss \S+ lr \S+ (\d+) frames/s")


def child(cmd: list[str], log_path: Path) -> tuple[float, float]:
    """Run ``cmd`` (output to ``log_path``); returns (wall s, peak RSS MB). Exits on failure."""
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{log_path.read_text()[-3000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024  # Linux: kilobytes


def data_path(root: Path, frames: int, on_device: str | None) -> dict:
    """(Child process) the data path alone over ``frames`` frames; figures as a dict."""
    import torch  # noqa: PLC0415

    sys.path.insert(0, str(REPO))
    from pykd.data import FrameShuffleDataset, UtteranceSource, load_pdf_alignments  # noqa: PLC0415
    from pykd.data.device import DeviceFrameDataset  # noqa: PLC0415
    from pykd.frontend.spec import InputSpec  # noqa: PLC0415
    from pykd.kaldi.model_io import alignment_files  # noqa: PLC0415

    t0 = time.perf_counter()
    targets = load_pdf_alignments(
        alignment_files(root / "exp/tri1_ali"), root / "exp/tri1/final.mdl", compact=True
    )
    source = UtteranceSource.of_data_dir(root / "data/train", targets, InputSpec(cmvn="mean"))
    res = {"targets_s": time.perf_counter() - t0}
    if on_device:
        t0 = time.perf_counter()
        ds = DeviceFrameDataset(source, source.utterances, torch.device(on_device)).load()
        res["load_s"] = time.perf_counter() - t0
        if on_device.startswith("cuda"):
            res["device_mb"] = torch.cuda.max_memory_allocated() / 1e6
    else:
        ds = FrameShuffleDataset(source, source.utterances, batch_size=256)
    ds.set_epoch(1)
    seen, t0 = 0, time.perf_counter()
    for batch in ds:
        seen += len(batch[0])
        if seen >= frames:
            break
    if on_device and on_device.startswith("cuda"):
        torch.cuda.synchronize()
    res["frames_per_s"] = seen / (time.perf_counter() - t0)
    return res


def measure_data_path(root: Path, args: argparse.Namespace, on_device: str | None) -> dict:
    """:func:`data_path` in a child process, with its peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "res.json"
        cmd = [sys.executable, __file__, "--child-data-path", str(root), "--data-frames",
               str(args.data_frames), "--child-out", str(out)]  # fmt: skip
        if on_device:
            cmd += ["--child-device", on_device]
        wall, rss = child(cmd, Path(tmp) / "log")
        res = json.loads(out.read_text())
    return {**res, "peak_rss_mb": rss, "wall_s": wall}


def train(root: Path, work: Path, name: str, args: argparse.Namespace) -> dict:
    """One ``pykd train-nnet`` run of ``--steps`` steps; its figures."""
    teacher = name == "teacher CE"
    steps = args.teacher_steps if teacher else args.steps
    config = work / f"{name.replace(' ', '_')}.yaml"
    recipe = yaml.safe_load((REPO / "conf/train_nnet.yaml").read_text())["train"]
    recipe.update(buffer_frames=args.buffer_frames, cv_fraction=args.cv_fraction, plot=False,
                  stop_after_steps=steps, log_every_steps=max(steps // 8, 1),
                  checkpoint_every_steps=0, checkpoint_every_minutes=0)  # fmt: skip
    config.write_text(yaml.safe_dump({"train": recipe}))
    model = args.teacher_config if teacher else args.student_config
    cmd = [sys.executable, "-m", "pykd", "train-nnet", "--model-config", model, "--train-config",
           str(config), "--device", args.device, "--num-threads", str(args.threads)]  # fmt: skip
    if name == "student KD":
        cmd += ["--teacher-posts", str(root / "exp/teacher/posts_train")]
    if args.data_on_device:
        cmd += ["--data-on-device"]
    out = work / name.replace(" ", "_")
    cmd += [str(root / "data/train"), str(root / "exp/tri1_ali"), str(root / "exp/tri1"), str(out)]
    log = work / f"{out.name}.log"
    wall, rss = child(cmd, log)
    text = log.read_text()
    rates = [int(m) for m in STEP_RATE.findall(text)][1:] or [0]
    first = re.search(r"^(\d\d:\d\d:\d\d) INFO .*initial CV loss", text, re.M)
    start = re.search(r"^(\d\d:\d\d:\d\d) ", text, re.M)
    to_first = _seconds(first.group(1)) - _seconds(start.group(1)) if first and start else 0.0
    return {"frames_per_s": statistics.median(rates), "peak_rss_mb": rss, "wall_s": wall,
            "startup_s": to_first}  # fmt: skip


def _seconds(hms: str) -> float:
    h, m, s = (int(x) for x in hms.split(":"))
    return 3600 * h + 60 * m + s


def full_epoch(root: Path, work: Path, args: argparse.Namespace) -> float:
    """Wall seconds of one whole CE-student epoch (with its CV pass) on ``root``."""
    cmd = [sys.executable, "-m", "pykd", "train-nnet", "--model-config", args.student_config,
           "--train-config", str(REPO / "conf/train_nnet.yaml"), "--max-epochs", "1",
           "--cv-fraction", str(args.cv_fraction), "--device", args.device,
           "--num-threads", str(args.threads), str(root / "data/train"),
           str(root / "exp/tri1_ali"), str(root / "exp/tri1"), str(work / "epoch")]  # fmt: skip
    if args.data_on_device:
        cmd.insert(-4, "--data-on-device")
    wall, _ = child(cmd, work / "epoch.log")
    summary = json.loads((work / "epoch" / "summary.json").read_text())
    return float(summary["history"][-1]["epoch_s"]) if summary["history"] else wall


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module doc."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="*", type=Path, help="dirs written by make_ami_like.py")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data-on-device", action="store_true", help="train with --data-on-device")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--steps", type=int, default=800, help="student steps per run")
    ap.add_argument("--teacher-steps", type=int, default=80)
    ap.add_argument("--data-frames", type=int, default=3_000_000)
    ap.add_argument("--buffer-frames", type=int, default=100_000)
    ap.add_argument("--cv-fraction", type=float, default=0.002)
    ap.add_argument("--student-config", default=str(REPO / "conf/student_hdnn.yaml"))
    ap.add_argument("--teacher-config", default=str(REPO / "conf/teacher_dnn.yaml"))
    ap.add_argument("--full-epoch", action="store_true", help="one whole student epoch (1st set)")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    ap.add_argument("--child-data-path", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-device", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_data_path:
        res = data_path(args.child_data_path, args.data_frames, args.child_device)
        args.child_out.write_text(json.dumps(res))
        return 0

    mem = "on-device" if args.data_on_device else "streaming"
    lines = [
        f"Device {args.device}, torch threads {args.threads or 'default'}, {os.cpu_count()} "
        f"cores; training data path: {mem}; buffer {args.buffer_frames} frames; students "
        f"{args.steps} steps, teacher {args.teacher_steps} steps of 256 frames "
        "(conf/train_nnet.yaml: Adam).",
        "",
        "| hours | frames | data path: stream fps / RSS MB | in memory: load s / fps / RSS MB "
        "| student CE fps / RSS MB | student KD (cached) fps / RSS MB | teacher CE fps / RSS MB "
        "| start-up s (targets, CV) | student epoch s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for i, root in enumerate(args.data):
        info = json.loads((root / "info.json").read_text())
        stream = measure_data_path(root, args, None)
        held = measure_data_path(root, args, args.device)
        with tempfile.TemporaryDirectory() as tmp:
            runs = {n: train(root, Path(tmp), n, args)
                    for n in ("student CE", "student KD", "teacher CE")}  # fmt: skip
            ce = runs["student CE"]
            epoch = f"{info['frames'] / max(ce['frames_per_s'], 1):.0f} (projected)"
            if args.full_epoch and i == 0:
                epoch = f"{full_epoch(root, Path(tmp), args):.0f} (measured)"
        cells = [f"{info['hours']:.0f}", f"{info['frames'] / 1e6:.1f}M",
                 f"{stream['frames_per_s']:,.0f} / {stream['peak_rss_mb']:,.0f}",
                 f"{held['load_s']:.0f} / {held['frames_per_s']:,.0f} / "
                 f"{held['peak_rss_mb']:,.0f}"]  # fmt: skip
        cells += [f"{r['frames_per_s']:,.0f} / {r['peak_rss_mb']:,.0f}" for r in runs.values()]
        cells += [f"{ce['startup_s']:.0f}", epoch]
        line = "| " + " | ".join(cells) + " |"
        lines.append(line)
        print(line, flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
