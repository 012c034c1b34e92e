"""Models (teacher DNN, shared-gate HDNN student), configs, and CE/KD losses."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pykd.features.ark import read_matrices
from pykd.models import (
    DNN,
    HDNN,
    DNNConfig,
    HDNNConfig,
    ModelConfig,
    build_model,
    count_parameters,
    hdnn_parameter_count,
    load_model_config,
    macs_per_frame,
    mflops_per_frame,
    model_config_from_dict,
)
from pykd.train.losses import ce_loss, frame_accuracy, frame_correct, kd_loss, soft_ce_loss

REPO = Path(__file__).resolve().parents[1]


def _hdnn(width: int = 128, carry: str = "independent", **kw) -> HDNN:
    return HDNN(440, 4000, HDNNConfig(hidden_dim=width, carry=carry, **kw))


# ---------------------------------------------------------------- parameter counts, FLOPs


def test_hdnn_128_under_0p8m_and_exact_formula() -> None:
    model = _hdnn(128)
    n = count_parameters(model)
    # 440->128 projection, 10 x (128x128 + 128), shared T and C (2 x 16512), 128->4000 output
    exact = 441 * 128 + 10 * 129 * 128 + 2 * 129 * 128 + 129 * 4000
    assert n == exact == 770_592
    assert n < 800_000
    assert n == hdnn_parameter_count(440, 4000, model.cfg)
    print(f"HDNN 10x128, 440 in, 4000 out: {n:,} parameters")


@pytest.mark.parametrize("width", [256, 512])
@pytest.mark.parametrize("carry", ["independent", "one_minus_transform"])
def test_hdnn_formula_other_widths(width: int, carry: str) -> None:
    model = _hdnn(width, carry)
    assert count_parameters(model) == hdnn_parameter_count(440, 4000, model.cfg)


def test_dnn_6x2048_about_30m() -> None:
    model = DNN(440, 4000, DNNConfig())
    n = count_parameters(model)
    assert n == 441 * 2048 + 5 * 2049 * 2048 + 2049 * 4000 == 30_080_928
    print(f"DNN 6x2048, 440 in, 4000 out: {n:,} parameters")


def test_mflops_count_shared_gates_per_layer() -> None:
    hd = _hdnn(128)
    # per frame: projection, 10 layers each with W_l, W_T and W_C applied, output
    macs = 440 * 128 + 10 * 3 * 128 * 128 + 128 * 4000
    assert macs_per_frame(hd) == macs
    assert mflops_per_frame(hd) == pytest.approx(2 * macs / 1e6)
    one_minus = _hdnn(128, "one_minus_transform")
    assert macs_per_frame(one_minus) == macs - 10 * 128 * 128
    dnn = DNN(440, 4000, DNNConfig())
    assert mflops_per_frame(dnn) == pytest.approx(
        2 * (440 * 2048 + 5 * 2048**2 + 2048 * 4000) / 1e6
    )
    assert hd.training  # the counting forward restores the mode


# ---------------------------------------------------------------- shared gates


def test_gates_are_one_shared_pair() -> None:
    model = _hdnn(16)
    gate_params = list(model.gate_parameters())
    assert [tuple(p.shape) for p in gate_params] == [(16, 16), (16,), (16, 16), (16,)]
    # no layer owns a gate: each layer's own parameters are just W_l, b_l
    for layer in model.layers:
        assert [tuple(p.shape) for p in layer.parameters()] == [(16, 16), (16,)]
    # the one module every layer calls is model.gates: record which gate tensors each call used
    seen: list[int] = []
    hook = model.gates.register_forward_hook(
        lambda mod, _i, _o: seen.append(id(mod.transform.weight))
    )
    model(torch.randn(3, 440))
    hook.remove()
    assert len(seen) == 10 and set(seen) == {id(gate_params[0])}
    gate_ids = {id(p) for p in gate_params}
    others = list(model.non_gate_parameters())
    assert not gate_ids & {id(p) for p in others}
    assert len(others) + len(gate_params) == len(list(model.parameters()))


def test_gradient_reaches_gates_from_every_layer() -> None:
    torch.manual_seed(0)
    model = _hdnn(8).double()
    x = torch.randn(5, 440, dtype=torch.float64)
    # the loss gradient on the shared W_T must be the sum of per-layer contributions, each
    # non-zero: rebuild the forward with a private copy of W_T per layer and compare
    model.zero_grad()
    loss = model(x).sum()
    (g_shared,) = torch.autograd.grad(loss, model.gates.transform.weight)
    copies = [torch.nn.Parameter(model.gates.transform.weight.detach().clone()) for _ in range(10)]
    h = model.input_act(model.input(x))
    for layer, w in zip(model.layers, copies, strict=True):
        t = torch.sigmoid(F.linear(h, w, model.gates.transform.bias))
        c = torch.sigmoid(model.gates.carry(h))
        h = layer.act(layer.linear(h)) * t + h * c
    per_layer = torch.autograd.grad(model.output(h).sum(), copies)
    assert all(g.abs().sum() > 0 for g in per_layer)
    torch.testing.assert_close(g_shared, sum(per_layer))


def test_one_minus_transform_has_no_carry_weights() -> None:
    model = _hdnn(16, "one_minus_transform")
    assert model.gates.carry is None
    assert [tuple(p.shape) for p in model.gate_parameters()] == [(16, 16), (16,)]
    h = torch.randn(4, 16)
    t, c = model.gates(h)
    torch.testing.assert_close(c, 1 - t)
    assert count_parameters(model) == count_parameters(_hdnn(16)) - 17 * 16


def test_highway_formula_and_gate_bias_init() -> None:
    torch.manual_seed(1)
    model = HDNN(6, 3, HDNNConfig(num_layers=2, hidden_dim=4, transform_bias_init=-3.0))
    torch.testing.assert_close(model.gates.transform.bias, torch.full((4,), -3.0))
    torch.testing.assert_close(model.gates.carry.bias, torch.full((4,), 2.0))
    x = torch.randn(2, 6)
    g = model.gates
    h = torch.sigmoid(model.input(x))
    for layer in model.layers:
        t = torch.sigmoid(h @ g.transform.weight.T + g.transform.bias)
        c = torch.sigmoid(h @ g.carry.weight.T + g.carry.bias)
        h = torch.sigmoid(h @ layer.linear.weight.T + layer.linear.bias) * t + h * c
    torch.testing.assert_close(model(x), model.output(h))


def test_gradcheck_tiny_models_float64() -> None:
    torch.manual_seed(2)
    for carry in ("independent", "one_minus_transform"):
        model = HDNN(5, 4, HDNNConfig(num_layers=3, hidden_dim=3, carry=carry)).double()
        x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(model, (x,))
        # w.r.t. the shared gate weight, through the KD loss
        teacher = torch.randn(2, 4, dtype=torch.float64)
        targets = torch.tensor([1, 3])
        w_t = model.gates.transform.weight

        def fn(
            w: torch.Tensor,
            model: HDNN = model,
            x: torch.Tensor = x,
            teacher: torch.Tensor = teacher,
            targets: torch.Tensor = targets,
        ) -> torch.Tensor:
            out = torch.func.functional_call(model, {"gates.transform.weight": w}, (x.detach(),))
            return kd_loss(out, teacher, targets, p=0.7, temperature=2.0)

        assert torch.autograd.gradcheck(fn, (w_t.detach().clone().requires_grad_(),))
    dnn = DNN(5, 4, DNNConfig(num_layers=2, hidden_dim=3, activation="relu")).double()
    assert torch.autograd.gradcheck(dnn, (torch.randn(2, 5, dtype=torch.float64).requires_grad_(),))


# ---------------------------------------------------------------- real features


def _splice(feats: np.ndarray, context: int = 5) -> np.ndarray:
    padded = np.concatenate([feats[:1].repeat(context, 0), feats, feats[-1:].repeat(context, 0)])
    n = len(feats)
    return np.concatenate([padded[i : i + n] for i in range(2 * context + 1)], axis=1)


def test_models_on_kaldi_fbank(kaldi_ref: Path) -> None:
    """Kaldi's own 40-dim fbank, spliced +-5 (440), through both models: a row per frame."""
    utts = dict(read_matrices(f"ark:{kaldi_ref / 'features' / 'fbank.ark'}"))
    assert utts
    feats = np.concatenate([_splice(m - m.mean(0)) for m in utts.values()]).astype(np.float32)
    assert feats.shape[1] == 440
    x = torch.from_numpy(feats)
    torch.manual_seed(3)
    teacher = build_model(load_model_config(REPO / "conf" / "teacher_dnn.yaml"), 440, 272).eval()
    student = build_model(load_model_config(REPO / "conf" / "student_hdnn.yaml"), 440, 272)
    with torch.no_grad():
        z_t = teacher(x)
    assert z_t.shape == (len(feats), 272) and torch.isfinite(z_t).all()
    # a few steps of pure KD (p=1) on these frames move the student towards the teacher: the
    # soft CE minus the teacher's entropy (= T^2 KL(q || r)) must at least halve
    temp = 2.0
    q = F.softmax(z_t / temp, -1)
    entropy = -(q * q.log()).sum(-1).mean().item() * temp**2
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = kd_loss(student(x), z_t, None, p=1.0, temperature=temp)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    kl = [v - entropy for v in losses]
    print(f"KD on Kaldi fbank: T^2 KL {kl[0]:.4f} -> {kl[-1]:.4f} in 30 steps")
    assert kl[-1] < 0.5 * kl[0]
    assert all(math.isfinite(v) for v in losses)


