"""Shared pytest fixtures and options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
KALDI_REF = REPO_ROOT.parent / "shared" / "kaldi-ref"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="run end-to-end recipe tests"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="end-to-end test: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def kaldi_ref() -> Path:
    """Golden files written by real Kaldi (../shared/kaldi-ref beside the repo)."""
    if not KALDI_REF.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"kaldi-ref golden files missing at {KALDI_REF} (CI must have shared/)")
        pytest.skip(f"kaldi-ref golden files not found at {KALDI_REF}")
    return KALDI_REF
