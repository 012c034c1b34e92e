"""KD lever ablation over seeds (issue 16): one line per lever with the mean dev / eval WER of
its KD student, the paired KD - CE difference (mean +- sd over seeds), the number of seeds in
which KD beats CE and the share of the teacher-student gap closed.

A lever is a KD student system (a dir name under each seed's dir) of a recipe dir that
``local/run_seeds.sh`` ran: the seeds are ``exp`` (the main seed) and ``exp/seeds/seed<N>``;
each seed's teacher is ``dnn`` and its CE student ``hdnn_ce`` in the same dir, so every
difference is paired (the same seed's CE student, the same teacher)::

    python bench/kd_levers.py \\
        --lever "recipe: p = 1, T = 1" RECIPE hdnn_kd \\
        --lever "+ 1 h untranscribed audio" RECIPE hdnn_kd_untrans \\
        [--out bench/results/kd_levers_default.md]

Seeds where a lever's system is not decoded are left out of that lever's line (and counted).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from untrans_curve import point  # noqa: E402  (bench/, the script's own dir)

from pykd.report.bootstrap import decode_dir_errors, probability_of_improvement  # noqa: E402
from pykd.report.results import SetWer, gap_share  # noqa: E402

PAIRED_NOTE = (
    "P(KD better): the paired bootstrap probability that the KD student makes fewer errors "
    "than its CE twin (Bisani & Ney; 10,000 resampled test sets of utterances; "
    "pykd/report/bootstrap.py, Kaldi's compute-wer-bootci figures); >= 0.95: a difference the "
    "test set resolves."
)


def seed_dirs(recipe: Path, main_seed: str) -> dict[str, Path]:
    """seed -> the dir (relative to ``recipe``) holding that seed's dnn / hdnn_ce / students."""
    dirs = {main_seed: Path("exp")}
    for d in sorted((recipe / "exp" / "seeds").glob("seed*")):
        dirs[d.name.removeprefix("seed")] = d.relative_to(recipe)
    return dirs


def scored_pair(recipe: Path, sys_dir: Path) -> tuple[SetWer, SetWer] | None:
    """(dev at its best setting, eval at dev's) of ``recipe/sys_dir`` with their settings,
    None when not decoded and scored."""
    dev, test = point(recipe, sys_dir)
    return None if dev is None or test is None else (dev, test)


def wer_pair(recipe: Path, sys_dir: Path) -> tuple[float, float] | None:
    """(dev WER at its best setting, eval WER at dev's) of ``recipe/sys_dir``, None when not
    decoded and scored."""
    pair = scored_pair(recipe, sys_dir)
    return None if pair is None else (pair[0].wer, pair[1].wer)


def improvement(recipe: Path, ce_dir: Path, ce: tuple, kd_dir: Path, kd: tuple) -> list[float]:
    """Paired bootstrap probability that the KD student errs less than the CE student, dev and
    eval (pykd.report.bootstrap; each at its dev setting)."""
    probs = []
    for set_name, ce_wer, kd_wer in zip(("dev", "eval"), ce, kd, strict=True):
        a, b = (
            decode_dir_errors(recipe / d / f"decode_{set_name}", w.setting.lmwt, w.setting.wip)
            for d, w in ((ce_dir, ce_wer), (kd_dir, kd_wer))
        )
        probs.append(probability_of_improvement(a, b))
    return probs


def cv_accuracy(nnet_dir: Path) -> float:
    """CV frame accuracy (%) of a trained network (its summary.json; NaN when not there)."""
    summary = nnet_dir / "summary.json"
    if not summary.is_file():
        return float("nan")
    return 100.0 * float(json.loads(summary.read_text()).get("cv_acc") or float("nan"))


def acc_cell(accs: np.ndarray) -> str:
    """``+1.07 +- 0.30 points (3 / 3)`` from seeds x (CE, KD) CV frame accuracies, or ``-``."""
    diff = accs[:, 1] - accs[:, 0]
    if np.isnan(diff).any():
        return "-"
    spread = f" +- {diff.std(ddof=1):.2f}" if len(diff) > 1 else ""
    return f"{diff.mean():+.2f}{spread} points ({int((diff > 0).sum())} / {len(diff)})"


