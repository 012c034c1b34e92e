"""The MKL vendor shim (pykd/io/mkl_vendor.cpp) and path.sh's preloading of it."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pykd.io import mkl_vendor

REPO = Path(__file__).resolve().parents[1]
PRODUCT = (
    "import sys, torch; torch.manual_seed(0); torch.set_num_threads(2); "
    "a = torch.randn(256, 1024); b = torch.randn(1024, 1024); "
    "torch.save(a @ b, sys.argv[1])"
)


def _cpu_vendor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _preload_under_path_sh(**env: str) -> str:
    """LD_PRELOAD as path.sh leaves it (sourced twice: it must not add the shim twice)."""
    script = '. ./path.sh; . ./path.sh; printf %s "${LD_PRELOAD:-}"'
    full = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"} | env
    return subprocess.run(
        ["bash", "-c", script], cwd=REPO, env=full, capture_output=True, text=True, check=True
    ).stdout


def test_shim_answers_intel() -> None:
    lib = ctypes.CDLL(str(mkl_vendor.build()))
    assert lib.mkl_serv_intel_cpu_true() == 1


def test_path_sh_preloads_the_shim_on_amd_only() -> None:
    mkl_vendor.build()
    amd = _cpu_vendor() in ("AuthenticAMD", "HygonGenuine")
    preload = _preload_under_path_sh()
    if amd:
        assert preload == str(mkl_vendor.LIBRARY)
    else:
        assert str(mkl_vendor.LIBRARY) not in preload
    assert str(mkl_vendor.LIBRARY) not in _preload_under_path_sh(PYKD_MKL_VENDOR_SHIM="0")


@pytest.mark.skipif(
    _cpu_vendor() not in ("AuthenticAMD", "HygonGenuine"), reason="MKL's vendor check: AMD only"
)
def test_shim_changes_mkls_kernels_and_stays_correct(tmp_path: Path) -> None:
    """On AMD, PyTorch's float32 product runs other MKL kernels with the shim (other rounding),
    and both agree with the float64 product to float32 accuracy."""
    import torch

    outs = {}
    for name, preload in (("generic", ""), ("shim", str(mkl_vendor.build()))):
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        if preload:
            env["LD_PRELOAD"] = preload
        out = tmp_path / f"{name}.pt"
        subprocess.run([sys.executable, "-c", PRODUCT, str(out)], env=env, check=True)
        outs[name] = torch.load(out)
    torch.manual_seed(0)
    a, b = torch.randn(256, 1024).double(), torch.randn(1024, 1024).double()
    exact = a @ b
    for out in outs.values():
        assert torch.allclose(out.double(), exact, rtol=0, atol=1e-3)
    assert not torch.equal(outs["generic"], outs["shim"])
