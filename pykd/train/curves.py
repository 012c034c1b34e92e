"""Learning-curve PNG: train/CV loss and CV frame accuracy per epoch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pykd.io.atomic import atomic_path


def plot_learning_curves(
    history: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = ""
) -> Path:
    """Plot ``history`` rows (epoch, train_loss, cv_loss, cv_acc, accepted) to a PNG, atomically.

    Row 0 may be the initial CV pass (train_loss None). Rejected epochs are drawn as crosses.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ep = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    tr = [(r["epoch"], r["train_loss"]) for r in history if r.get("train_loss") is not None]
    if tr:
        ax1.plot(*zip(*tr, strict=True), "o-", label="train loss")
    ax1.plot(ep, [r["cv_loss"] for r in history], "s-", label="CV loss")
    rej = [(r["epoch"], r["cv_loss"]) for r in history if r.get("accepted") is False]
    if rej:
        ax1.plot(*zip(*rej, strict=True), "rx", markersize=10, label="rejected")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(ep, [100.0 * r["cv_acc"] for r in history], "s-", color="tab:green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("CV frame accuracy (%)")
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return save_figure(fig, path, title)


def save_figure(fig: Any, path: str | os.PathLike, title: str = "") -> Path:
    """Write a matplotlib figure (with an optional title) to ``path`` as a PNG, atomically,
    and close it."""
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return path
