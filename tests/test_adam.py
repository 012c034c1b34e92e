"""OnePassAdam (pykd/train/adam.py): PyTorch's Adam update, bit for bit, in one compiled pass."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest
import torch

from pykd.models import build_model, load_model_config
from pykd.train import adam
from pykd.train.optimizers import build_optimizer

REPO = Path(__file__).resolve().parents[1]


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int = 1) -> None:
    """``steps`` cross-entropy steps on random frames; halves the rate halfway (as newbob does)."""
    gen = torch.Generator().manual_seed(seed)
    for i in range(steps):
        if i == steps // 2:
            for group in opt.param_groups:
                group["lr"] /= 2
        x = torch.randn(64, 440, generator=gen)
        y = torch.randint(0, 40, (64,), generator=gen)
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def _same(
    a: torch.nn.Module, b: torch.nn.Module, oa: torch.optim.Optimizer, ob: torch.optim.Optimizer
) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    if not all(torch.equal(sa[k], sb[k]) for k in sa):
        return False
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        xa, xb = oa.state[pa], ob.state[pb]
        if set(xa) != set(xb) or not all(torch.equal(xa[k], xb[k]) for k in xa):
            return False
    return True


@pytest.fixture(params=["student_hdnn.yaml", "teacher_dnn_small.yaml"])
def model(request: pytest.FixtureRequest) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(load_model_config(REPO / "conf" / request.param), 440, 40)


def test_kernel_matches_this_pytorch() -> None:
    # Without a matching variant the recipe still trains (PyTorch's step) but loses the speed.
    assert adam.kernel() is not None, "no variant of adam.cpp rounds as this PyTorch's Adam"


@pytest.mark.parametrize("threads", [1, 2])
def test_one_pass_adam_equals_pytorch_bit_for_bit(model: torch.nn.Module, threads: int) -> None:
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ref, mine = copy.deepcopy(model), copy.deepcopy(model)
        opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-3)
        opt_mine = build_optimizer(mine.parameters(), "adam", 1e-3)
        assert isinstance(opt_mine, adam.OnePassAdam)
        _train(ref, opt_ref, 12)
        _train(mine, opt_mine, 12)
        assert _same(ref, mine, opt_ref, opt_mine)
    finally:
        torch.set_num_threads(old)


def test_checkpoint_resumes_across_implementations(model: torch.nn.Module) -> None:
    """A state dict written by OnePassAdam continues in torch.optim.Adam, and back, identically."""
    ref, mine = copy.deepcopy(model), copy.deepcopy(model)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-3)
    opt_mine = adam.OnePassAdam(mine.parameters(), lr=1e-3)
    _train(ref, opt_ref, 6)
    _train(mine, opt_mine, 6)
    buf = io.BytesIO()
    torch.save(opt_mine.state_dict(), buf)
    buf.seek(0)
    swapped = copy.deepcopy(mine)
    opt_swapped = torch.optim.Adam(swapped.parameters(), lr=1e-3)
    opt_swapped.load_state_dict(torch.load(buf))
    _train(ref, opt_ref, 6, seed=2)
    _train(swapped, opt_swapped, 6, seed=2)
    assert _same(ref, swapped, opt_ref, opt_swapped)


def test_uncovered_settings_take_pytorchs_step() -> None:
    """Weight decay and a frozen parameter (no grad): the same results as torch.optim.Adam."""
    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(440, 30), torch.nn.Linear(30, 40))
    base[0].bias.requires_grad_(False)
    for wd in (0.0, 0.01):
        ref, mine = copy.deepcopy(base), copy.deepcopy(base)
        opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2, weight_decay=wd)
        opt_mine = adam.OnePassAdam(mine.parameters(), lr=1e-2, weight_decay=wd)
        _train(ref, opt_ref, 5)
        _train(mine, opt_mine, 5)
        assert _same(ref, mine, opt_ref, opt_mine)
        assert not opt_mine.state[mine[0].bias]


def test_a_wrong_variant_is_caught() -> None:
    """The start-up check can fail: the other roundings differ from PyTorch's in some bits."""
    found = adam.kernel()
    assert found is not None
    variant, mkl = found
    others = [v for v in adam.VARIANTS if v != variant]
    assert not any(adam._matches_pytorch(v, mkl) for v in others)
