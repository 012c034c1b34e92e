"""KD from untranscribed audio: WER of the KD student against the hours of untranscribed speech
the teacher labelled (issue 16's curve), from recipe dirs run with ``--untrans-minutes M``.

Each recipe dir gives one point: ``exp/hdnn_kd`` (0 untranscribed minutes: the transcribed
training set alone) and ``exp/hdnn_kd_untrans`` (the same + ``data/untrans``), both decoded by
run.sh stage 10; eval is scored at dev's LM weight / insertion penalty.

    python bench/untrans_curve.py RECIPE_60 RECIPE_120 [--out bench/results/untrans_curve.md]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pykd.io.datadir import read_table  # noqa: E402
from pykd.report.results import pair_wers, signed_change  # noqa: E402


def minutes(data_dir: Path) -> float:
    """Speech minutes of a data dir (utt2dur, else frames / 100 from utt2num_frames)."""
    if (data_dir / "utt2dur").is_file():
        return sum(float(v) for v in read_table(data_dir / "utt2dur").values()) / 60
    frames = read_table(data_dir / "utt2num_frames")
    return sum(int(v) for v in frames.values()) / 100 / 60


def point(recipe: Path, sys_dir: str | Path) -> tuple:
    """(dev WER, eval WER at dev's setting) of ``recipe/sys_dir`` (``sys_dir`` relative to the
    recipe, e.g. ``exp/hdnn_kd``); None where not decoded. Also read by bench/kd_levers.py."""
    cwd = os.getcwd()
    os.chdir(recipe)  # decode dirs name their files relative to the recipe dir
    try:
        return pair_wers(Path(sys_dir) / "decode_dev", Path(sys_dir) / "decode_eval", "dev", "eval")
    finally:
        os.chdir(cwd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipes", nargs="+", type=Path, help="recipe dirs run with --untrans-minutes")
    ap.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    args = ap.parse_args()
    first = args.recipes[0].resolve()
    train_min = minutes(first / "data/train_fbank")
    base_dev, base_eval = point(first, "exp/hdnn_kd")
    lines = [
        "| untranscribed speech (min) | x transcribed | KD student dev WER | eval WER (dev's "
        "setting) | change vs no untranscribed (dev / eval) |",
        "|---|---|---|---|---|",
        f"| 0 | 0 | {base_dev.wer:.2f} | {base_eval.wer:.2f} | - |",
    ]
    for recipe in map(Path.resolve, args.recipes):
        extra = minutes(recipe / "data/untrans_fbank")
        dev, test = point(recipe, "exp/hdnn_kd_untrans")
        lines.append(
            f"| {extra:.1f} | {extra / train_min:.2f} | {dev.wer:.2f} | {test.wer:.2f} | "
            f"{signed_change(dev, base_dev)} / {signed_change(test, base_eval)} |"
        )
    note = (
        f"\nTranscribed training speech: {train_min:.1f} min. Teacher: exp/dnn (the same in every "
        "point); KD p = 1, T = 1, the recipe's schedule. Command: python bench/untrans_curve.py "
        + " ".join(str(r) for r in args.recipes)
        + "\n"
    )
    text = "\n".join(lines) + "\n" + note
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
