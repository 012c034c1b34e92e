"""Lattice-based sequence-training objectives (MMI, boosted MMI, sMBR / MPFE) in PyTorch.

All objectives run on a :class:`~pykd.seq.lattice_graph.LatticeGraph` and the network's
``loglikes`` (T x num_pdfs: log-posteriors minus log-priors, as Kaldi nnet1 feeds its lattices).
The log-score of an arc is

    score(arc) = -lm_scale * graph_cost(arc) + kappa * loglikes[frame(arc), pdf(arc)]

(epsilon arcs have only the graph part) and a path's posterior is proportional to
``exp(sum of its arc scores)``, as after Kaldi's ``LatticeAcousticRescore`` and
``ScaleLattice(LatticeScale(lm_scale, acoustic_scale))``. The recursions are vectorised over
the arcs of one level of the graph and batched over utterances (``mmi_batch`` / ``smbr_batch``
stack B utterances' level d into one level: a Python loop over about max(T) levels, whatever
B), run in float64 whatever the input dtype on the loglikes' device (GPU or CPU), and return
the input's dtype.

Each objective returns ``(loss, stats)``: ``loss`` is a 0-dim tensor (per utterance: shape (B,)
for the batch functions) to *minimise* (the negated objective, summed over the utterance's
frames, so divide by ``stats.frames`` to normalise), and its gradient w.r.t. ``loglikes`` is the
exact derivative (it includes the factor ``kappa``, which Kaldi nnet1 leaves out of the
derivative it back-propagates).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from pykd.seq.lattice_graph import LatticeGraph, LatticeGraphError

DROP_FRAME_POSTERIOR = 1e-20  # Kaldi nnet1: a frame is dropped if den-posterior(num pdf) < this


@dataclass
class SeqStats:
    """Per-utterance statistics of a sequence objective.

    ``objective``: MMI = numerator score - log denominator partition (Kaldi's ``mmi_obj``:
    the numerator score has no graph cost); sMBR / MPFE = expected frame accuracy E[A].
    ``dropped_frames``: frames whose numerator pdf has zero denominator posterior (MMI: below
    1e-20; sMBR: on no lattice arc), counted always, dropped only when ``drop_frames``.
    ``post_on_ali``: MMI sum over frames of the denominator
    posterior of the numerator pdf (NaN for sMBR).
    """

    objective: float
    frames: int
    dropped_frames: int = 0
    post_on_ali: float = math.nan


# ----------------------------------------------------------------------------- frame accuracies
def _is_silence(phones: np.ndarray, silence_phones: Iterable[int]) -> np.ndarray:
    sil = np.asarray(sorted(set(int(p) for p in silence_phones)), dtype=np.int64)
    return np.isin(phones, sil) & (phones >= 0)


def frame_accuracy(
    hyp_pdf: np.ndarray,
    hyp_phone: np.ndarray,
    ref_pdf: np.ndarray,
    ref_phone: np.ndarray,
    silence_phones: Iterable[int] = (),
    criterion: Literal["smbr", "mpfe"] = "smbr",
    one_silence_class: bool = True,
) -> np.ndarray:
    """Per-arc frame accuracy (0/1, float64), Kaldi's ``LatticeForwardBackwardMpeVariants``.

    The arrays are aligned element-wise (hypothesis arc vs the reference frame it sits on);
    a hypothesis with ``hyp_pdf < 0`` (epsilon arc) scores 0. With ``criterion="smbr"`` the
    units compared are pdf-ids, with ``"mpfe"`` phones:

    * ``one_silence_class=True`` (Kaldi's newer behaviour, the default of the nnet2/nnet3
      discriminative scripts): accuracy 1 if the units are equal, OR if the hypothesis phone
      and the reference phone are both silence phones (whatever their pdfs); else 0.
    * ``one_silence_class=False`` (Kaldi's old behaviour, nnet1's default): accuracy 1 if the
      units are equal AND the hypothesis phone is not a silence phone; else 0 (silence frames
      never count as correct).
    """
    hyp_pdf = np.asarray(hyp_pdf)
    hyp_phone = np.asarray(hyp_phone)
    if criterion == "smbr":
        same = hyp_pdf == np.asarray(ref_pdf)
    elif criterion == "mpfe":
        same = hyp_phone == np.asarray(ref_phone)
    else:
        raise ValueError(f"criterion must be 'smbr' or 'mpfe', not {criterion!r}")
    hyp_sil = _is_silence(hyp_phone, silence_phones)
    if one_silence_class:
        acc = same | (hyp_sil & _is_silence(np.asarray(ref_phone), silence_phones))
    else:
        acc = same & ~hyp_sil
    return np.where(hyp_pdf >= 0, acc, False).astype(np.float64)


def boost_frame_error(
    hyp_phone: np.ndarray,
    ref_phone: np.ndarray,
    silence_phones: Iterable[int] = (),
    max_silence_error: float = 0.0,
) -> np.ndarray:
    """Per-arc phone frame error for boosted MMI, Kaldi's ``LatticeBoost``.

    0 if the hypothesis phone equals the reference phone; otherwise ``max_silence_error`` if the
    hypothesis phone is a silence phone (Kaldi's discriminative trainers use 0), else 1.
    Epsilon arcs (``hyp_phone < 0``) get 0.
    """
    hyp_phone = np.asarray(hyp_phone)
    err = np.where(
        hyp_phone == np.asarray(ref_phone),
        0.0,
        np.where(_is_silence(hyp_phone, silence_phones), max_silence_error, 1.0),
    )
    return np.where(hyp_phone >= 0, err, 0.0).astype(np.float64)


# ----------------------------------------------------------------------------- torch graph
@dataclass
class _TorchGraph:
    """Several utterances' graphs as one levelled graph (level d = every utterance's level d).

    Arcs are sorted by destination state, states are numbered level by level, so the arcs into
    level d and (through ``bwd_perm``) the arcs out of it are contiguous ranges. ``frame`` is an
    arc's row in the utterances' concatenated loglikes.
    """

    B: int  # utterances
    T: int  # frames of all utterances
    S: int
    src: torch.Tensor
    dst: torch.Tensor
    frame: torch.Tensor  # global row (only meaningful on emitting arcs)
    pdf: torch.Tensor  # clamped to >= 0 (only used on emitting arcs)
    emit: torch.Tensor
    graph_cost: torch.Tensor
    final_cost: torch.Tensor  # per state, +inf if not final
    state_utt: torch.Tensor  # utterance of each state
    arc_utt: torch.Tensor  # utterance of each arc
    frame_utt: torch.Tensor  # utterance of each row of the loglikes
    state_off: list[int]
    fwd_off: list[int]
    fwd_seg: torch.Tensor  # dst - first state of its level
    bwd_perm: torch.Tensor
    bwd_off: list[int]
    bwd_seg: torch.Tensor  # src[bwd_perm] - first state of its level
    bwd_dst: torch.Tensor  # dst[bwd_perm]


def _batch_graph(
    graphs: Sequence[LatticeGraph], device: torch.device
) -> tuple[_TorchGraph, np.ndarray]:
    """One :class:`_TorchGraph` of ``graphs``, and the permutation that puts their concatenated
    per-arc arrays in its arc order."""
    num_levels = max(g.num_levels for g in graphs)
    counts = np.zeros((len(graphs), num_levels), dtype=np.int64)
    for u, g in enumerate(graphs):
        counts[u, : g.num_levels] = np.diff(g.state_offsets)
    state_off = np.concatenate(([0], np.cumsum(counts.sum(0))))
    # first new id of utterance u's block within level d
    block = state_off[:-1][None, :] + np.cumsum(counts, 0) - counts
    srcs, dsts, frames, finals, rows = [], [], [], [], 0
    state_utt = np.empty(int(state_off[-1]), dtype=np.int64)
    for u, g in enumerate(graphs):
        lv = np.repeat(np.arange(g.num_levels), np.diff(g.state_offsets))
        new_id = block[u, lv] + np.arange(g.num_states) - g.state_offsets[lv]
        state_utt[new_id] = u
        srcs.append(new_id[g.src])
        dsts.append(new_id[g.dst])
        frames.append(np.clip(g.frame, 0, g.num_frames - 1) + rows)
        finals.append((new_id[g.final_states], g.final_cost))
        rows += g.num_frames
    src, dst = np.concatenate(srcs), np.concatenate(dsts)
    perm = np.argsort(dst, kind="stable")
    src, dst = src[perm], dst[perm]
    arc_utt = np.repeat(np.arange(len(graphs)), [g.num_arcs for g in graphs])[perm]
    final_cost = np.full(state_utt.shape[0], np.inf)
    for ids, cost in finals:
        final_cost[ids] = cost
    level_first = np.repeat(state_off[:-1], np.diff(state_off))  # first state of each's level
    bwd_perm = np.argsort(src, kind="stable")
    bsrc = src[bwd_perm]

    def t(a: np.ndarray, dtype: torch.dtype = torch.long) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

    cat = np.concatenate
    tg = _TorchGraph(
        B=len(graphs),
        T=rows,
        S=int(state_off[-1]),
        src=t(src),
        dst=t(dst),
        frame=t(cat(frames)[perm]),
        pdf=t(np.maximum(cat([g.pdf for g in graphs]), 0)[perm]),
        emit=t(cat([g.tid for g in graphs])[perm] > 0, torch.bool),
        graph_cost=t(cat([g.graph_cost for g in graphs])[perm], torch.float64),
        final_cost=t(final_cost, torch.float64),
        state_utt=t(state_utt),
        arc_utt=t(arc_utt),
        frame_utt=t(np.repeat(np.arange(len(graphs)), [g.num_frames for g in graphs])),
        state_off=state_off.tolist(),
        fwd_off=np.searchsorted(dst, state_off).tolist(),
        fwd_seg=t(dst - level_first[dst]),
        bwd_perm=t(bwd_perm),
        bwd_off=np.searchsorted(bsrc, state_off).tolist(),
        bwd_seg=t(bsrc - level_first[bsrc]),
        bwd_dst=t(dst[bwd_perm]),
    )
    return tg, perm


def _check_loglikes(graphs: Sequence[LatticeGraph], loglikes: torch.Tensor) -> None:
    total = sum(g.num_frames for g in graphs)
    if loglikes.dim() != 2 or loglikes.shape[0] != total:
        what = graphs[0].utt if len(graphs) == 1 else f"{len(graphs)} utterances"
        raise LatticeGraphError(
            f"utterance {what}: loglikes have shape {tuple(loglikes.shape)}, "
            f"the lattice{'s have' if len(graphs) > 1 else ' has'} {total} frames"
        )
    for g in graphs:
        top = int(g.pdf.max(initial=-1))
        if top >= loglikes.shape[1]:
            raise LatticeGraphError(
                f"utterance {g.utt}: lattice uses pdf {top}, loglikes have {loglikes.shape[1]}"
            )


def _arc_scores(
    tg: _TorchGraph, x: torch.Tensor, kappa: float, lm_scale: float, extra: torch.Tensor | None
) -> torch.Tensor:
    """Arc log-scores (float64) for float64 loglikes ``x``; ``extra`` is added (boosting)."""
    ac = torch.where(tg.emit, x[tg.frame, tg.pdf], torch.zeros((), dtype=x.dtype, device=x.device))
    scores = kappa * ac - lm_scale * tg.graph_cost
    return scores if extra is None else scores + extra


def _seg_logsumexp(v: torch.Tensor, seg: torch.Tensor, n: int) -> torch.Tensor:
    """``out[i] = log sum exp(v[seg == i])`` for i < n (-inf for empty segments)."""
    m = torch.full((n,), -math.inf, dtype=v.dtype, device=v.device)
    m = m.scatter_reduce_(0, seg, v, reduce="amax").nan_to_num_(nan=0.0, neginf=0.0, posinf=0.0)
    s = torch.zeros(n, dtype=v.dtype, device=v.device).index_add_(0, seg, torch.exp(v - m[seg]))
    return m + torch.log(s)


def _seg_sum(v: torch.Tensor, seg: torch.Tensor, n: int) -> torch.Tensor:
    return torch.zeros(n, dtype=v.dtype, device=v.device).index_add_(0, seg, v)


def _forward(
    tg: _TorchGraph, scores: torch.Tensor, acc: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Forward pass: log-alpha per state, log Z per utterance; with ``acc`` also Kaldi's
    alpha_smbr and E[A] per utterance.

    alpha_smbr(s) = expected accuracy of the partial paths ending in s (linear domain):
    sum over arcs a into s of p(a | s) * (alpha_smbr(src a) + acc(a)), with
    p(a | s) = exp(alpha(src a) + score(a) - alpha(s)).
    """
    alpha = torch.full((tg.S,), -math.inf, dtype=scores.dtype, device=scores.device)
    alpha[tg.state_off[0] : tg.state_off[1]] = 0.0  # level 0 = the start states
    alpha_s = torch.zeros_like(alpha) if acc is not None else None
    for d in range(1, len(tg.state_off) - 1):
        a0, a1 = tg.fwd_off[d], tg.fwd_off[d + 1]
        s0, s1 = tg.state_off[d], tg.state_off[d + 1]
        src, seg = tg.src[a0:a1], tg.fwd_seg[a0:a1]
        v = alpha[src] + scores[a0:a1]
        lvl = _seg_logsumexp(v, seg, s1 - s0)
        alpha[s0:s1] = lvl
        if alpha_s is not None and acc is not None:
            w = torch.nan_to_num(torch.exp(v - lvl[seg]), nan=0.0)
            alpha_s[s0:s1] = _seg_sum(w * (alpha_s[src] + acc[a0:a1]), seg, s1 - s0)
    end = alpha - tg.final_cost
    log_z = _seg_logsumexp(end, tg.state_utt, tg.B)
    exp_acc = None
    if alpha_s is not None:
        p_end = torch.nan_to_num(torch.exp(end - log_z[tg.state_utt]), nan=0.0)
        exp_acc = _seg_sum(p_end * alpha_s, tg.state_utt, tg.B)
    return alpha, log_z, alpha_s, exp_acc


