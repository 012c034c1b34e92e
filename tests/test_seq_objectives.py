"""Sequence objectives (pykd.seq): lattice graphs, MMI / boosted MMI / sMBR vs brute force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pykd.kaldi.lattice_io import CompactLattice, Lattice, read_lattice_dict
from pykd.seq import (
    LatticeGraphError,
    arc_posteriors,
    lattice_to_graph,
    mmi,
    mmi_batch,
    smbr,
    smbr_batch,
)

# A small fake model: transition-ids 1..12 -> pdfs 0..5 / phones 1..4 (phone 1 = silence);
# tid 13 has pdf 6, which the random lattices never use.
T2PDF = np.array([-1, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6], dtype=np.int32)
T2PH = np.array([-1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 2, 3, 1, 4], dtype=np.int32)
NUM_PDFS = 7
LAT_TIDS = np.arange(1, 13)
SIL = [1]


# ----------------------------------------------------------------------------- random lattices
def random_lattice(rng: np.random.Generator, T: int) -> Lattice:
    """State-level lattice: 1-3 states per frame, epsilon arcs within a frame, a dead end."""
    layers: list[list[int]] = []
    n = 0
    for _ in range(T + 1):
        k = int(rng.integers(1, 4))
        layers.append(list(range(n, n + k)))
        n += k
    arcs: list[list] = [[] for _ in range(n + 1)]  # state n = dead end
    for t in range(T):
        for s in layers[t]:
            for d in rng.choice(layers[t + 1], size=int(rng.integers(1, 3)), replace=True):
                arcs[s].append((int(d), int(rng.choice(LAT_TIDS)), 7, float(rng.normal()), 1.5))
        for i, s in enumerate(layers[t][:-1]):  # epsilon (word) arcs within the frame
            if rng.random() < 0.7:
                arcs[s].append((layers[t][i + 1], 0, 3, float(rng.normal()), 0.0))
    arcs[layers[1][0]].append((n, 2, 0, 0.5, 0.0))  # leads nowhere: trimmed
    finals = {s: (float(rng.normal()), 0.0) for s in layers[T]}
    return Lattice(start=layers[0][0], arcs=arcs, finals=finals)


def random_clat(rng: np.random.Generator, T: int) -> CompactLattice:
    """Word-level lattice: multi-frame tid strings, word-only (epsilon) arcs, final tid strings."""
    m = 7
    times = np.sort(rng.integers(0, T + 1, size=m))
    times[0] = 0
    times[2] = times[1]  # guarantees a word-only arc 1 -> 2
    arcs: list[list] = [[] for _ in range(m)]

    def tids(k: int) -> tuple[int, ...]:
        return tuple(int(x) for x in rng.choice(LAT_TIDS, size=k))

    for i in range(m - 1):
        targets = {i + 1} | {int(j) for j in rng.integers(i + 1, m, size=2)}
        for j in sorted(targets):
            k = int(times[j] - times[i])
            arcs[i].append((j, int(rng.integers(1, 9)), float(rng.normal()), 9.0, tids(k)))
    finals = {m - 1: (float(rng.normal()), 0.0, tids(int(T - times[m - 1])))}
    for s in (3, 4):
        finals[s] = (float(rng.normal()), 0.0, tids(int(T - times[s])))
    return CompactLattice(start=0, arcs=arcs, finals=finals)


def enumerate_paths(lat: Lattice | CompactLattice) -> tuple[np.ndarray, np.ndarray]:
    """All complete paths: (N x T tid matrix, N graph costs), straight from the lattice."""
    out: list[tuple[list[int], float]] = []

    def visit(s: int, seq: list[int], cost: float) -> None:
        if s in lat.finals:
            fw = lat.finals[s]
            extra = list(fw[2]) if isinstance(lat, CompactLattice) else []
            out.append((seq + extra, cost + fw[0]))
        for arc in lat.arcs[s]:
            if isinstance(lat, CompactLattice):
                d, _w, g, _a, ts = arc
                visit(d, seq + list(ts), cost + g)
            else:
                d, tid, _w, g, _a = arc
                visit(d, seq + ([tid] if tid else []), cost + g)

    visit(lat.start, [], 0.0)
    lens = {len(p) for p, _ in out}
    assert len(lens) == 1, lens
    return np.array([p for p, _ in out]), np.array([c for _, c in out])


def bf_scores(paths, costs, x, kappa, boost=0.0, ref=None, max_sil_err=0.0):
    T = paths.shape[1]
    s = kappa * x[torch.arange(T), torch.as_tensor(T2PDF[paths], dtype=torch.long)].sum(1)
    s = s - torch.as_tensor(costs)
    if boost:
        err = np.where(
            T2PH[paths] == T2PH[ref][None, :],
            0.0,
            np.where(np.isin(T2PH[paths], SIL), max_sil_err, 1.0),
        )
        s = s + boost * torch.as_tensor(err.sum(1))
    return s


def bf_accuracy(paths, ref, criterion="smbr", one_sil=True):
    """Kaldi's LatticeForwardBackwardMpeVariants frame accuracy, frame by frame."""
    acc = np.zeros(paths.shape[0])
    for n, path in enumerate(paths):
        for h, r in zip(path, ref, strict=True):
            hs, rs = T2PH[h] in SIL, T2PH[r] in SIL
            same = T2PDF[h] == T2PDF[r] if criterion == "smbr" else T2PH[h] == T2PH[r]
            acc[n] += float(same or (hs and rs)) if one_sil else float(same and not hs)
    return acc


