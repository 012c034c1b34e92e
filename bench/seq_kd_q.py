"""Sequence training with the teacher as regulariser, over seeds (issue 16, item 4): dev / eval
WER of the sMBR student and of the sMBR+KD students of a q sweep, q chosen on dev (the lowest
mean dev WER over seeds, eval never looked at), and whether sMBR+KD at that q beats sMBR alone,
seed by seed (paired: the same seed's KD student, teacher and denominator lattices).

The systems are what ``./run.sh --stage 12 --stop-stage 12 --seq-nets "teacher student
student_kd" --seq-kd-q "0.2 0.5 0.8" [--nnet-exp exp/seeds/seedN --seed N]`` leaves in each
seed's dir (``exp`` for the main seed, ``exp/seeds/seed<N>`` from ``local/run_seeds.sh``)::

    python bench/seq_kd_q.py RECIPE --qs "0.2 0.5 0.8" [--criterion smbr] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kd_levers import seed_dirs, wer_pair  # noqa: E402  (bench/, the script's own dir)


def pm(values: list[float], signed: bool = False) -> str:
    """``mean +- sd`` (sample sd; the mean alone for one value); ``signed``: ``+0.12``."""
    a = np.asarray(values, dtype=float)
    mean = f"{a.mean():+.2f}" if signed else f"{a.mean():.2f}"
    return mean if len(a) < 2 else f"{mean} +- {a.std(ddof=1):.2f}"


def table(recipe: Path, qs: list[str], crit: str, main_seed: str) -> str:
    """The Markdown report: one row per seed, a mean row, the dev-chosen q and the paired
    comparison with sequence training alone."""
    systems = {"KD student (start)": "hdnn_kd", crit: f"hdnn_{crit}"}
    systems |= {f"{crit}+KD q={q}": f"hdnn_{crit}_kd_q{q}" for q in qs}
    per_seed: dict[str, dict[str, tuple[float, float]]] = {}
    left_out = []
    for seed, d in seed_dirs(recipe, main_seed).items():
        got = {name: wer_pair(recipe, d / s) for name, s in systems.items()}
        missing = [systems[n] for n, v in got.items() if v is None]
        if missing:
            left_out.append(f"seed {seed} ({d}): {', '.join(missing)} not decoded, left out")
            continue
        per_seed[seed] = got  # type: ignore[assignment]
    if not per_seed:
        raise SystemExit(f"{recipe}: no seed has every system decoded ({'; '.join(left_out)})")
    names = list(systems)
    head = "| seed | " + " | ".join(f"{n} dev / eval" for n in names) + " |"
    lines = [head, "|" + "---|" * (len(names) + 1)]
    for seed, got in per_seed.items():
        cells = [f"{got[n][0]:.2f} / {got[n][1]:.2f}" for n in names]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    mean_dev = {n: float(np.mean([g[n][0] for g in per_seed.values()])) for n in names}
    cells = [
        f"{pm([g[n][0] for g in per_seed.values()])} / {pm([g[n][1] for g in per_seed.values()])}"
        for n in names
    ]
    lines.append("| mean +- sd | " + " | ".join(cells) + " |")
    best_q = min(qs, key=lambda q: (mean_dev[f"{crit}+KD q={q}"], float(q)))
    best = f"{crit}+KD q={best_q}"
    diff_dev = [g[best][0] - g[crit][0] for g in per_seed.values()]
    diff_eval = [g[best][1] - g[crit][1] for g in per_seed.values()]
    wins_dev = sum(d < 0 for d in diff_dev)
    wins_eval = sum(d < 0 for d in diff_eval)
    n = len(per_seed)
    verdict = "beats" if np.mean(diff_dev) < 0 and np.mean(diff_eval) < 0 else "does not beat"
    notes = [
        "",
        f"- q chosen on dev (lowest mean dev WER over {n} seeds): **q = {best_q}**.",
        f"- {crit}+KD (q = {best_q}) - {crit} alone, per seed (dev / eval): "
        + ", ".join(f"{a:+.2f} / {b:+.2f}" for a, b in zip(diff_dev, diff_eval, strict=True))
        + f"; mean {pm(diff_dev, signed=True)} / {pm(diff_eval, signed=True)}; better in "
        f"{wins_dev} / {wins_eval} of {n} seeds: {crit}+KD {verdict} {crit} alone on both sets.",
        *(f"- {x}" for x in left_out),
    ]
    return "\n".join(lines + notes) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", type=Path, help="recipe dir (exp/ and exp/seeds/seed<N>/)")
    ap.add_argument("--qs", default="0.2 0.5 0.8", help="the q values swept (default: %(default)s)")
    ap.add_argument("--criterion", default="smbr", help="sequence criterion (default: smbr)")
    ap.add_argument("--main-seed", default="1", help="the seed of exp/ (default: 1)")
    ap.add_argument("--out", type=Path, help="also write the report here (Markdown)")
    args = ap.parse_args()
    text = table(args.recipe.resolve(), args.qs.split(), args.criterion, args.main_seed)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
