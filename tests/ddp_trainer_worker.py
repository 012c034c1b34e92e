"""One rank of ``test_trainer.py::test_two_process_cpu_ddp``, launched by torchrun.

    torchrun --standalone --nproc-per-node 2 tests/ddp_trainer_worker.py OUT_DIR

Each rank starts from different weights (DDP must broadcast rank 0's), trains the test's MLP on
its shard of the blobs and saves its final weights and summary to ``OUT_DIR/rank<r>.pt``.
"""

from __future__ import annotations

import faulthandler
import sys
from pathlib import Path

import torch
from test_trainer import cv_batches, make_mlp, train_batches  # tests/ is sys.path[0]

from pykd.train import distributed as ddp
from pykd.train.losses import ce_loss
from pykd.train.schedule import NewbobConfig
from pykd.train.trainer import TrainConfig, Trainer


def main(out: str) -> None:
    faulthandler.enable(all_threads=True)  # a fatal signal prints every thread's Python stack
    torch.set_num_threads(1)
    with ddp.process_group("cpu") as info:
        rank, world = info.rank, info.world_size
        model = make_mlp(seed=rank)
        cfg = TrainConfig(lr=0.5, device="cpu", plot=True, newbob=NewbobConfig(max_epochs=2))
        trainer = Trainer(
            model,
            None,
            ce_loss,
            lambda e: train_batches(e, rank=rank, world=world),
            lambda: cv_batches(rank, world),
            cfg,
            out,
        )
        summary = trainer.fit()
        state = {"model": trainer.module.state_dict(), "summary": summary}
        torch.save(state, Path(out) / f"rank{rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
