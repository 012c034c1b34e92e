"""Footprint of the deployed models (benchmark): teacher, student fp32, student int8 and, for the
issue's size target, a 4000-pdf student (random weights, the paper's output size).

For each exported file (``pykd export-model``; made here when missing) it prints parameters, file
size, MFLOPs per frame, and, from a process that only loads the file with onnxruntime (no torch)
and computes the log-likelihoods of the dev set's raw fbank on **one thread**:

* frames/s over whole utterances (median of ``--repeats`` passes) and the real-time factor
  (x real time = frames/s / 100 frames per second of audio);
* latency of one streaming chunk (``--chunk-frames``, median over the set's chunks);
* peak RSS of that process (its VmHWM).

WERs come from the recipe's decodes: the checkpoints' (per-speaker CMVN) and the exported
student's (``exp/hdnn_kd/export/decode_{dev,eval}_{fp32,int8}``, run.sh stage 14). The student's
figures also go to ``exp/hdnn_kd/export/footprint.json``, which RESULTS.md's deployed-models
table reads.

    python bench/bench_footprint.py --recipe . [--repeats 5] [--out bench/results/footprint.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRAMES_PER_AUDIO_SECOND = 100  # 10 ms frame shift (conf/fbank.conf)


def worker(model_path: str, data_dir: str, repeats: int, chunk: int, max_frames: int) -> None:
    """(Child process) load the file, time the set; print one JSON line."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import kaldiio  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    sys.path.insert(0, str(REPO))
    from pykd.deploy.runtime import ExportedModel  # noqa: PLC0415

    feats, total = [], 0
    for _utt, m in kaldiio.load_scp_sequential(str(Path(data_dir) / "feats.scp")):
        feats.append(np.ascontiguousarray(m, dtype=np.float32))
        total += len(m)
        if total >= max_frames:
            break
    start = time.perf_counter()
    model = ExportedModel(model_path, num_threads=1)
    load_s = time.perf_counter() - start
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        for f in feats:
            model.utterance(f)
        passes.append(time.perf_counter() - start)
    chunk_ms = []
    for f in feats:
        stream = model.stream()
        for t in range(0, len(f), chunk):
            stream.accept(f[t : t + chunk])
        stream.finish()
        chunk_ms += [1000 * s for s in stream.chunk_seconds[:-1]]  # the flush is not a chunk
    fps = total / statistics.median(passes)
    # VmHWM: this process's peak RSS since exec (ru_maxrss would count the forked parent's pages)
    status = Path("/proc/self/status").read_text()
    hwm_kb = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM:")))
    print(json.dumps({
        "frames": total, "load_s": load_s, "frames_per_second": fps,
        "times_real_time": fps / FRAMES_PER_AUDIO_SECOND,
        "chunk_ms_median": statistics.median(chunk_ms), "chunk_frames": chunk,
        "bytes": Path(model_path).stat().st_size, "info": model.info.describe(),
        "num_params": model.info.num_params, "mflops_per_frame": model.info.mflops_per_frame,
        "peak_rss_mb": hwm_kb / 1024,
    }))  # fmt: skip


def measure(model: Path, data: Path, args: argparse.Namespace) -> dict:
    """Run the worker in its own process (its figures, peak RSS included)."""
    cmd = [sys.executable, __file__, "--worker", str(model), "--data", str(data),
           "--repeats", str(args.repeats), "--chunk-frames", str(args.chunk_frames),
           "--max-frames", str(args.max_frames)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env)
        status = proc.wait()
        out.seek(0)
        err.seek(0)
        if status != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err.read()[-3000:]}")
        return json.loads(out.read().strip().splitlines()[-1])


def export(ckpt: Path, out: Path, recipe: Path, int8: bool) -> None:
    """``pykd export-model`` (online CMVN from the training set's global stats) when missing."""
    if (out / "export.json").is_file():
        return
    cmd = [str(REPO / ".venv/bin/pykd"), "export-model", "--global-cmvn-data",
           str(recipe / "data/train_fbank"), "--int8", str(int8).lower()]  # fmt: skip
    counts = ckpt.parent / "prior.counts"
    if counts.is_file():
        cmd += ["--prior-counts", str(counts)]
    subprocess.run([*cmd, str(ckpt), str(out)], check=True, capture_output=True)


