"""pykd's compiled helpers: a C++ source next to its Python module, built into a shared library
beside it with the system compiler and loaded with ctypes.

``build`` compiles only when the library is missing or older than its source, and writes it
atomically (a temp file renamed), so concurrent jobs never load half a library. Used by
``pykd/decode/latdet.py`` (the decoder's search and determinisation) and ``pykd/train/adam.py``
(Adam's update in one pass); ``tools/install.sh`` builds both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

COMPILE_FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC")


class NativeBuildError(RuntimeError):
    """A compiled helper could not be built (no C++ compiler, or it failed)."""


def build(
    source: Path, library: Path, extra_flags: tuple[str, ...] = (), force: bool = False
) -> Path:
    """Compile ``source`` into ``library`` unless the library is newer than the source."""
    if not force and library.is_file() and library.stat().st_mtime >= source.stat().st_mtime:
        return library
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise NativeBuildError(
            f"no C++ compiler (c++/g++, or $CXX) to build {library.name} from {source}; "
            "install one (Debian: apt-get install g++) and run tools/install.sh"
        )
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=library.parent)
    os.close(fd)
    proc = subprocess.run(
        [compiler, *COMPILE_FLAGS, *extra_flags, "-o", tmp, str(source)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        os.unlink(tmp)
        raise NativeBuildError(f"{compiler} failed to build {source}:\n{proc.stderr[-3000:]}")
    os.chmod(tmp, 0o755)
    os.replace(tmp, library)
    return library


def build_command(build_fn: Callable[..., Path]) -> None:
    """``python -m <helper module>`` (tools/install.sh): build its library (``--force``:
    rebuild), print where it is, or exit with why it could not be built."""
    try:
        print(f"{build_fn(force='--force' in sys.argv[1:])}: up to date")
    except NativeBuildError as err:
        sys.exit(str(err))
