"""Hybrid-decoding log-likelihoods from an acoustic network (checked by :mod:`pykd.nnet.validate`).

Per frame ``t`` and pdf ``j``: ``loglike[t, j] = log_softmax(logits[t])[j] - s * log_prior[j]``
(``s`` = prior scale, natural log, unscaled by the acoustic weight), the input
``latgen-faster-mapped`` / ``steps_kd/decode_loglikes.sh`` expect. Matrices are float32, written
as a Kaldi binary ark + scp (kaldiio), atomically: a killed job leaves no ark that looks complete.

The network and its input come from the front end (:mod:`pykd.frontend`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable

import numpy as np
import torch

from pykd.features.ark import ArkScpWriter
from pykd.frontend.model import ModelForward
from pykd.nnet.validate import LoglikesError

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- maths
def loglikes_from_logits(
    logits: np.ndarray | torch.Tensor,
    log_priors: np.ndarray | None = None,
    prior_scale: float = 1.0,
) -> np.ndarray:
    """``log_softmax(logits) - prior_scale * log_priors`` per row, as float32 ``(T, num_pdfs)``.

    The softmax is computed in float64 so that large logits lose no precision.
    """
    x = torch.as_tensor(logits).detach().to("cpu", torch.float64)
    if x.ndim != 2:
        raise LoglikesError(f"logits must be a (frames, pdfs) matrix, got shape {tuple(x.shape)}")
    out = torch.log_softmax(x, dim=1)
    if log_priors is not None and prior_scale != 0.0:
        lp = torch.as_tensor(np.asarray(log_priors, dtype=np.float64))
        if lp.shape != (x.shape[1],):
            raise LoglikesError(f"{lp.numel()} log-priors for {x.shape[1]} network outputs")
        out = out - prior_scale * lp
    return out.numpy().astype(np.float32)


def checked_loglikes(
    utt: str,
    num_frames: int,
    logits: np.ndarray | torch.Tensor,
    log_priors: np.ndarray | None,
    prior_scale: float,
) -> np.ndarray:
    """:func:`loglikes_from_logits` of one utterance's logits, checked: one row per input frame,
    every value finite (a :class:`LoglikesError` naming the utterance otherwise)."""
    if tuple(logits.shape[:1]) != (num_frames,):
        raise LoglikesError(
            f"utterance {utt}: model gave {logits.shape[0]} rows for {num_frames} frames"
        )
    mat = loglikes_from_logits(logits, log_priors, prior_scale)
    if not np.isfinite(mat).all():
        raise LoglikesError(f"utterance {utt}: non-finite log-likelihoods (NaN/inf)")
    return mat


# ----------------------------------------------------------------------------- writing
def write_loglikes(
    model_forward: ModelForward,
    utterances: Iterable[tuple[str, np.ndarray]],
    log_priors: np.ndarray | None,
    prior_scale: float,
    out_ark: str | os.PathLike,
    out_scp: str | os.PathLike,
    splice_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    forward_for_utt: Callable[[str], ModelForward] | None = None,
) -> dict[str, int]:
    """Write log-likelihoods of each ``(utt, features)`` to ``out_ark`` + ``out_scp``.

    ``model_forward`` maps a ``(T, input_dim)`` float32 matrix to ``(T, num_pdfs)`` logits;
    ``splice_fn`` (optional) is applied to the features first (e.g. CMVN'd, unspliced input).
    ``log_priors`` None means no prior division. ``forward_for_utt`` (optional) gives the
    ``model_forward`` of each utterance (e.g. per-speaker adapted parameters), replacing
    ``model_forward``. Returns frames per utterance written.
    """
    frames: dict[str, int] = {}
    with ArkScpWriter(out_ark, out_scp) as writer:
        for utt, feats in utterances:
            x = np.asarray(feats, dtype=np.float32)
            if splice_fn is not None:
                x = np.asarray(splice_fn(x), dtype=np.float32)
            if x.ndim != 2 or x.shape[0] == 0:
                raise LoglikesError(f"utterance {utt}: bad input shape {x.shape}")
            forward = model_forward if forward_for_utt is None else forward_for_utt(utt)
            mat = checked_loglikes(utt, x.shape[0], forward(x), log_priors, prior_scale)
            writer.write(utt, mat)
            frames[utt] = mat.shape[0]
    log.info("wrote log-likelihoods of %d utterances to %s", len(frames), out_ark)
    return frames