def lever_line(name: str, recipe: Path, system: str, main_seed: str) -> tuple[str, list[str]]:
    """The Markdown row of one lever and the per-seed detail lines."""
    rows = []
    probs = []
    accs: list[tuple[float, float]] = []
    detail = []
    for seed, d in seed_dirs(recipe, main_seed).items():
        sets = [scored_pair(recipe, d / s) for s in ("dnn", "hdnn_ce", system)]
        if any(w is None for w in sets):
            detail.append(f"  - seed {seed}: {d / system} not decoded, left out")
            continue
        probs.append(improvement(recipe, d / "hdnn_ce", sets[1], d / system, sets[2]))
        accs.append(tuple(cv_accuracy(recipe / d / s) for s in ("hdnn_ce", system)))
        t, ce, kd = ((w[0].wer, w[1].wer) for w in sets)  # type: ignore[index]
        rows.append((t, ce, kd))
        detail.append(
            f"  - seed {seed}: teacher {t[0]:.2f} / {t[1]:.2f}, CE {ce[0]:.2f} / {ce[1]:.2f}, "
            f"KD {kd[0]:.2f} / {kd[1]:.2f}, KD - CE {kd[0] - ce[0]:+.2f} / {kd[1] - ce[1]:+.2f}, "
            f"P(KD better) {probs[-1][0]:.2f} / {probs[-1][1]:.2f}, CV frame accuracy CE "
            f"{accs[-1][0]:.2f}% KD {accs[-1][1]:.2f}%"
        )
    if not rows:
        return f"| {name} | 0 | - | - | - | - | - | - | - | - |", detail
    a = np.array(rows)  # seeds x (teacher, CE, KD) x (dev, eval)
    diff = a[:, 2, :] - a[:, 1, :]
    sd = diff.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(2)
    kd_sd = a[:, 2, :].std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(2)
    mean = a.mean(axis=0)
    shares = [gap_share(mean[1, i], mean[2, i], mean[0, i]) for i in range(2)]

    def pm(value: float, spread: float, sign: str = "") -> str:  # one seed: no spread to show
        return f"{value:{sign}.2f}" + (f" +- {spread:.2f}" if len(rows) > 1 else "")

    cells = [
        name,
        str(len(rows)),
        f"{mean[0, 0]:.2f} / {mean[0, 1]:.2f}",
        f"{mean[1, 0]:.2f} / {mean[1, 1]:.2f}",
        f"{pm(mean[2, 0], kd_sd[0])} / {pm(mean[2, 1], kd_sd[1])}",
        f"{pm(diff[:, 0].mean(), sd[0], '+')} / {pm(diff[:, 1].mean(), sd[1], '+')}",
        f"{int((diff[:, 0] < 0).sum())} / {int((diff[:, 1] < 0).sum())}",
        " / ".join(str(int((np.array(probs)[:, i] >= 0.95).sum())) for i in range(2)),
        acc_cell(np.array(accs)),
        " / ".join("n/a" if s is None else f"{s:.0f}%" for s in shares),
    ]
    return "| " + " | ".join(cells) + " |", detail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--lever", nargs=3, action="append", required=True, metavar=("NAME", "RECIPE", "SYSTEM"),
        help="a lever: its name, the recipe dir run_seeds.sh ran, the KD student's dir name in "
        "each seed's dir",
    )  # fmt: skip
    ap.add_argument("--main-seed", default="1", help="the seed of RECIPE/exp (default 1)")
    ap.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    args = ap.parse_args()
    lines = [
        "| lever | seeds | teacher dev / eval | CE student dev / eval | KD student dev / eval "
        "(mean +- sd) | KD - CE dev / eval (mean +- sd) | seeds where KD beats CE (dev / eval) "
        "| of them with P(KD better) >= 0.95 (dev / eval) | KD - CE CV frame accuracy (mean +- sd; "
        "seeds where KD's is higher) | gap closed dev / eval (of the means) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    details = []
    for name, recipe, system in args.lever:
        row, detail = lever_line(name, Path(recipe).resolve(), system, args.main_seed)
        lines.append(row)
        details += [f"- {name} (`{recipe}`, `{system}`):", *detail]
    command = "python bench/kd_levers.py " + " ".join(
        f'--lever "{n}" {r} {s}' for n, r, s in args.lever
    )
    text = "\n".join([*lines, "", PAIRED_NOTE, "", "Per seed (dev / eval, eval at dev's setting):",
                      "", *details, "", f"Command: `{command}`", ""])  # fmt: skip
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
