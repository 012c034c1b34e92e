"""Shared pytest fixtures and options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
KALDI_REF = REPO_ROOT / "tests" / "data" / "kaldi-ref"
KALDI_ROOT_VAR = "PYKD_TEST_KALDI_ROOT"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="run end-to-end recipe tests"
    )


def built_kaldi_root() -> Path | None:
    """The Kaldi build named by $PYKD_TEST_KALDI_ROOT, or None when unset."""
    root = os.environ.get(KALDI_ROOT_VAR)
    return Path(root).resolve() if root else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="end-to-end test: pass --run-slow")
    skip_kaldi = pytest.mark.skip(reason=f"Kaldi tier: set {KALDI_ROOT_VAR} to a built Kaldi")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if "kaldi" in item.keywords and built_kaldi_root() is None:
            item.add_marker(skip_kaldi)


@pytest.fixture(scope="session")
def kaldi_root() -> Path:
    """A built Kaldi (KALDI_ROOT layout) from $PYKD_TEST_KALDI_ROOT; tests marked ``kaldi`` use it.

    Set but not a built Kaldi is an error, not a skip: the tier was asked for and cannot run.
    """
    root = built_kaldi_root()
    if root is None:
        pytest.skip(f"Kaldi tier: set {KALDI_ROOT_VAR} to a built Kaldi")
    for tool in ("src/featbin/compute-fbank-feats", "src/bin/latgen-faster-mapped"):
        if not os.access(root / tool, os.X_OK):
            pytest.fail(f"{KALDI_ROOT_VAR}={root}: no executable {tool} (not a built Kaldi)")
    return root


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def kaldi_ref() -> Path:
    """Golden files written by real Kaldi, kept in the repository (tests/data/kaldi-ref)."""
    return KALDI_REF


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """One line with the Kaldi tier's own counts, so a CI log shows that it ran."""
    counts: dict[str, int] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if "kaldi" in getattr(report, "keywords", {}) and report.when in ("call", "setup"):
                if outcome == "passed" and report.when != "call":
                    continue
                counts[outcome] = counts.get(outcome, 0) + 1
    root = built_kaldi_root()
    where = f"against {root}" if root else f"{KALDI_ROOT_VAR} unset"
    terminalreporter.write_line(
        "Kaldi tier: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + f" ({where})"
        if counts
        else f"Kaldi tier: no tests selected ({where})"
    )


@pytest.fixture(scope="session")
def tiny_builtin_recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """./run.sh stages 1-13 on the tiny corpus with the builtin backend (no KALDI_ROOT), with 0.6
    min of untranscribed speech, once per session: the end-to-end test checks it, the Kaldi tier
    feeds its files to Kaldi's tools."""
    from recipe_helpers import make_recipe_dir, run_tiny_recipe_all_stages

    finished = os.environ.get("PYKD_TEST_TINY_RECIPE")  # development: reuse a finished run
    if finished:
        return Path(finished)
    recipe = make_recipe_dir(REPO_ROOT, tmp_path_factory.mktemp("tiny_builtin"))
    run_tiny_recipe_all_stages(recipe, untrans_minutes="0.6")
    return recipe
