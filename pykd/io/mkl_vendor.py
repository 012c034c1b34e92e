"""The MKL vendor shim (``mkl_vendor.cpp``): lets MKL inside PyTorch use its fast kernels on x86
CPUs not made by Intel (AMD). ``path.sh`` preloads the library where the CPU's vendor is not
Intel; ``python -m pykd.io.mkl_vendor`` builds it (``tools/install.sh``).
See docs/training.md, *Matrix products on AMD CPUs*.
"""

from __future__ import annotations

from pathlib import Path

from pykd.io import native

SOURCE = Path(__file__).with_name("mkl_vendor.cpp")
LIBRARY = Path(__file__).with_name("_mkl_vendor.so")


def build(force: bool = False) -> Path:
    """Compile ``mkl_vendor.cpp`` into ``_mkl_vendor.so`` (atomically) unless it is up to date."""
    return native.build(SOURCE, LIBRARY, force=force)


if __name__ == "__main__":  # tools/install.sh: build (or rebuild with --force)
    native.build_command(build)
