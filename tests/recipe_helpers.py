"""End-to-end test helpers: scratch recipe dirs and ./run.sh calls, with or without Kaldi."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

LINKED = (
    "run.sh", "path.sh", "cmd.sh", "conf", "local", "steps_kd", "utils_kd", "tools", ".venv",
    "requirements.txt", "pyproject.toml",
)  # fmt: skip
# The tiny models are weak: narrow beams keep their decodes short.
TINY_DECODE_OPTS = ("--decode-opts", "--beam 8 --lattice-beam 4")


def make_recipe_dir(repo_root: Path, work: Path) -> Path:
    """A fresh recipe dir whose code is the repo's (symlinks) and whose data/exp are its own."""
    recipe = work / "recipe"
    recipe.mkdir(parents=True)
    for name in LINKED:
        (recipe / name).symlink_to(repo_root / name)
    return recipe


def recipe_env(kaldi_root: Path | None = None) -> dict[str, str]:
    """The environment of a recipe run: KALDI_ROOT set to ``kaldi_root``, or removed."""
    env = {k: v for k, v in os.environ.items() if k != "KALDI_ROOT"}
    if kaldi_root is not None:
        env["KALDI_ROOT"] = str(kaldi_root)
    return env


def run_recipe(
    recipe: Path, *args: str, kaldi_root: Path | None = None, size: str = "tiny"
) -> subprocess.CompletedProcess:
    """./run.sh --size tiny --nj 2 --decode-nj 2 <args> (two jobs per decode, so that the tests
    see a decode's jobs merged; the recipe's default on 2 cores is one per set), failing with the
    end of its output."""
    proc = subprocess.run(
        ["./run.sh", "--skip-install", "true", "--size", size, "--nj", "2", "--decode-nj", "2",
         *args],
        cwd=recipe, env=recipe_env(kaldi_root), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"run.sh {args} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def run_tiny_recipe_all_stages(
    recipe: Path,
    kaldi_root: Path | None = None,
    seq_criteria: str = "smbr mmi",
    untrans_minutes: str | None = None,
) -> None:
    """Stages 1-14 on the tiny corpus as the end-to-end tests run them: networks for 2 epochs,
    2 sequence-training epochs per criterion of ``seq_criteria``, one adaptation epoch with the
    teacher and first-pass targets (the oracle method is covered by tests/test_adapt.py; left out
    to keep CI short), the exported student decoded. ``untrans_minutes``: also that much
    untranscribed speech (stage 10 then trains exp/hdnn_kd_untrans)."""
    untrans = ("--untrans-minutes", untrans_minutes) if untrans_minutes else ()
    run_recipe(
        recipe, "--stage", "1", "--stop-stage", "7", *untrans, *TINY_DECODE_OPTS,
        kaldi_root=kaldi_root,
    )  # fmt: skip
    run_recipe(
        recipe, "--stage", "8", "--stop-stage", "11", "--nnet-max-epochs", "2", *TINY_DECODE_OPTS,
        kaldi_root=kaldi_root,
    )  # fmt: skip
    run_recipe(
        recipe, "--stage", "12", "--stop-stage", "14", "--seq-epochs", "2", "--seq-criteria",
        seq_criteria, "--seq-decode-epochs", "true", "--adapt-epochs", "1", "--adapt-methods",
        "teacher decode",
        *TINY_DECODE_OPTS, kaldi_root=kaldi_root,
    )  # fmt: skip
