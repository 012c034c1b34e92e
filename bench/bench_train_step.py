"""Where a frame-level training step's time goes: forward + backward against the optimiser update
(benchmark, not a test).

For each network config, matrix-product precision (float32, bfloat16 autocast) and Adam
implementation (PyTorch's per-tensor loop; pykd's default ``OnePassAdam``, the same update bit for
bit in one pass, ``pykd/train/adam.py``; ``foreach``; ``fused``, pykd's ``fused_adam: true``, see
``pykd/train/optimizers.py``) it prints the median milliseconds of
forward + backward and of ``optimizer.step()`` over a batch, and the frames/s of the whole step,
as the recipe's trainer runs it (flushed denormals, the given torch threads).

    python bench/bench_train_step.py [--configs conf/teacher_dnn_small.yaml conf/student_hdnn.yaml]
        [--threads 2] [--batch 256] [--steps 60]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

from pykd.models import build_model, count_parameters, load_model_config
from pykd.train.adam import OnePassAdam
from pykd.train.distributed import setup_torch
from pykd.train.precision import native_bf16

REPO = Path(__file__).resolve().parents[1]
ADAM_KINDS = {
    "per-tensor": (torch.optim.Adam, {"foreach": False}),
    "one-pass": (OnePassAdam, {}),
    "foreach": (torch.optim.Adam, {"foreach": True}),
    "fused": (torch.optim.Adam, {"fused": True}),
}


def time_steps(
    model: torch.nn.Module,
    adam: tuple[type, dict],
    dtype: torch.dtype | None,
    batch: int,
    steps: int,
) -> tuple[float, float]:
    """Median seconds of forward + backward and of the Adam step over ``steps`` batches."""
    x = torch.randn(batch, 440)
    y = torch.randint(0, 336, (batch,))
    cls, options = adam
    opt = cls(model.parameters(), lr=1e-3, **options)
    fb, up = [], []
    for i in range(steps + 5):  # 5 warm-up steps
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(x)
        loss = torch.nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t1 = time.perf_counter()
        opt.step()
        t2 = time.perf_counter()
        if i >= 5:
            fb.append(t1 - t0)
            up.append(t2 - t1)
    return statistics.median(fb), statistics.median(up)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--configs",
        nargs="+",
        default=[str(REPO / "conf/teacher_dnn_small.yaml"), str(REPO / "conf/student_hdnn.yaml")],
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    setup_torch(args.threads, "cpu")
    dtypes: list[torch.dtype | None] = [None]
    if native_bf16(torch.device("cpu")):
        dtypes.append(torch.bfloat16)
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, median of "
        f"{args.steps} steps; bfloat16 rows only where the CPU multiplies it natively"
    )
    print("| network | params | products | Adam | fwd+bwd ms | step ms | frames/s |")
    print("|---|---|---|---|---|---|---|")
    for path in args.configs:
        torch.manual_seed(0)
        base = build_model(load_model_config(path), 440, 336)
        for dtype in dtypes:
            for kind, adam in ADAM_KINDS.items():
                fb, up = time_steps(copy.deepcopy(base), adam, dtype, args.batch, args.steps)
                name = str(dtype or torch.float32).removeprefix("torch.")
                print(
                    f"| {Path(path).stem} | {count_parameters(base):,} | {name} | {kind} | "
                    f"{fb * 1e3:.1f} | {up * 1e3:.2f} | {args.batch / (fb + up):,.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
