"""Adam whose CPU update is PyTorch's, bit for bit, in one pass over memory (``adam.cpp``).

PyTorch's default CPU Adam (the per-tensor loop) makes ~8 passes over each parameter's state
per step: on the 5M-parameter embedded teacher ~7-10 ms of a ~45 ms step, memory-bound. Its
fused kernel is faster but rounds differently, which changes the networks the recipe trains
(``pykd/train/optimizers.py``). ``OnePassAdam`` does PyTorch's own float32 operations in PyTorch's
order, block by block in compiled code, so the parameters and Adam's state come out identical to
``torch.optim.Adam``'s. Which rounding PyTorch uses depends on its build and the CPU (FMA in lerp
and addcmul, MKL's vector sqrt): at first use the variants are compared with ``torch.optim.Adam``
on test tensors, bit for bit, and the first that matches is used; if none does, the step is
PyTorch's own (logged once). Anything the kernel does not cover (weight decay, amsgrad, maximize,
non-float32, non-CPU or non-contiguous tensors, sparse gradients, tensor learning rates) takes
PyTorch's step too. The state dict is PyTorch's (``step``, ``exp_avg``, ``exp_avg_sq``), so
checkpoints resume with either.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from pathlib import Path

import torch

from pykd.io import native

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("adam.cpp")
LIBRARY = Path(__file__).with_name("_adam.so")
COMPILE_FLAGS = ("-O3", "-ffp-contract=off", "-fno-math-errno", "-fopenmp")
# PyTorch's mode for MKL's vector math (ATen's vml.h): high accuracy, denormals kept, no errors.
VML_MODE = 0x2 | 0x140000 | 0x100
VARIANTS = (3, 0, 1, 2)  # adam.cpp's bit 0: lerp with FMA, bit 1: addcmul with FMA

_lib: ctypes.CDLL | None = None
# The matching (variant, MKL functions); False: not checked yet; None: no variant matches.
_kernel: tuple[int, tuple[int, int] | None] | None | bool = False


def build(force: bool = False) -> Path:
    """Compile ``adam.cpp`` into ``_adam.so`` (atomically) unless it is up to date."""
    return native.build(SOURCE, LIBRARY, COMPILE_FLAGS, force=force)


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(str(build()))
        ptrs = ctypes.POINTER(ctypes.c_void_p)
        f, i = ctypes.c_float, ctypes.c_int
        lib.pykd_adam_step.argtypes = [
            i, ptrs, ptrs, ptrs, ptrs, ctypes.POINTER(ctypes.c_long),
            ctypes.POINTER(f), ctypes.POINTER(f), f, f, f, f, i, ctypes.c_void_p,
            ctypes.c_longlong, ctypes.c_void_p, i,
        ]  # fmt: skip
        lib.pykd_adam_step.restype = None
        _lib = lib
    return _lib


def _mkl_functions() -> tuple[int, int] | None:
    """Addresses of MKL's ``vmsSqrt`` and ``MKL_Set_Num_Threads_Local`` (the by-value one) inside
    PyTorch's CPU library, where it exports them."""
    if not torch.backends.mkl.is_available():
        return None
    name = "libtorch_cpu.dylib" if sys.platform == "darwin" else "libtorch_cpu.so"
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", name))
        return (
            ctypes.cast(lib.vmsSqrt, ctypes.c_void_p).value,
            ctypes.cast(lib.MKL_Set_Num_Threads_Local, ctypes.c_void_p).value,
        )
    except (OSError, AttributeError):
        return None


def _run_kernel(
    tensors: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    steps: list[float],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    variant: int,
    mkl: tuple[int, int] | None,
) -> None:
    """One step of the compiled update over (param, grad, exp_avg, exp_avg_sq) tuples, whose
    step counts (already incremented) are ``steps``; scalars computed as PyTorch computes them."""
    k = len(tensors)
    ptr_array = ctypes.c_void_p * k
    bc2_sqrt = [(1 - beta2**s) ** 0.5 for s in steps]
    neg_step = [-(lr / (1 - beta1**s)) for s in steps]
    _library().pykd_adam_step(
        k,
        ptr_array(*[t[0].data_ptr() for t in tensors]),
        ptr_array(*[t[1].data_ptr() for t in tensors]),
        ptr_array(*[t[2].data_ptr() for t in tensors]),
        ptr_array(*[t[3].data_ptr() for t in tensors]),
        (ctypes.c_long * k)(*[t[0].numel() for t in tensors]),
        (ctypes.c_float * k)(*bc2_sqrt),
        (ctypes.c_float * k)(*neg_step),
        1 - beta1,
        beta2,
        1 - beta2,
        eps,
        variant,
        mkl[0] if mkl else None,
        VML_MODE,
        mkl[1] if mkl else None,
        torch.get_num_threads(),
    )