def make_case(kind: str, seed: int, T: int = 6):
    rng = np.random.default_rng(seed)
    lat = random_lattice(rng, T) if kind == "lat" else random_clat(rng, T)
    graph = lattice_to_graph(lat, T2PDF, T2PH, utt=f"{kind}{seed}", num_frames=T)
    paths, costs = enumerate_paths(lat)
    # reference: another random tid per frame, half of the frames taken from a lattice path
    ref = rng.choice(LAT_TIDS, size=T)
    on_path = rng.random(T) < 0.5
    ref[on_path] = paths[rng.integers(len(paths))][on_path]
    x = torch.tensor(rng.normal(size=(T, NUM_PDFS)) * 3, dtype=torch.float64, requires_grad=True)
    return lat, graph, paths, costs, ref, x


CASES = [("lat", s) for s in range(4)] + [("clat", s) for s in range(4)]


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("kind,seed", CASES)
def test_frame_posteriors_sum_to_one(kind: str, seed: int) -> None:
    _, graph, paths, _, _, x = make_case(kind, seed)
    gamma, occ = arc_posteriors(graph, x, kappa=0.3)
    assert torch.allclose(occ, torch.ones_like(occ), atol=1e-6)
    assert gamma.shape == (graph.num_arcs,) and float(gamma.min()) >= 0
    assert graph.num_levels >= graph.num_frames + 1


@pytest.mark.parametrize("kind,seed", CASES)
@pytest.mark.parametrize("boost", [0.0, 0.5])
def test_mmi_matches_brute_force(kind: str, seed: int, boost: float) -> None:
    _, graph, paths, costs, ref, x = make_case(kind, seed)
    kappa = 0.7
    loss, stats = mmi(
        graph, x, ref, kappa=kappa, boost=boost, silence_phones=SIL, drop_frames=False
    )
    (grad,) = torch.autograd.grad(loss, x)

    xb = x.detach().clone().requires_grad_(True)
    log_z = torch.logsumexp(bf_scores(paths, costs, xb, kappa, boost, ref), 0)
    num = kappa * xb[torch.arange(len(ref)), torch.as_tensor(T2PDF[ref], dtype=torch.long)].sum()
    bf_loss = log_z - num
    (bf_grad,) = torch.autograd.grad(bf_loss, xb)
    assert loss.item() == pytest.approx(bf_loss.item(), abs=1e-9)
    assert stats.objective == pytest.approx(-bf_loss.item(), abs=1e-9)
    assert stats.frames == len(ref)
    assert torch.allclose(grad, bf_grad, atol=1e-10)
    assert torch.allclose(grad.sum(1), torch.zeros(len(ref), dtype=torch.float64), atol=1e-10)