def _backward(
    tg: _TorchGraph, scores: torch.Tensor, acc: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Backward pass: log-beta per state (final cost included); with ``acc`` also beta_smbr.

    beta_smbr(s) = expected accuracy of the partial paths from s to the end:
    sum over arcs a out of s of exp(score(a) + beta(dst a) - beta(s)) * (beta_smbr(dst a) + acc(a)).
    """
    beta = -tg.final_cost.clone()
    beta_s = torch.zeros_like(beta) if acc is not None else None
    scores_b = scores[tg.bwd_perm]
    acc_b = acc[tg.bwd_perm] if acc is not None else None
    for d in range(len(tg.state_off) - 2, -1, -1):
        b0, b1 = tg.bwd_off[d], tg.bwd_off[d + 1]
        if b0 == b1:
            continue
        s0, s1 = tg.state_off[d], tg.state_off[d + 1]
        seg, dst = tg.bwd_seg[b0:b1], tg.bwd_dst[b0:b1]
        v = scores_b[b0:b1] + beta[dst]
        lvl = torch.logaddexp(beta[s0:s1], _seg_logsumexp(v, seg, s1 - s0))
        beta[s0:s1] = lvl
        if beta_s is not None and acc_b is not None:
            w = torch.nan_to_num(torch.exp(v - lvl[seg]), nan=0.0)
            beta_s[s0:s1] = _seg_sum(w * (beta_s[dst] + acc_b[b0:b1]), seg, s1 - s0)
    return beta, beta_s


def _arc_gamma(
    tg: _TorchGraph,
    scores: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    log_z: torch.Tensor,
) -> torch.Tensor:
    return torch.nan_to_num(
        torch.exp(alpha[tg.src] + scores + beta[tg.dst] - log_z[tg.arc_utt]), nan=0.0
    )


def _to_frame_pdf(tg: _TorchGraph, values: torch.Tensor, num_pdfs: int) -> torch.Tensor:
    """Sum per-arc ``values`` of the emitting arcs into a (T, num_pdfs) matrix."""
    idx = (tg.frame * num_pdfs + tg.pdf)[tg.emit]
    out = torch.zeros(tg.T * num_pdfs, dtype=values.dtype, device=values.device)
    return out.index_add_(0, idx, values[tg.emit]).view(tg.T, num_pdfs)


def _scale_rows(tg: _TorchGraph, grad: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """The per-utterance loss gradients ``grad_out`` (B,) applied to their utterances' rows.

    An utterance with a zero ``grad_out`` gets zero rows, even where its gradient is not finite.
    """
    g = grad_out.double().reshape(-1)[tg.frame_utt][:, None]
    return torch.where(g == 0, torch.zeros((), dtype=grad.dtype, device=grad.device), g * grad)


# ----------------------------------------------------------------------------- public API
def arc_posteriors(
    graph: LatticeGraph, loglikes: torch.Tensor, kappa: float = 0.1, lm_scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-arc posteriors (in the graph's arc order) and per-frame occupancy (float64 tensors).

    The occupancy of frame t sums the posteriors of the emitting arcs on t: it is 1 for every
    frame of a consistent lattice. No gradient flows through this function.
    """
    _check_loglikes([graph], loglikes)
    with torch.no_grad():
        tg, perm = _batch_graph([graph], loglikes.device)
        scores = _arc_scores(tg, loglikes.detach().double(), kappa, lm_scale, None)
        alpha, log_z, _, _ = _forward(tg, scores)
        beta, _ = _backward(tg, scores)
        gamma = _arc_gamma(tg, scores, alpha, beta, log_z)
        occ = torch.zeros(tg.T, dtype=gamma.dtype, device=gamma.device)
        occ.index_add_(0, tg.frame[tg.emit], gamma[tg.emit])
        in_graph_order = torch.empty_like(gamma)
        in_graph_order[torch.as_tensor(perm, device=gamma.device)] = gamma
    return in_graph_order, occ


def _reference(
    graph: LatticeGraph,
    ref_ali: np.ndarray | torch.Tensor | list[int],
    ali_is_pdf: bool,
    ref_phones: np.ndarray | None,
    tid_to_pdf: np.ndarray | None,
    tid_to_phone: np.ndarray | None,
    need_phones: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-frame reference pdfs (and phones when needed) from an alignment."""
    ali = np.asarray(ref_ali.cpu() if isinstance(ref_ali, torch.Tensor) else ref_ali)
    ali = ali.astype(np.int64).reshape(-1)
    where = f"utterance {graph.utt}"
    if ali.shape[0] != graph.num_frames:
        raise LatticeGraphError(
            f"{where}: alignment has {ali.shape[0]} frames, the lattice {graph.num_frames}"
        )
    t2pdf = graph.tid_to_pdf if tid_to_pdf is None else np.asarray(tid_to_pdf)
    t2ph = graph.tid_to_phone if tid_to_phone is None else np.asarray(tid_to_phone)
    if ali_is_pdf:
        pdfs = ali
        phones = None if ref_phones is None else np.asarray(ref_phones, dtype=np.int64)
        if need_phones and (phones is None or phones.shape != ali.shape):
            raise ValueError(f"{where}: a pdf alignment needs ref_phones (one per frame) here")
    else:
        if ali.min() < 1 or ali.max() >= t2pdf.shape[0]:
            raise LatticeGraphError(f"{where}: alignment has transition-ids not in the model")
        pdfs = t2pdf[ali].astype(np.int64)
        phones = None
        if need_phones:
            if t2ph is None:
                raise ValueError(f"{where}: tid_to_phone is needed (silence phones / boosting)")
            phones = t2ph[ali].astype(np.int64)
    return pdfs, phones


def _arc_phones(graph: LatticeGraph, tid_to_phone: np.ndarray | None) -> np.ndarray:
    if tid_to_phone is None:
        if graph.tid_to_phone is None:
            raise ValueError(f"utterance {graph.utt}: tid_to_phone is needed")
        return graph.phone
    return np.where(graph.tid > 0, np.asarray(tid_to_phone)[graph.tid], -1)


def _batch_inputs(
    graphs: Sequence[LatticeGraph],
    loglikes: torch.Tensor,
    alis: Sequence[Any],
    ref_phones: Sequence[np.ndarray | None] | None,
) -> tuple[list[LatticeGraph], list[Any], list[np.ndarray | None]]:
    """The batch functions' inputs as lists of one entry per utterance, checked against each
    other and against ``loglikes``."""
    graphs, alis = list(graphs), list(alis)
    phones = list(ref_phones) if ref_phones is not None else [None] * len(graphs)
    if not graphs or len(alis) != len(graphs) or len(phones) != len(graphs):
        raise ValueError(
            f"{len(graphs)} lattices, {len(alis)} alignments and {len(phones)} ref_phones"
        )
    _check_loglikes(graphs, loglikes)
    return graphs, alis, phones


class _MmiFunction(torch.autograd.Function):
    """Loss per utterance = log Z_den - kappa * sum_t loglikes[t, num_pdf[t]]; gradient
    precomputed."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        loglikes: torch.Tensor,
        tg: _TorchGraph,
        num_pdf: torch.Tensor,
        boost: torch.Tensor | None,
        kappa: float,
        lm_scale: float,
        drop_frames: bool,
        info: dict,
    ) -> torch.Tensor:
        x = loglikes.detach().double()
        scores = _arc_scores(tg, x, kappa, lm_scale, boost)
        alpha, log_z, _, _ = _forward(tg, scores)
        beta, _ = _backward(tg, scores)
        den = _to_frame_pdf(tg, _arc_gamma(tg, scores, alpha, beta, log_z), x.shape[1])
        rows = torch.arange(tg.T, device=x.device)
        num_score = kappa * _seg_sum(x[rows, num_pdf], tg.frame_utt, tg.B)
        post_on_ali = den[rows, num_pdf]
        dropped = post_on_ali < DROP_FRAME_POSTERIOR
        grad = kappa * den
        grad[rows, num_pdf] -= kappa
        if drop_frames:
            grad[dropped] = 0.0
        ctx.tg = tg
        ctx.save_for_backward(grad)
        info["objective"] = (num_score - log_z).tolist()
        info["dropped"] = _seg_sum(dropped.double(), tg.frame_utt, tg.B).tolist()
        info["post_on_ali"] = _seg_sum(post_on_ali, tg.frame_utt, tg.B).tolist()
        return (log_z - num_score).to(loglikes.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple:  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return (_scale_rows(ctx.tg, grad, grad_out).to(grad_out.dtype),) + (None,) * 7


def mmi_batch(
    graphs: Sequence[LatticeGraph],
    loglikes: torch.Tensor,
    num_alis: Any,
    *,
    kappa: float = 0.1,
    boost: float = 0.0,
    silence_phones: Iterable[int] = (),
    boost_silence_error: float = 0.0,
    drop_frames: bool = True,
    lm_scale: float = 1.0,
    ali_is_pdf: bool = False,
    ref_phones: Sequence[np.ndarray | None] | None = None,
    tid_to_pdf: np.ndarray | None = None,
    tid_to_phone: np.ndarray | None = None,
) -> tuple[torch.Tensor, list[SeqStats]]:
    """:func:`mmi` of several utterances in one forward-backward: ``loglikes`` are their rows
    concatenated in the order of ``graphs``, ``num_alis`` one alignment each (``ref_phones``
    one each, or None). Returns the loss per utterance (shape (B,)) and the stats of each."""
    graphs, alis, phones_in = _batch_inputs(graphs, loglikes, num_alis, ref_phones)
    num_pdfs, boosts = [], []
    for g, ali, ph in zip(graphs, alis, phones_in, strict=True):
        num_pdf, num_phone = _reference(
            g, ali, ali_is_pdf, ph, tid_to_pdf, tid_to_phone, need_phones=boost != 0
        )
        if num_pdf.min() < 0 or num_pdf.max() >= loglikes.shape[1]:
            raise LatticeGraphError(f"utterance {g.utt}: numerator pdf out of range")
        num_pdfs.append(num_pdf)
        if boost != 0.0:
            assert num_phone is not None
            hyp_phone = _arc_phones(g, tid_to_phone)
            ref_phone = np.where(g.tid > 0, num_phone[np.clip(g.frame, 0, g.num_frames - 1)], -1)
            err = boost_frame_error(hyp_phone, ref_phone, silence_phones, boost_silence_error)
            boosts.append(boost * err)
    tg, perm = _batch_graph(graphs, loglikes.device)
    boost_t = None
    if boosts:
        boost_t = torch.as_tensor(np.concatenate(boosts)[perm], device=loglikes.device)
    info: dict = {}
    loss = _MmiFunction.apply(
        loglikes,
        tg,
        torch.as_tensor(np.concatenate(num_pdfs), device=loglikes.device),
        boost_t,
        float(kappa),
        float(lm_scale),
        bool(drop_frames),
        info,
    )
    stats = [
        SeqStats(objective=o, frames=g.num_frames, dropped_frames=round(d), post_on_ali=p)
        for g, o, d, p in zip(
            graphs, info["objective"], info["dropped"], info["post_on_ali"], strict=True
        )
    ]
    return loss, stats


def mmi(
    graph: LatticeGraph,
    loglikes: torch.Tensor,
    num_ali: np.ndarray | torch.Tensor | list[int],
    *,
    ref_phones: np.ndarray | None = None,
    **options: Any,
) -> tuple[torch.Tensor, SeqStats]:
    """(Boosted) MMI loss of one utterance, as Kaldi nnet1's ``nnet-train-mmi-sequential``.

    ``num_ali``: the numerator alignment, transition-ids (Kaldi ``ali.*.gz``), or pdf-ids with
    ``ali_is_pdf=True`` (boosting then needs ``ref_phones``). The objective is
    ``kappa * sum_t loglikes[t, num_pdf[t]] - log Z`` where Z sums exp(score) over the lattice
    paths (the numerator carries no graph cost, as in Kaldi; a constant offset). The loss is its
    negation; its gradient is ``kappa * (den_post - num_post)`` per (frame, pdf).

    Options (those of :func:`mmi_batch`): ``kappa``, ``lm_scale``, ``tid_to_pdf``,
    ``tid_to_phone``, ``ali_is_pdf``, and:

    ``boost`` b > 0 (boosted MMI, Kaldi's ``LatticeBoost`` as the nnet2/nnet3 discriminative
    trainers use it): each emitting denominator arc's score gets ``+ b * err``, with ``err`` the
    phone frame error of :func:`boost_frame_error` (``boost_silence_error`` = Kaldi's
    max_silence_error, 0 by default; ``silence_phones``). Same posteriors as ``- b * (1 - err)``,
    i.e. subtracting b times the frame accuracy; log Z differs by the constant b*T.

    ``drop_frames`` (Kaldi ``--drop-frames``, default true): frames whose numerator pdf has a
    denominator posterior below 1e-20 (the lattice misses the numerator there) get a zero
    gradient row; they are counted in ``stats.dropped_frames`` either way (the objective value
    is unchanged, as in Kaldi).
    """
    loss, stats = mmi_batch([graph], loglikes, [num_ali], ref_phones=[ref_phones], **options)
    return loss[0], stats[0]


class _MpeFunction(torch.autograd.Function):
    """Loss per utterance = -E[A]; forward passes in ``forward``, backward passes in
    ``backward``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        loglikes: torch.Tensor,
        tg: _TorchGraph,
        acc: torch.Tensor,
        kappa: float,
        lm_scale: float,
        info: dict,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        scores = _arc_scores(tg, loglikes.detach().double(), kappa, lm_scale, None)
        alpha, log_z, alpha_s, exp_acc = _forward(tg, scores, acc)
        assert alpha_s is not None and exp_acc is not None
        ctx.save_for_backward(scores, alpha, alpha_s, log_z, exp_acc, acc)
        ctx.tg, ctx.kappa, ctx.num_pdfs, ctx.drop = tg, kappa, loglikes.shape[1], drop
        info["objective"] = exp_acc.tolist()
        return (-exp_acc).to(loglikes.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple:  # type: ignore[override]
        scores, alpha, alpha_s, log_z, exp_acc, acc = ctx.saved_tensors
        tg: _TorchGraph = ctx.tg
        beta, beta_s = _backward(tg, scores, acc)
        assert beta_s is not None
        gamma = _arc_gamma(tg, scores, alpha, beta, log_z)
        # d E[A] / d score(a) = gamma(a) * (E[A | path through a] - E[A])
        d_score = gamma * (alpha_s[tg.src] + acc + beta_s[tg.dst] - exp_acc[tg.arc_utt])
        grad = _to_frame_pdf(tg, d_score, ctx.num_pdfs) * (-ctx.kappa)
        if ctx.drop is not None:
            grad[ctx.drop] = 0.0
        return (_scale_rows(tg, grad, grad_out).to(grad_out.dtype),) + (None,) * 6


def smbr_batch(
    graphs: Sequence[LatticeGraph],
    loglikes: torch.Tensor,
    ref_alis: Any,
    *,
    kappa: float = 0.1,
    silence_phones: Iterable[int] = (),
    criterion: Literal["smbr", "mpfe"] = "smbr",
    one_silence_class: bool = True,
    lm_scale: float = 1.0,
    ali_is_pdf: bool = False,
    ref_phones: Sequence[np.ndarray | None] | None = None,
    tid_to_pdf: np.ndarray | None = None,
    tid_to_phone: np.ndarray | None = None,
    drop_frames: bool = False,
) -> tuple[torch.Tensor, list[SeqStats]]:
    """:func:`smbr` of several utterances in one forward-backward (see :func:`mmi_batch` for
    the layout); returns the loss per utterance (shape (B,)) and the stats of each."""
    graphs, alis, phones_in = _batch_inputs(graphs, loglikes, ref_alis, ref_phones)
    silence_phones = list(silence_phones)
    need_phones = criterion == "mpfe" or bool(silence_phones)
    accs, missing_all = [], []
    for g, ali, ph in zip(graphs, alis, phones_in, strict=True):
        ref_pdf, ref_phone = _reference(
            g, ali, ali_is_pdf, ph, tid_to_pdf, tid_to_phone, need_phones
        )
        frames = np.clip(g.frame, 0, g.num_frames - 1)
        hyp_phone = _arc_phones(g, tid_to_phone) if need_phones else np.full(g.num_arcs, -1)
        accs.append(
            frame_accuracy(
                g.pdf,
                hyp_phone,
                ref_pdf[frames],
                ref_phone[frames] if ref_phone is not None else np.full(g.num_arcs, -1),
                silence_phones,
                criterion,
                one_silence_class,
            )
        )
        on_lattice = np.zeros(g.num_frames, dtype=bool)
        hit = (g.tid > 0) & (g.pdf == ref_pdf[frames])
        on_lattice[g.frame[hit]] = True
        missing_all.append(~on_lattice)
    tg, perm = _batch_graph(graphs, loglikes.device)
    missing = np.concatenate(missing_all)
    drop = None
    if drop_frames and missing.any():
        drop = torch.as_tensor(missing, device=loglikes.device)
    acc_t = torch.as_tensor(np.concatenate(accs)[perm], dtype=torch.float64, device=loglikes.device)
    info: dict = {}
    loss = _MpeFunction.apply(loglikes, tg, acc_t, float(kappa), float(lm_scale), info, drop)
    stats = [
        SeqStats(objective=o, frames=g.num_frames, dropped_frames=int(m.sum()))
        for g, o, m in zip(graphs, info["objective"], missing_all, strict=True)
    ]
    return loss, stats


def smbr(
    graph: LatticeGraph,
    loglikes: torch.Tensor,
    ref_ali: np.ndarray | torch.Tensor | list[int],
    *,
    ref_phones: np.ndarray | None = None,
    **options: Any,
) -> tuple[torch.Tensor, SeqStats]:
    """sMBR (or MPFE) loss = -E[A] of one utterance, as Kaldi's ``nnet-train-mpe-sequential``.

    E[A] = sum over lattice paths of P(path) * A(path), P(path) proportional to exp(score), A =
    sum over frames of :func:`frame_accuracy` of the path's arc on that frame against
    ``ref_ali`` (transition-ids, or pdf-ids with ``ali_is_pdf=True`` plus ``ref_phones`` when
    silence phones or MPFE need them). Computed with Kaldi's two-pass forward-backward
    (log-domain alpha/beta, linear-domain accuracy-weighted alpha'/beta'); the gradient is
    ``dLoss/dloglikes[t, p] = -kappa * sum of gamma(a) * (alpha'(src) + acc(a) + beta'(dst) -
    E[A])`` over the arcs a on frame t with pdf p. ``stats.objective`` is E[A] (Kaldi's
    utterance frame accuracy). Options: those of :func:`smbr_batch` (``kappa``,
    ``silence_phones``, ``criterion``, ``one_silence_class``, ``lm_scale``, ``ali_is_pdf``,
    ``tid_to_pdf``, ``tid_to_phone``, ``drop_frames``).

    ``stats.dropped_frames`` counts the frames whose reference pdf is on no lattice arc of that
    frame (the lattice misses the numerator path there; its denominator posterior is exactly 0).
    With ``drop_frames`` their gradient rows are zeroed, the rule of Kaldi's MMI ``--drop-frames``
    (nnet1's sMBR tool has no such option; off by default here, as there).
    """
    loss, stats = smbr_batch([graph], loglikes, [ref_ali], ref_phones=[ref_phones], **options)
    return loss[0], stats[0]