def _test_tensors(seed: int) -> list[torch.Tensor]:
    """Odd sizes (vector bodies and tails, several blocks), values over many magnitudes, zeros."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in (1, 7, 16, 33, 1000, 40_961):
        x = torch.randn(n, generator=gen) * 10.0 ** torch.randint(-30, 3, (n,), generator=gen)
        x[torch.rand(n, generator=gen) < 0.2] = 0.0
        out.append(x.float())
    return out


def _matches_pytorch(variant: int, mkl: tuple[int, int] | None, steps: int = 4) -> bool:
    """Does the kernel give torch.optim.Adam's parameters and state, bit for bit?"""
    lr, betas, eps = 1e-3, (0.9, 0.999), 1e-8
    params = [torch.nn.Parameter(t) for t in _test_tensors(0)]
    reference = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, foreach=False)
    mine = [(p.detach().clone(), torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    for step in range(1, steps + 1):
        grads = _test_tensors(step)
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        reference.step()
        _run_kernel(
            [(p, g, m, v) for (p, m, v), g in zip(mine, grads, strict=True)],
            [float(step)] * len(grads), lr, *betas, eps, variant, mkl,
        )  # fmt: skip
    for p, (q, m, v) in zip(params, mine, strict=True):
        state = reference.state[p]
        if not (
            torch.equal(p.detach(), q)
            and torch.equal(state["exp_avg"], m)
            and torch.equal(state["exp_avg_sq"], v)
        ):
            return False
    return True


def kernel() -> tuple[int, tuple[int, int] | None] | None:
    """(variant, MKL functions or None) of the compiled update that matches PyTorch's Adam on
    this machine, or None where none does (or it cannot be built); checked once per process."""
    global _kernel
    if _kernel is False:
        _kernel = None
        try:
            _library()
        except native.NativeBuildError as err:
            logger.warning("one-pass Adam unavailable (PyTorch's step is used): %s", err)
            return None
        for mkl in dict.fromkeys((_mkl_functions(), None)):
            for variant in VARIANTS:
                if _matches_pytorch(variant, mkl):
                    _kernel = (variant, mkl)
                    return _kernel
        logger.warning(
            "one-pass Adam does not round as this PyTorch (%s) does: its step is used instead",
            torch.__version__,
        )
    return _kernel


def _scalar_step_dtype() -> torch.dtype:
    """The dtype of Adam's ``step`` state, as torch.optim.Adam makes it."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class OnePassAdam(torch.optim.Adam):
    """``torch.optim.Adam`` (per-tensor loop) with its CPU float32 update in one compiled pass:
    the same parameters and state, bit for bit, in a fraction of the memory traffic."""

    def _eligible(self, group: dict) -> bool:
        if (
            group["amsgrad"]
            or group["maximize"]
            or group["weight_decay"] != 0
            or group.get("differentiable")
            or group.get("capturable")
            or group.get("fused")
            or group.get("foreach")
            or group.get("decoupled_weight_decay")
            or isinstance(group["lr"], torch.Tensor)
            or any(isinstance(b, torch.Tensor) for b in group["betas"])
        ):
            return False
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            if not (
                p.device.type == "cpu"
                and p.dtype == torch.float32
                and g.dtype == torch.float32
                and not g.is_sparse
                and p.is_contiguous()
                and g.is_contiguous()
                and not torch.is_complex(p)
            ):
                return False
            state = self.state[p]
            if state and not (
                state["exp_avg"].is_contiguous() and state["exp_avg_sq"].is_contiguous()
            ):
                return False
        return True

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch.optim's signature
        """One Adam step: the compiled pass where it applies, PyTorch's otherwise."""
        if not all(self._eligible(g) for g in self.param_groups):
            return super().step(closure)
        found = kernel()
        if found is None:
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        variant, mkl = found
        for group in self.param_groups:
            tensors, steps = [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=_scalar_step_dtype())
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                steps.append(state["step"].item())
                tensors.append((p, p.grad, state["exp_avg"], state["exp_avg_sq"]))
            if tensors:
                beta1, beta2 = group["betas"]
                _run_kernel(tensors, steps, group["lr"], beta1, beta2, group["eps"], variant, mkl)
        return loss


if __name__ == "__main__":  # tools/install.sh: build (or rebuild with --force)
    native.build_command(build)
