"""Running a real Kaldi build's binaries and scripts from the Kaldi test tier."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

BIN_DIRS = ("bin", "featbin", "gmmbin", "latbin", "fstbin", "lmbin", "nnetbin")


def kaldi_env(kaldi_root: Path) -> dict[str, str]:
    """os.environ with Kaldi's binaries first on PATH and LC_ALL=C (Kaldi's requirement)."""
    env = {k: v for k, v in os.environ.items() if k != "KALDI_ROOT"}
    bins = ":".join(str(kaldi_root / "src" / d) for d in BIN_DIRS)
    env["PATH"] = f"{bins}:{env.get('PATH', '')}"
    env["LC_ALL"] = "C"
    return env


def kaldi_workdir(repo_root: Path, kaldi_root: Path, work: Path) -> Path:
    """A dir laid out like a Kaldi recipe (steps/, utils/, path.sh) in which Kaldi's scripts run."""
    work.mkdir(parents=True, exist_ok=True)
    scripts = subprocess.run(
        [str(repo_root / "tools" / "link_kaldi_scripts.sh"), str(kaldi_root), str(work / ".kaldi")],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    for name in ("steps", "utils"):
        if not (work / name).exists():
            (work / name).symlink_to(Path(scripts) / name)
    (work / "path.sh").write_text(f"export LC_ALL=C PATH={kaldi_env(kaldi_root)['PATH']}\n")
    return work


def kaldi(kaldi_root: Path, command: str, cwd: Path | None = None) -> str:
    """Run a shell command line with Kaldi on PATH; its stdout, or AssertionError with stderr."""
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=cwd, env=kaldi_env(kaldi_root), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(
            f"Kaldi command failed ({proc.returncode}): {command}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout
