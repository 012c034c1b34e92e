"""Frame-level losses: cross-entropy, knowledge distillation (KD), frame accuracy.

KD (Hinton et al. 2015, docs/design.md §1), averaged over frames:

    L = (1 - p) * CE(z_s, y) + p * s * CE(softmax(z_t / T), softmax(z_s / T))

where CE(q, r) = -sum_k q_k log r_k and ``s = T**2`` when ``scale_by_t2`` (the default; it keeps
the soft term's gradient the same size as T changes, since d/dz_s of the soft term is
(r - q) / T), else 1. With T = 1 the scaling is a no-op. p = 0 gives plain CE exactly.
The soft term is a cross-entropy, not a KL divergence: it differs from KL(q || r) by the
teacher's entropy, a constant for the student, so gradients are the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # target value for frames without a label (as torch's cross_entropy)


def ce_loss(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Mean cross-entropy of (N, K) logits against (N,) integer pdf targets."""
    return F.cross_entropy(logits, targets.long(), ignore_index=ignore_index)


def soft_ce_frames(
    student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Per frame -sum_k q_k log softmax(z_s / T)_k (``q``: teacher posteriors, (N, K))."""
    return -(teacher_probs * F.log_softmax(student_logits / temperature, dim=-1)).sum(dim=-1)


def soft_ce_loss(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over frames of -sum_k q_k log softmax(z_s / T)_k (``q``: teacher posteriors, (N, K)).

    ``mask`` (N,) bool selects the frames to average over (all frames if None).
    """
    if student_logits.shape != teacher_probs.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher posteriors "
            f"{tuple(teacher_probs.shape)} differ in shape"
        )
    per_frame = soft_ce_frames(student_logits, teacher_probs, temperature)
    if mask is not None:
        per_frame = per_frame[mask]
    return per_frame.mean()


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor | None,
    p: float,
    temperature: float = 1.0,
    scale_by_t2: bool = True,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """(1 - p) CE(hard targets) + p [T^2] CE(teacher softmax(z_t/T), student softmax(z_s/T)).

    ``teacher_logits`` are detached (no gradient to the teacher). ``targets`` may be None only
    when p == 1. The soft term averages over all frames (it needs no label); the hard term over
    labelled frames. p == 0 returns ``ce_loss`` exactly (the teacher is not used).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"KD weight p must be in [0, 1], got {p}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if p == 0.0:
        if targets is None:
            raise ValueError("p = 0 needs hard targets")
        return ce_loss(student_logits, targets, ignore_index)
    teacher_probs = F.softmax(teacher_logits.detach() / temperature, dim=-1)
    soft = soft_ce_loss(student_logits, teacher_probs, temperature)
    if scale_by_t2:
        soft = soft * temperature**2
    if p == 1.0:
        return soft
    if targets is None:
        raise ValueError(f"p = {p} < 1 needs hard targets")
    return (1.0 - p) * ce_loss(student_logits, targets, ignore_index) + p * soft


def sparse_soft_ce_frames(
    student_logits: torch.Tensor,
    teacher_ids: torch.Tensor,
    teacher_probs: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """:func:`soft_ce_frames` with the teacher's posteriors cached sparse: per frame the ids
    ``(N, k)`` and ``T = 1`` probabilities ``(N, k)`` of its top k pdfs; ``softmax(z_t / T)``
    over them is ``probs^(1/T)`` renormalised."""
    log_r = _scaled_log_softmax(student_logits, temperature)
    return _sparse_soft_ce(log_r, teacher_ids, teacher_probs, temperature)


def _scaled_log_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return F.log_softmax(logits if temperature == 1.0 else logits / temperature, dim=-1)


def _sparse_soft_ce(
    log_r: torch.Tensor, teacher_ids: torch.Tensor, teacher_probs: torch.Tensor, temperature: float
) -> torch.Tensor:
    q = teacher_probs.double().clamp_min(0.0) ** (1.0 / temperature)
    q = (q / q.sum(dim=-1, keepdim=True).clamp_min(1e-30)).to(log_r.dtype)
    return -(q * log_r.gather(1, teacher_ids.long())).sum(dim=-1)


def cached_kd_loss(
    student_logits: torch.Tensor,
    targets: torch.Tensor | None,
    teacher_ids: torch.Tensor,
    teacher_probs: torch.Tensor,
    p: float,
    temperature: float = 1.0,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """:func:`kd_loss` with the teacher's posteriors cached sparse: per frame the ids ``(N, k)``
    and ``T = 1`` probabilities ``(N, k)`` of its top k pdfs. ``softmax(z_t / T)`` over them is
    ``probs^(1/T)`` renormalised; with k = all pdfs this is :func:`kd_loss` exactly. At T = 1
    the hard and soft terms share one log-softmax (the same values as two)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"KD weight p must be in [0, 1], got {p}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    log_r = _scaled_log_softmax(student_logits, temperature)
    soft = _sparse_soft_ce(log_r, teacher_ids, teacher_probs, temperature).mean() * temperature**2
    if p == 1.0:
        return soft
    if targets is None:
        raise ValueError(f"p = {p} < 1 needs hard targets")
    if not bool((targets != ignore_index).any()):  # only untranscribed frames: no hard term
        return p * soft
    if temperature == 1.0:
        hard = F.nll_loss(log_r, targets.long(), ignore_index=ignore_index)
    else:
        hard = ce_loss(student_logits, targets, ignore_index)
    return (1.0 - p) * hard + p * soft


@torch.no_grad()
def frame_correct(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> tuple[int, int]:
    """(frames whose arg-max equals the target, labelled frames): sums across batches."""
    keep = targets != ignore_index
    correct = (logits.argmax(dim=-1) == targets)[keep].sum()
    return int(correct), int(keep.sum())


def frame_accuracy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> float:
    """Share of labelled frames whose arg-max pdf is the target (0.0 when none are labelled)."""
    correct, total = frame_correct(logits, targets, ignore_index)
    return correct / total if total else 0.0
