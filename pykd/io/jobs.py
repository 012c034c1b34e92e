"""Parallel jobs of a Kaldi-style step, and their per-job outputs, checked complete.

A parallel step runs its jobs through the recipe's job runner (``$cmd``: Kaldi's ``run.pl``,
``queue.pl``, ``slurm.pl``) as ``$cmd JOB=1:N log/x.JOB.log command ...`` (:func:`run_jobs`), so
a cluster runner spreads them. It writes ``<name>.<N>.<ext>`` for jobs 1..``num_jobs`` and
``<dir>/num_jobs``. A reader that globbed whatever files exist would silently use a killed
run's partial output (e.g. score a third of the test set and print a normal-looking WER); every
reader gets its job files here instead, and a missing or truncated job file is an error naming
it.
"""

from __future__ import annotations

import gzip
import os
import re
import shlex
import shutil
import subprocess
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CMD = "run.pl"  # Kaldi's local runner; a recipe passes its $train_cmd / $decode_cmd


class JobsFailedError(RuntimeError):
    """Some jobs of a parallel step exited with an error (their logs say why)."""


class IncompleteJobsError(RuntimeError):
    """Some job outputs of a directory are missing or truncated."""


def read_num_jobs(directory: str | os.PathLike) -> int | None:
    """``<dir>/num_jobs`` as an int, None when the file does not exist."""
    path = Path(directory) / "num_jobs"
    if not path.is_file():
        return None
    text = path.read_text().strip()
    if not text.isdigit() or int(text) < 1:
        raise IncompleteJobsError(f"{path}: expected a positive job count, got {text!r}")
    return int(text)


def check_gzip_complete(path: Path) -> None:
    """Read a gzip file to its end; IncompleteJobsError naming it when it is truncated/corrupt."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except (EOFError, OSError, zlib.error) as err:
        raise IncompleteJobsError(
            f"{path} is truncated or corrupt ({err}): its job did not finish; re-run the step"
        ) from err


def job_files(
    directory: str | os.PathLike, name: str, ext: str = "gz", verify_gzip: bool = True
) -> list[Path]:
    """``<dir>/<name>.<N>.<ext>`` in job order, all of jobs 1..num_jobs, each gzip complete.

    Without ``num_jobs`` the files found must still be numbered 1..N without a gap.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no such directory {directory}")
    pattern = re.compile(rf"{re.escape(name)}\.(\d+)\.{re.escape(ext)}$")
    found = {int(m.group(1)): p for p in directory.iterdir() if (m := pattern.match(p.name))}
    num_jobs = read_num_jobs(directory)
    expected = num_jobs if num_jobs is not None else max(found, default=0)
    if expected == 0:
        raise FileNotFoundError(f"no {name}.N.{ext} in {directory}")
    missing = [directory / f"{name}.{j}.{ext}" for j in range(1, expected + 1) if j not in found]
    if missing:
        told = f"num_jobs is {num_jobs}" if num_jobs is not None else f"jobs 1..{expected}"
        raise IncompleteJobsError(
            f"{directory}: {len(missing)} of {expected} job outputs missing ({told}): "
            f"{', '.join(map(str, missing[:5]))}; a job did not finish: re-run the step"
        )
    files = [found[j] for j in range(1, expected + 1)]
    if verify_gzip and ext == "gz":
        for f in files:
            check_gzip_complete(f)
    return files


def recipe_tool(name: str) -> str:
    """A recipe script (``run.pl``, ``split_data.sh``, ...): pykd's ``utils_kd/<name>`` in a
    source checkout, else the one on PATH (``path.sh`` puts the recipe's ``utils/`` there)."""
    ours = REPO_ROOT / "utils_kd" / name
    if ours.is_file():
        return str(ours)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: source the recipe's path.sh")
    return found


def pykd_command(*args: str) -> list[str]:
    """``pykd <args>`` run by this interpreter (the job gets the same environment)."""
    return [sys.executable, "-m", "pykd", *args]


def run_jobs(cmd: str, num_jobs: int, log: str | os.PathLike, argv: Sequence[str]) -> None:
    """``<cmd> JOB=1:<num_jobs> <log> <argv...>``: ``JOB`` in ``log`` and ``argv`` becomes the
    job number. ``cmd`` is a job runner with its options (``"queue.pl --mem 4G"``); a bare
    ``run.pl`` that is not on PATH is pykd's. Raises :class:`JobsFailedError` naming the logs."""
    runner = shlex.split(cmd) or [DEFAULT_CMD]
    if "/" not in runner[0] and shutil.which(runner[0]) is None:
        runner[0] = recipe_tool(runner[0])
    proc = subprocess.run(
        [*runner, f"JOB=1:{num_jobs}", os.fspath(log), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if proc.returncode != 0:
        why = [proc.stdout.strip() or f"{cmd}: jobs failed"]
        for job in range(1, num_jobs + 1):
            why += _failure_lines(Path(os.fspath(log).replace("JOB", str(job))))
        raise JobsFailedError("\n".join(why))


def _failure_lines(log: Path, keep: int = 3) -> list[str]:
    """The last lines a failed job wrote before the runner's footer (none if it succeeded)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return [f"{log}: no log"]
    if any(line.startswith("# Ended (code 0)") for line in lines[-3:]):
        return []
    body = [line for line in lines if line.strip() and not line.startswith("#")]
    return [f"{log}: {line}" for line in body[-keep:]]
