"""Per-job outputs of a Kaldi-style directory (``lat.N.gz``, ``ali.N.gz``, ...), checked complete.

A parallel step writes ``<name>.<N>.<ext>`` for jobs 1..``num_jobs`` and ``<dir>/num_jobs``. A
reader that globbed whatever files exist would silently use a killed run's partial output (e.g.
score a third of the test set and print a normal-looking WER); every reader gets its job files
here instead, and a missing or truncated job file is an error naming it.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from pathlib import Path


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
