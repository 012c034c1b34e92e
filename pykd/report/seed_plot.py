"""PNG of KD against CE over seeds: per seed and set, the paired WER difference KD - CE with
its bootstrap 95% interval, one series per kind of KD student (transcribed audio only, with
untranscribed audio, with speed-perturbed copies)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from pykd.report.bootstrap import PairedComparison
from pykd.train.curves import save_figure

# series label -> seed -> (tune-set comparison, test-set comparison), CE student as the base
SeedComparisons = Mapping[str, Mapping[str, tuple[PairedComparison, PairedComparison]]]


def plot_kd_seeds(
    series: SeedComparisons,
    path: str | os.PathLike,
    set_names: Sequence[str] = ("dev", "eval"),
) -> Path:
    """One panel per set: for each seed, each series' KD - CE WER difference (a marker) and its
    paired bootstrap 95% interval (a bar); a dashed line at each series' mean over the seeds.
    Below zero, KD is better. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not series:
        raise ValueError("plot_kd_seeds: no seed comparisons to plot")
    seeds = sorted({s for by_seed in series.values() for s in by_seed}, key=_seed_order)
    fig, axes = plt.subplots(1, len(set_names), figsize=(5 * len(set_names), 4), sharey=True)
    width = 0.6 / len(series)
    for panel, (ax, set_name) in enumerate(zip(axes, set_names, strict=True)):
        ax.axhline(0.0, color="black", linewidth=0.8)
        for k, (label, by_seed) in enumerate(series.items()):
            xs, ys, lows, highs = [], [], [], []
            for i, seed in enumerate(seeds):
                if seed not in by_seed:
                    continue
                cmp = by_seed[seed][panel]
                xs.append(i + (k - (len(series) - 1) / 2) * width)
                ys.append(cmp.difference)
                lows.append(cmp.difference - cmp.low)
                highs.append(cmp.high - cmp.difference)
            mean = sum(ys) / len(ys)
            bars = ax.errorbar(xs, ys, yerr=[lows, highs], fmt="o", capsize=4,
                               label=f"{label} (mean {mean:+.2f})")  # fmt: skip
            ax.axhline(mean, color=bars[0].get_color(), linestyle="--", linewidth=0.8)
        ax.set_xticks(range(len(seeds)), [f"seed {s}" for s in seeds])
        ax.set_title(set_name)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize="small")
    axes[0].set_ylabel("KD - CE WER (absolute %; < 0: KD better)")
    return save_figure(fig, path, "KD - CE per seed, paired bootstrap 95% intervals")


def _seed_order(seed: str) -> tuple[int, str]:
    """Integer seeds in numeric order, any other name after them."""
    return (int(seed), "") if seed.lstrip("-").isdigit() else (1 << 30, seed)