@pytest.mark.parametrize("kind,seed", CASES)
@pytest.mark.parametrize(
    "criterion,one_sil", [("smbr", True), ("smbr", False), ("mpfe", True), ("mpfe", False)]
)
def test_smbr_matches_brute_force(kind: str, seed: int, criterion: str, one_sil: bool) -> None:
    _, graph, paths, costs, ref, x = make_case(kind, seed)
    kappa = 0.4
    loss, stats = smbr(
        graph,
        x,
        ref,
        kappa=kappa,
        silence_phones=SIL,
        criterion=criterion,
        one_silence_class=one_sil,
    )
    (grad,) = torch.autograd.grad(loss, x)

    xb = x.detach().clone().requires_grad_(True)
    post = torch.softmax(bf_scores(paths, costs, xb, kappa), 0)
    bf_e = (post * torch.as_tensor(bf_accuracy(paths, ref, criterion, one_sil))).sum()
    (bf_grad,) = torch.autograd.grad(-bf_e, xb)
    assert loss.item() == pytest.approx(-bf_e.item(), abs=1e-9)
    assert stats.objective == pytest.approx(bf_e.item(), abs=1e-9)
    assert torch.allclose(grad, bf_grad, atol=1e-10)


@pytest.mark.parametrize("criterion", ["mmi", "bmmi", "smbr", "mpfe"])
def test_batch_equals_one_utterance_at_a_time(criterion: str) -> None:
    """B utterances of different lengths and kinds in one forward-backward: each utterance's
    loss, stats and gradient rows are those of its own call; a weighted sum of the losses
    back-propagates each weight to its own rows only."""
    cases = [
        make_case(kind, seed, T)
        for kind, seed, T in [("lat", 21, 5), ("clat", 22, 9), ("lat", 23, 3), ("clat", 24, 6)]
    ]
    one = {"mmi": mmi, "bmmi": mmi, "smbr": smbr, "mpfe": smbr}[criterion]
    many = {"mmi": mmi_batch, "bmmi": mmi_batch, "smbr": smbr_batch, "mpfe": smbr_batch}[criterion]
    opts: dict = {"kappa": 0.6, "silence_phones": SIL, "drop_frames": criterion != "bmmi"}
    if criterion == "bmmi":
        opts["boost"] = 0.4
    if criterion == "mpfe":
        opts["criterion"] = "mpfe"
    weights = torch.tensor([0.5, 2.0, 0.0, 1.0], dtype=torch.float64)
    expect_grads = []
    expect = []
    for (_, graph, _, _, ref, x), w in zip(cases, weights, strict=True):
        loss, st = one(graph, x, ref, **opts)
        (g,) = torch.autograd.grad(loss * w, x)
        expect.append((loss.item(), st))
        expect_grads.append(g)
    x_all = torch.cat([c[5].detach() for c in cases]).requires_grad_(True)
    losses, stats = many([c[1] for c in cases], x_all, [c[4] for c in cases], **opts)
    assert losses.shape == (4,)
    (grad,) = torch.autograd.grad((losses * weights).sum(), x_all)
    for (loss, st), got_loss, got_st in zip(expect, losses.tolist(), stats, strict=True):
        assert got_loss == pytest.approx(loss, abs=1e-9)
        assert got_st.objective == pytest.approx(st.objective, abs=1e-9)
        assert (got_st.frames, got_st.dropped_frames) == (st.frames, st.dropped_frames)
    assert torch.allclose(grad, torch.cat(expect_grads), atol=1e-10)
    assert float(grad[14:17].abs().sum()) == 0.0  # the utterance with weight 0
    with pytest.raises(LatticeGraphError, match="4 utterances"):
        many([c[1] for c in cases], x_all[:-1], [c[4] for c in cases], **opts)


@pytest.mark.parametrize("kind", ["lat", "clat"])
def test_gradcheck(kind: str) -> None:
    _, graph, _, _, ref, x = make_case(kind, 11, T=4)
    x = x.detach().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda y: mmi(graph, y, ref, kappa=0.5, drop_frames=False)[0], (x,)
    )
    assert torch.autograd.gradcheck(
        lambda y: mmi(graph, y, ref, kappa=0.5, boost=0.3, silence_phones=SIL, drop_frames=False)[
            0
        ],
        (x,),
    )
    assert torch.autograd.gradcheck(
        lambda y: smbr(graph, y, ref, kappa=0.5, silence_phones=SIL)[0], (x,)
    )


