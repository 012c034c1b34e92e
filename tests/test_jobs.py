"""Parallel jobs through the recipe's job runner (pykd.io.jobs.run_jobs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykd.io.jobs import JobsFailedError, run_jobs


def test_run_jobs_substitutes_the_job_number(tmp_path: Path) -> None:
    run_jobs(
        "run.pl", 3, tmp_path / "log" / "x.JOB.log", ["echo", "job=JOB", ">", f"{tmp_path}/out.JOB"]
    )
    for job in (1, 2, 3):
        assert (tmp_path / f"out.{job}").read_text() == f"job={job}\n"
        assert "# Ended (code 0)" in (tmp_path / "log" / f"x.{job}.log").read_text()


def test_a_failed_job_is_named_with_its_last_lines(tmp_path: Path) -> None:
    script = "if [ JOB = 2 ]; then echo 'utterance u7: bad features' >&2; exit 3; fi"
    with pytest.raises(JobsFailedError) as err:
        run_jobs("run.pl", 3, tmp_path / "x.JOB.log", ["bash", "-c", script])
    msg = str(err.value)
    assert "1 / 3 failed" in msg, msg
    assert f"{tmp_path}/x.2.log: utterance u7: bad features" in msg
    assert "x.1.log" not in msg.split("\n", 1)[1]  # only the failed job's lines


def test_run_jobs_takes_a_runner_with_options(tmp_path: Path) -> None:
    """`$cmd` may carry options (queue.pl --mem 2G): run.pl accepts and ignores them."""
    run_jobs("run.pl --mem 2G", 2, tmp_path / "x.JOB.log", ["true"])
    assert (tmp_path / "x.2.log").is_file()
