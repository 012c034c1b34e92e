"""Kill -9 at random points of recipe stages, re-run the stage: the same files as an uninterrupted
run with the same seed (the session's tiny builtin recipe, ``tiny_builtin_recipe``).

Each case copies the uninterrupted run's data/ and exp/, removes what the stage writes, starts
``./run.sh --stage N --stop-stage N`` and kills its whole process group with SIGKILL after a random
fraction of the time that stage took in the uninterrupted run; then runs the stage again to the
end and compares models (bytes or tensors) and WERs. The kill times are printed (``-s``) and drawn
from ``PYKD_TEST_KILL_SEED`` when it is set.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from recipe_helpers import TINY_DECODE_OPTS, make_recipe_dir, recipe_env, run_recipe

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("PYKD_TEST_KILL_SEED", random.randrange(1 << 30)))
NETWORK_OPTS = ("--nnet-max-epochs", "2", *TINY_DECODE_OPTS)  # as run_tiny_recipe_all_stages
# Stage 12 with sMBR only: its systems are trained and decoded as in the full run (the MMI half
# repeats the same code path with another criterion).
SEQ_OPTS = ("--seq-epochs", "2", "--seq-criteria", "smbr", *TINY_DECODE_OPTS)


@dataclass(frozen=True)
class KillCase:
    """A stage killed and re-run: what it writes (removed first) and what must come out equal."""

    stage: int
    args: tuple[str, ...]
    removed: tuple[str, ...]
    same_files: tuple[str, ...]
    # Part of the stage's reference time within which the kill falls (a decode-only case uses the
    # part of stage 9 that decodes).
    window: tuple[float, float] = (0.1, 0.8)


def _wers(*systems: str) -> tuple[str, ...]:
    return tuple(f"{s}/decode_{x}/scoring_kaldi/best_wer" for s in systems for x in ("dev", "eval"))


CASES = {
    "stage5_mono": KillCase(
        5, TINY_DECODE_OPTS, ("exp/mono",), ("exp/mono/final.mdl", *_wers("exp/mono"))
    ),
    "stage8_teacher": KillCase(
        8, NETWORK_OPTS, ("exp/dnn",), ("exp/dnn/final.pt", *_wers("exp/dnn"))
    ),
    "stage10_kd_student": KillCase(
        10, NETWORK_OPTS, ("exp/hdnn_kd",), ("exp/hdnn_kd/final.pt", *_wers("exp/hdnn_kd"))
    ),
    "stage12_smbr": KillCase(
        12,
        SEQ_OPTS,
        ("data/lang_ug", "exp/tri1/graph_ug", "exp/dnn_denlats", "exp/hdnn_kd_denlats",
         "exp/dnn_smbr", "exp/hdnn_smbr", "exp/hdnn_smbr_kd", "exp/hdnn_smbr_gates"),
        tuple(f"{s}/final.pt" for s in ("exp/dnn_smbr", "exp/hdnn_smbr", "exp/hdnn_smbr_kd",
                                         "exp/hdnn_smbr_gates"))
        + _wers("exp/dnn_smbr", "exp/hdnn_smbr_kd"),
        window=(0.05, 0.4),
    ),
    # The network is trained: stage 9 only decodes (train_once keeps final.pt).
    "stage9_decode": KillCase(
        9,
        NETWORK_OPTS,
        ("exp/hdnn_ce/decode_dev", "exp/hdnn_ce/decode_eval"),
        _wers("exp/hdnn_ce"),
        window=(0.05, 0.25),
    ),
}  # fmt: skip


def _stage_seconds(recipe: Path, stage: int) -> float:
    """Wall time of ``stage`` in the recipe's exp/stage_times.txt (its last record)."""
    lines = (recipe / "exp/stage_times.txt").read_text().splitlines()
    records = [ln.split("\t") for ln in lines]
    secs = [float(f[4].rstrip("s")) for f in records if f[2] == f"stage {stage}"]
    assert secs, f"stage {stage} not in {recipe}/exp/stage_times.txt"
    return max(secs[-1], 2.0)


def _copy_run(reference: Path, work: Path, removed: tuple[str, ...], repo_root: Path) -> Path:
    """A recipe dir with the uninterrupted run's data/ and exp/ (mtimes kept) minus ``removed``."""
    recipe = make_recipe_dir(repo_root, work)
    for name in ("data", "exp"):
        shutil.copytree(reference / name, recipe / name, symlinks=True)
    for path in removed:
        shutil.rmtree(recipe / path)
    return recipe


def _processes_in(recipe: Path) -> list[int]:
    """Pids of live processes whose working directory is inside ``recipe``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if cwd == str(recipe) or cwd.startswith(f"{recipe}/"):
                pids.append(int(proc.name))
    return pids


def _run_and_kill(recipe: Path, case: KillCase, after: float) -> bool:
    """Start the stage, SIGKILL its process group after ``after`` seconds. False when it had
    already finished."""
    log = (recipe / f"killed_stage{case.stage}.log").open("w")
    proc = subprocess.Popen(
        ["./run.sh", "--skip-install", "true", "--size", "tiny", "--nj", "2",
         "--stage", str(case.stage), "--stop-stage", str(case.stage), *case.args],
        cwd=recipe, env=recipe_env(), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        proc.wait(timeout=after)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    finally:
        log.close()


def _assert_same(reference: Path, recipe: Path, rel: str) -> None:
    ref, got = reference / rel, recipe / rel
    assert got.is_file(), f"{rel} missing after the re-run"
    if rel.endswith(".pt"):
        a = torch.load(ref, map_location="cpu", weights_only=False)["model"]
        b = torch.load(got, map_location="cpu", weights_only=False)["model"]
        assert a.keys() == b.keys(), rel
        for key in a:
            assert torch.equal(a[key], b[key]), f"{rel}: {key} differs from the uninterrupted run"
    else:
        assert got.read_bytes() == ref.read_bytes(), f"{rel} differs from the uninterrupted run"


@pytest.mark.parametrize("name", list(CASES))
def test_kill_9_then_rerun_gives_the_uninterrupted_files(
    name: str, tiny_builtin_recipe: Path, repo_root: Path, tmp_path: Path
) -> None:
    case = CASES[name]
    rng = random.Random(f"{SEED}-{name}")
    total = _stage_seconds(tiny_builtin_recipe, case.stage)
    fraction = rng.uniform(*case.window)
    for attempt in range(4):
        recipe = _copy_run(tiny_builtin_recipe, tmp_path / f"try{attempt}", case.removed, repo_root)
        after = fraction * total / 2**attempt
        print(f"{name}: kill -9 after {after:.1f} s of stage {case.stage} "
              f"(reference {total:.0f} s; PYKD_TEST_KILL_SEED={SEED})")  # fmt: skip
        killed = _run_and_kill(recipe, case, after)
        assert not _processes_in(recipe), "processes of the killed stage survived SIGKILL"
        # A kill after the stage had written every compared file tests nothing: earlier, then.
        if killed and not all((recipe / rel).is_file() for rel in case.same_files):
            break
    else:
        pytest.fail(f"stage {case.stage} always finished before the kill")
    stage = str(case.stage)
    proc = run_recipe(recipe, "--stage", stage, "--stop-stage", stage, *case.args)
    for rel in case.same_files:
        _assert_same(tiny_builtin_recipe, recipe, rel)
    print(proc.stdout[-1500:])
