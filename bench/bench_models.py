"""Forward and training throughput of the teacher DNN and the HDNN student (benchmark, not a test).

Prints frames/s and times real time (100 frames per second of speech) for the forward pass
with 1 and 2 CPU threads (and CUDA when available), and the throughput of training steps
(forward + backward + SGD update). Peak RSS of the process is printed at the end.

    python bench/bench_models.py [--num-pdfs 336] [--batch 1024] [--seconds 3] [--device auto]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch

from pykd.models import build_model, count_parameters, load_model_config, mflops_per_frame

REPO = Path(__file__).resolve().parents[1]
FRAMES_PER_SECOND_OF_SPEECH = 100  # 10 ms frame shift


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def forward_rate(model: torch.nn.Module, x: torch.Tensor, seconds: float) -> float:
    """Frames per second of ``model(x)`` in eval mode without gradients."""
    model.eval()
    with torch.no_grad():
        model(x)  # warm-up
        _sync(x.device)
        frames, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model(x)
            frames += x.shape[0]
        _sync(x.device)
        return frames / (time.perf_counter() - start)


def train_rate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seconds: float) -> float:
    """Frames per second of SGD steps with cross-entropy (forward + backward + update)."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    step()  # warm-up
    _sync(x.device)
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        frames += x.shape[0]
    _sync(x.device)
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-pdfs", type=int, default=336, help="336 = default corpus tri1")
    parser.add_argument("--input-dim", type=int, default=440)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    args = parser.parse_args()

    devices = ["cpu"]
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices.append("cuda")
    if args.device == "cpu":
        devices = ["cpu"]
    print(f"torch {torch.__version__}; batch {args.batch} frames; {args.num_pdfs} pdfs")
    header = f"{'model':<8} {'params':>11} {'MFLOPs/fr':>9} {'device':<7} {'threads':>7} "
    header += f"{'fwd fr/s':>10} {'fwd xRT':>8} {'train fr/s':>10} {'train xRT':>9}"
    print(header)
    models = (
        ("student", "student_hdnn.yaml"),
        ("teach-sm", "teacher_dnn_small.yaml"),  # the embedded corpus' teacher (5 x 1024)
        ("teacher", "teacher_dnn.yaml"),  # AMI's (6 x 2048)
    )
    for name, conf in models:
        cfg = load_model_config(REPO / "conf" / conf)
        model = build_model(cfg, args.input_dim, args.num_pdfs)
        params, mflops = count_parameters(model), mflops_per_frame(model, args.input_dim)
        for dev in devices:
            device = torch.device(dev)
            model = model.to(device)
            x = torch.randn(args.batch, args.input_dim, device=device)
            y = torch.randint(0, args.num_pdfs, (args.batch,), device=device)
            for threads in (1, 2) if dev == "cpu" else (0,):
                if threads:
                    torch.set_num_threads(threads)
                fwd = forward_rate(model, x, args.seconds)
                trn = train_rate(model, x, y, args.seconds)
                print(
                    f"{name:<8} {params:>11,} {mflops:>9.2f} {dev:<7} {threads or '-':>7} "
                    f"{fwd:>10,.0f} {fwd / FRAMES_PER_SECOND_OF_SPEECH:>8,.0f} "
                    f"{trn:>10,.0f} {trn / FRAMES_PER_SECOND_OF_SPEECH:>9,.0f}",
                    flush=True,
                )
            model = model.cpu()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