def test_float32_in_float32_out() -> None:
    _, graph, _, _, ref, x = make_case("clat", 3)
    x32 = x.detach().float().requires_grad_(True)
    for fn in (mmi, smbr):
        loss32, _ = fn(graph, x32, ref, silence_phones=SIL)
        loss64, _ = fn(graph, x.detach().requires_grad_(True), ref, silence_phones=SIL)
        (g32,) = torch.autograd.grad(loss32, x32)
        assert loss32.dtype == torch.float32 and g32.dtype == torch.float32
        assert loss32.item() == pytest.approx(loss64.item(), rel=1e-5, abs=1e-5)


def test_drop_frames() -> None:
    _, graph, paths, _, _, x = make_case("lat", 5)
    ref = paths[0].copy()
    ref[2] = 13  # pdf 6: on no lattice arc
    loss, stats = mmi(graph, x, ref, kappa=0.5)
    (grad,) = torch.autograd.grad(loss, x)
    assert stats.dropped_frames == 1
    assert torch.all(grad[2] == 0)
    assert torch.all(grad[[0, 1, 3, 4, 5]].abs().sum(1) > 0)

    loss2, stats2 = mmi(graph, x, ref, kappa=0.5, drop_frames=False)
    (grad2,) = torch.autograd.grad(loss2, x)
    assert stats2.dropped_frames == 1  # counted, not dropped
    assert loss2.item() == pytest.approx(loss.item())
    assert float(grad2[2, 6]) == pytest.approx(-0.5)  # -kappa * numerator, no den posterior
    assert torch.allclose(grad2[[0, 1, 3, 4, 5]], grad[[0, 1, 3, 4, 5]])


def test_errors() -> None:
    with pytest.raises(LatticeGraphError, match="utt-empty"):
        lattice_to_graph(CompactLattice(), T2PDF, utt="utt-empty")
    with pytest.raises(LatticeGraphError, match="utt-nofinal.*empty"):
        lat = Lattice(start=0, arcs=[[(1, 2, 0, 0.0, 0.0)], []], finals={})
        lattice_to_graph(lat, T2PDF, utt="utt-nofinal")
    lat, graph, _, _, ref, x = make_case("clat", 1)
    with pytest.raises(LatticeGraphError, match="clat1.*6 frames, expected 7"):
        lattice_to_graph(lat, T2PDF, utt="clat1", num_frames=7)
    with pytest.raises(LatticeGraphError, match="clat1"):
        mmi(graph, x[:5], ref[:5])
    with pytest.raises(LatticeGraphError, match="clat1.*alignment"):
        smbr(graph, x, ref[:5])
    uneven = Lattice(
        start=0,
        arcs=[[(1, 2, 0, 0.0, 0.0), (2, 3, 0, 0.0, 0.0)], [(2, 4, 0, 0.0, 0.0)], []],
        finals={2: (0.0, 0.0)},
    )
    with pytest.raises(LatticeGraphError, match="uneven.*same number of frames"):
        lattice_to_graph(uneven, T2PDF, utt="uneven")
    cyclic = Lattice(
        start=0,
        arcs=[[(1, 2, 0, 0.0, 0.0)], [(2, 0, 0, 0.0, 0.0)], [(1, 0, 0, 0.0, 0.0)]],
        finals={2: (0.0, 0.0)},
    )
    with pytest.raises(LatticeGraphError, match="cyc.*cyclic"):
        lattice_to_graph(cyclic, T2PDF, utt="cyc")
    with pytest.raises(LatticeGraphError, match="bad-tid.*not in the model"):
        lattice_to_graph(
            Lattice(0, [[(1, 99, 0, 0.0, 0.0)], []], {1: (0.0, 0.0)}), T2PDF, utt="bad-tid"
        )


# ----------------------------------------------------------------------------- real Kaldi lattices
@pytest.fixture(scope="module")
def tri1(kaldi_ref: Path):
    from pykd.kaldi.model_io import read_transition_model, tid_to_pdf, tid_to_phone

    tm = read_transition_model(kaldi_ref / "gmm" / "tri1" / "final.mdl")
    return tm.num_pdfs, tid_to_pdf(tm), tid_to_phone(tm)


