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
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from recipe_helpers import TINY_DECODE_OPTS, make_recipe_dir, recipe_env, run_recipe

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("PYKD_TEST_KILL_SEED", random.randrange(1 << 30)))
NETWORK_OPTS = ("--nnet-max-epochs", "2", *TINY_DECODE_OPTS)  # as run_tiny_recipe_all_stages
# Stage 12 with the teacher's sMBR training only (the other networks and MMI repeat the same code
# path): trained and decoded as in the full run.
SEQ_OPTS = ("--seq-epochs", "2", "--seq-criteria", "smbr", "--seq-nets", "teacher",
            "--seq-decode-epochs", "false", *TINY_DECODE_OPTS)  # fmt: skip


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
    # Stage 9 trains the CE and the KD student at once; with the CE student kept, the re-run
    # trains the KD student alone (the kill falls within it).
    "stage9_kd_student": KillCase(
        9, NETWORK_OPTS, ("exp/hdnn_kd",), ("exp/hdnn_kd/final.pt", *_wers("exp/hdnn_kd")),
    ),  # fmt: skip
    # The full run's stage 12 trains and decodes 8 networks: the kill falls into the first
    # ~8% of its time, the share of this case's run.
    "stage12_teacher_smbr": KillCase(
        12,
        SEQ_OPTS,
        ("data/lang_ug", "exp/tri1/graph_ug", "exp/dnn_denlats", "exp/dnn_smbr"),
        ("exp/dnn_smbr/final.pt", *_wers("exp/dnn_smbr")),
        window=(0.01, 0.08),
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
    """A recipe dir with the uninterrupted run's data/ and exp/ (mtimes kept) minus ``removed``
    (those that it has)."""
    recipe = make_recipe_dir(repo_root, work)
    for name in ("data", "exp"):
        shutil.copytree(reference / name, recipe / name, symlinks=True)
    for path in removed:
        shutil.rmtree(recipe / path, ignore_errors=True)  # a fixture without the system: nothing
    return recipe


def _processes_in(recipe: Path) -> list[str]:
    """Command lines of live (not zombie) processes whose working directory is in ``recipe``,
    after giving killed ones up to 10 s to go."""
    deadline = time.monotonic() + 10
    while True:
        alive = []
        for proc in Path("/proc").iterdir():
            try:
                cwd = os.readlink(proc / "cwd") if proc.name.isdigit() else ""
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] if cwd else ""
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if state not in ("", "Z") and (cwd == str(recipe) or cwd.startswith(f"{recipe}/")):
                alive.append(f"{proc.name}: {cmdline}")
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


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
    for attempt in range(6):  # halving the delay: the reference may have been timed under load
        recipe = _copy_run(tiny_builtin_recipe, tmp_path / f"try{attempt}", case.removed, repo_root)
        after = fraction * total / 2**attempt
        print(f"{name}: kill -9 after {after:.1f} s of stage {case.stage} "
              f"(reference {total:.0f} s; PYKD_TEST_KILL_SEED={SEED})")  # fmt: skip
        killed = _run_and_kill(recipe, case, after)
        survivors = _processes_in(recipe)
        assert not survivors, f"processes of the killed stage survived SIGKILL: {survivors}"
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


@pytest.mark.parametrize(
    "script,args",
    [
        ("steps_kd/decode.sh", ("exp/mono/graph", "data/dev", "exp/mono/decode_dev")),
        (
            "steps_kd/decode_nnet.sh",
            ("--gmm-dir", "exp/tri1", "exp/tri1/graph", "data/dev_fbank", "exp/hdnn_ce",
             "exp/hdnn_ce/decode_dev"),
        ),
    ],
)  # fmt: skip
def test_interrupted_decode_redoes_only_its_unfinished_jobs(
    script: str, args: tuple[str, ...], tiny_builtin_recipe: Path, repo_root: Path, tmp_path: Path
) -> None:
    """The state a kill leaves (the run's stamp still pending, job 2's lattices cut short, no
    scores): the re-run decodes job 2 only, keeps job 1's file, and scores as before."""
    recipe = _copy_run(tiny_builtin_recipe, tmp_path, (), repo_root)
    ddir = recipe / args[-1]
    (ddir / ".inputs").rename(ddir / ".inputs.pending")
    lat2 = (ddir / "lat.2.gz").read_bytes()
    (ddir / "lat.2.gz").write_bytes(lat2[: len(lat2) // 2])
    shutil.rmtree(ddir / "scoring_kaldi")
    job1 = (ddir / "lat.1.gz").stat()
    cmd = f". ./path.sh && {script} --nj 2 --cmd run.pl {' '.join(TINY_DECODE_OPTS[1:])}"
    proc = subprocess.run(
        ["bash", "-c", f"{cmd} {' '.join(args)}"],
        cwd=recipe, env=recipe_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "continuing the interrupted run of these inputs" in proc.stderr
    assert "job(s) 2 of 2 left" in proc.stderr, proc.stderr
    assert (ddir / "lat.1.gz").stat().st_mtime_ns == job1.st_mtime_ns  # job 1 not redone
    assert (ddir / ".inputs").is_file() and not (ddir / ".inputs.pending").exists()
    _assert_same(tiny_builtin_recipe, recipe, f"{args[-1]}/scoring_kaldi/best_wer")
    # Run again: everything is current, nothing is decoded.
    proc = subprocess.run(
        ["bash", "-c", f"{cmd} {' '.join(args)}"],
        cwd=recipe, env=recipe_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0 and "not redone" in proc.stderr, proc.stderr