def random_student(out: Path, num_pdfs: int) -> Path:
    """A conf/student_hdnn.yaml student with ``num_pdfs`` outputs and random weights."""
    import torch  # noqa: PLC0415
    import yaml  # noqa: PLC0415

    sys.path.insert(0, str(REPO))
    from pykd.models import build_model, model_config_from_dict  # noqa: PLC0415

    cfg = yaml.safe_load((REPO / "conf/student_hdnn.yaml").read_text())["model"]
    model = build_model(model_config_from_dict(cfg), 440, num_pdfs)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "final.pt"
    torch.save({"model_config": cfg, "state_dict": model.state_dict(), "num_pdfs": num_pdfs,
                "input": {"splice": 5, "cmvn": "mean"}}, ckpt)  # fmt: skip
    return ckpt


def wers(recipe: Path, tune: Path, test: Path) -> str:
    """'dev / eval' WER cell (eval at dev's setting) of two decode dirs, or '-'."""
    sys.path.insert(0, str(REPO))
    from pykd.report.results import pair_wers  # noqa: PLC0415

    cwd = os.getcwd()
    os.chdir(recipe)
    try:
        a, b = pair_wers(tune, test, "dev", "eval")
    finally:
        os.chdir(cwd)
    return f"{'-' if a is None else f'{a.wer:.2f}'} / {'-' if b is None else f'{b.wer:.2f}'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", type=Path, default=Path("."), help="a recipe dir after stage 14")
    ap.add_argument("--repeats", type=int, default=5, help="timed passes over the set")
    ap.add_argument("--chunk-frames", type=int, default=20, help="streaming chunk (frames)")
    ap.add_argument("--max-frames", type=int, default=60000, help="dev frames timed (first N)")
    ap.add_argument("--big-pdfs", type=int, default=4000, help="outputs of the size-target row")
    ap.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.repeats, args.chunk_frames, args.max_frames)
        return
    recipe = args.recipe.resolve()
    exp, data = recipe / "exp", recipe / "data/dev_fbank"
    student = exp / "hdnn_kd/export"
    if not (student / "export.json").is_file():
        raise SystemExit(f"{student}/export.json is missing: run ./run.sh --stage 14 first")
    scratch = Path(tempfile.mkdtemp(prefix="footprint_"))
    export(exp / "dnn/final.pt", scratch / "teacher", recipe, int8=False)
    big = random_student(scratch / f"student{args.big_pdfs}", args.big_pdfs)
    export(big, scratch / f"student{args.big_pdfs}/export", recipe, int8=True)
    big_dir = scratch / f"student{args.big_pdfs}/export"
    rows = [
        ("teacher (checkpoint exp/dnn)", scratch / "teacher/model.onnx",
         wers(recipe, exp / "dnn/decode_dev", exp / "dnn/decode_eval")),
        ("student KD fp32", student / "model.onnx",
         wers(recipe, student / "decode_dev_fp32", student / "decode_eval_fp32")),
        ("student KD int8", student / "model.int8.onnx",
         wers(recipe, student / "decode_dev_int8", student / "decode_eval_int8")),
        (f"student {args.big_pdfs} pdfs fp32 (random weights)", big_dir / "model.onnx", "-"),
        (f"student {args.big_pdfs} pdfs int8 (random weights)", big_dir / "model.int8.onnx", "-"),
    ]  # fmt: skip
    head = (
        "| model | parameters | file KB | MFLOPs/frame | 1-thread frames/s | x real time | "
        f"{args.chunk_frames}-frame chunk ms | load s | peak RSS MB | WER dev / eval |"
    )
    lines = [head, "|" + "---|" * 10]
    footprint = {}
    for name, path, wer in rows:
        f = measure(path, data, args)
        lines.append(
            f"| {name} | {f['num_params']:,} | {f['bytes'] / 1024:,.0f} | "
            f"{f['mflops_per_frame']:.2f} | {f['frames_per_second']:,.0f} | "
            f"{f['times_real_time']:,.0f} | {f['chunk_ms_median']:.2f} | {f['load_s']:.2f} | "
            f"{f['peak_rss_mb']:.0f} | {wer} |"
        )
        print(lines[-1], flush=True)
        if path.parent == student:
            footprint["int8" if "int8" in path.name else "fp32"] = f
    (student / "footprint.json").write_text(json.dumps(footprint, indent=1) + "\n")
    note = (
        f"\n{footprint['fp32']['frames']:,} dev frames, median of {args.repeats} passes, one "
        f"thread (onnxruntime intra-op 1), {os.cpu_count()} cores on the machine; teacher and "
        "student WERs: checkpoint decodes with per-speaker CMVN, exported student: its own "
        "online CMVN, streamed. Command: python bench/bench_footprint.py --recipe "
        f"{args.recipe}\n"
    )
    print(note)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n" + note)


if __name__ == "__main__":
    main()