def clat_frames(lat: CompactLattice) -> int:
    s, n = lat.start, 0
    while s not in lat.finals:
        d, _w, _g, _a, tids = lat.arcs[s][0]
        n, s = n + len(tids), d
    return n + len(lat.finals[s][2])


@pytest.mark.parametrize("which", ["decode_test", "decode_test_rms"])
def test_kaldi_lattices_posteriors(kaldi_ref: Path, tri1, which: str) -> None:
    num_pdfs, t2pdf, t2ph = tri1
    lats = read_lattice_dict(str(kaldi_ref / "gmm" / "tri1" / which / "lat.1.gz"))
    rng = np.random.default_rng(0)
    for utt, lat in lats.items():
        assert isinstance(lat, CompactLattice)
        T = clat_frames(lat)
        graph = lattice_to_graph(lat, t2pdf, t2ph, utt=utt, num_frames=T)
        x = torch.tensor(rng.normal(size=(T, num_pdfs)) * 5)
        _, occ = arc_posteriors(graph, x, kappa=0.1)
        assert torch.allclose(occ, torch.ones_like(occ), atol=1e-6), utt


def test_kaldi_state_lattice_frames_match_acoustics(kaldi_ref: Path, tri1) -> None:
    """Non-determinised Kaldi lattices: arc acoustic cost == -loglike[frame, pdf] of our graph."""
    from pykd.features.ark import read_matrices

    _, t2pdf, t2ph = tri1
    rms3 = kaldi_ref / "nnet" / "rms3"
    loglikes = dict(read_matrices(str(rms3 / "loglikes.ark")))
    lats = read_lattice_dict(str(rms3 / "lat_nondet.txt"))
    utt = sorted(lats)[0]
    ll = loglikes[utt]
    g0 = lattice_to_graph(lats[utt], t2pdf, t2ph, utt=utt, num_frames=ll.shape[0])
    g1 = lattice_to_graph(lats[utt], t2pdf, t2ph, utt=utt, old_acoustic_scale=1.0)
    ac = g1.graph_cost - g0.graph_cost
    emit = g0.tid > 0
    assert (~emit).any()  # has epsilon arcs
    np.testing.assert_allclose(ac[emit], -ll[g0.frame[emit], g0.pdf[emit]], atol=2e-3)
    np.testing.assert_array_equal(ac[~emit], 0.0)


def test_kaldi_lattice_objectives(kaldi_ref: Path, tri1) -> None:
    """Branching Kaldi lattice + Kaldi loglikes + Kaldi 1-best alignment: sane values."""
    from pykd.features.ark import read_matrices

    num_pdfs, t2pdf, t2ph = tri1
    rms3 = kaldi_ref / "nnet" / "rms3"
    utt = "rms-132"
    ll = torch.tensor(dict(read_matrices(str(rms3 / "loglikes.ark")))[utt], dtype=torch.float64)
    lat = read_lattice_dict(str(rms3 / "lat.ark"))[utt]
    ali = [
        np.array(line.split()[1:], dtype=np.int64)
        for line in (rms3 / "best_path.ali.txt").read_text().splitlines()
        if line.split()[0] == utt
    ][0]
    sil = [int(p) for p in (kaldi_ref / "gmm/tri1/graph/phones/silence.csl").read_text().split(":")]
    graph = lattice_to_graph(lat, t2pdf, t2ph, utt=utt, num_frames=ll.shape[0])
    x = ll.clone().requires_grad_(True)
    loss, st = mmi(graph, x, ali, kappa=1 / 12, silence_phones=sil, boost=0.1)
    (g,) = torch.autograd.grad(loss, x)
    assert st.dropped_frames == 0 and 0 < st.post_on_ali <= st.frames + 1e-6
    assert torch.allclose(g.sum(1), torch.zeros(st.frames, dtype=torch.float64), atol=1e-9)
    loss, st = smbr(graph, x, ali, kappa=1 / 12, silence_phones=sil)
    (g,) = torch.autograd.grad(loss, x)
    assert 0 < st.objective <= st.frames and torch.isfinite(g).all()