# ---------------------------------------------------------------- losses


def _logits(n: int = 7, k: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_ce_matches_definition_and_ignore_index() -> None:
    z, y = _logits(), torch.tensor([0, 4, 2, 2, 1, 3, 0])
    by_hand = -F.log_softmax(z, -1)[torch.arange(7), y].mean()
    torch.testing.assert_close(ce_loss(z, y), by_hand)
    y2 = y.clone()
    y2[:2] = -100
    torch.testing.assert_close(
        ce_loss(z, y2), -F.log_softmax(z, -1)[torch.arange(2, 7), y[2:]].mean()
    )


def test_kd_p0_equals_ce_exactly() -> None:
    z, zt, y = _logits(), _logits(seed=1), torch.tensor([0, 4, 2, 2, 1, 3, 0])
    for temp in (1.0, 3.0):
        assert torch.equal(kd_loss(z, zt, y, p=0.0, temperature=temp), ce_loss(z, y))


def test_kd_interpolation_and_temperature_scaling() -> None:
    z, zt, y = _logits(), _logits(seed=1), torch.tensor([0, 4, 2, 2, 1, 3, 0])
    temp = 2.5
    q = F.softmax(zt / temp, -1)
    soft = -(q * F.log_softmax(z / temp, -1)).sum(-1).mean()
    for p in (0.3, 1.0):
        got = kd_loss(z, zt, y, p=p, temperature=temp)
        want = (1 - p) * ce_loss(z, y) + p * temp**2 * soft
        torch.testing.assert_close(got, want)
        got_unscaled = kd_loss(z, zt, y, p=p, temperature=temp, scale_by_t2=False)
        torch.testing.assert_close(got_unscaled, (1 - p) * ce_loss(z, y) + p * soft)
    # T = 1: scaling changes nothing
    torch.testing.assert_close(
        kd_loss(z, zt, y, 0.5, 1.0), kd_loss(z, zt, y, 0.5, 1.0, scale_by_t2=False)
    )
    # T^2 keeps the soft gradient (r - q) * T / N comparable across T
    zz = z.clone().requires_grad_()
    kd_loss(zz, zt, None, p=1.0, temperature=temp).backward()
    r = F.softmax(z / temp, -1)
    torch.testing.assert_close(zz.grad, (r - q) * temp / len(z))


def test_kd_minimum_at_teacher_for_p1() -> None:
    zt = _logits(seed=4)
    for temp in (1.0, 2.0):
        at_teacher = kd_loss(zt.clone(), zt, None, p=1.0, temperature=temp)
        for seed in range(5):
            moved = zt + 0.3 * _logits(seed=10 + seed)
            assert kd_loss(moved, zt, None, p=1.0, temperature=temp) > at_teacher
        # stationary point: zero gradient; and shifting logits by a constant changes nothing
        z = zt.clone().requires_grad_()
        kd_loss(z, zt, None, p=1.0, temperature=temp).backward()
        torch.testing.assert_close(z.grad, torch.zeros_like(z))
        torch.testing.assert_close(kd_loss(zt + 3.0, zt, None, 1.0, temp), at_teacher)


def test_kd_gradcheck_and_teacher_detached() -> None:
    z = _logits().requires_grad_()
    zt = _logits(seed=1).requires_grad_()
    y = torch.tensor([0, 4, 2, 2, 1, 3, 0])
    assert torch.autograd.gradcheck(lambda a: kd_loss(a, zt, y, 0.6, 1.7), (z,))
    kd_loss(z, zt, y, 0.6, 1.7).backward()
    assert zt.grad is None


def test_kd_errors() -> None:
    z = _logits()
    with pytest.raises(ValueError, match="p must be"):
        kd_loss(z, z, None, p=1.5)
    with pytest.raises(ValueError, match="hard targets"):
        kd_loss(z, z, None, p=0.5)
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(z, z, None, p=1.0, temperature=0.0)
    with pytest.raises(ValueError, match="differ in shape"):
        soft_ce_loss(z, torch.ones(7, 4) / 4)


def test_frame_accuracy() -> None:
    z = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    y = torch.tensor([0, 1, 0, -100])
    assert frame_correct(z, y) == (2, 3)
    assert frame_accuracy(z, y) == pytest.approx(2 / 3)
    assert frame_accuracy(z, torch.full((4,), -100)) == 0.0


# ---------------------------------------------------------------- configs


def test_yaml_configs_load() -> None:
    teacher = load_model_config(REPO / "conf" / "teacher_dnn.yaml")
    assert teacher.type == "dnn" and teacher.dnn == DNNConfig(6, 2048, "sigmoid", 0.0)
    student = load_model_config(REPO / "conf" / "student_hdnn.yaml")
    assert student.type == "hdnn"
    assert student.hdnn.num_layers == 10 and student.hdnn.hidden_dim == 128
    assert student.hdnn.carry == "independent"
    model = build_model(student, 440, 4000)
    assert isinstance(model, HDNN) and count_parameters(model) == 770_592
    # round trip through the dict form
    assert model_config_from_dict(student.to_dict()) == student


def test_yaml_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  type: hdnn\n  hdnn:\n    widht: 128\n")
    with pytest.raises(ValueError, match="widht"):
        load_model_config(bad)
    bad.write_text("model:\n  type: hdnn\n  hdnn:\n    carry: coupled\n")
    with pytest.raises(ValueError, match="carry"):
        load_model_config(bad)
    bad.write_text("model:\n  type: cnn\n")
    with pytest.raises(ValueError, match="type"):
        load_model_config(bad)
    # a file with other sections and a bare (section-less) file both work
    ok = tmp_path / "ok.yaml"
    ok.write_text("train:\n  lr: 0.1\nmodel:\n  type: dnn\n  dnn: {num_layers: 2, hidden_dim: 8}\n")
    assert load_model_config(ok).dnn.num_layers == 2
    ok.write_text("type: hdnn\nhdnn: {carry: one_minus_transform}\n")
    assert load_model_config(ok).hdnn.carry == "one_minus_transform"
    with pytest.raises(ValueError, match="positive"):
        build_model(ModelConfig(), 0, 10)


def test_model_info_command(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from pykd.models import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["model-info", str(REPO / "conf" / "student_hdnn.yaml")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "770,592 parameters" in out and "2.120 MFLOPs/frame" in out
