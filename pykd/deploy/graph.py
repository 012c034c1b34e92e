"""The exported computation as a torch module: features -> CMVN -> splice -> network ->
log-softmax - scaled log-prior (what ``latgen-faster-mapped`` takes).

Inputs (all float32 but ``rows``):

* ``feats`` ``(N, D)``: new raw features (no CMVN) of one utterance, N >= 0.
* ``context`` ``(C, D)``: CMVN'd frames kept from the previous call (C = 0 at the start).
* ``cmvn_stats`` ``(2, D + 1)``: Kaldi CMVN stats (row 0: sums and count; row 1: sums of
  squares). Source ``speaker``: the speaker's stats (as in ``cmvn.scp``), used for every frame.
  Source ``online``: the stats of the frames before ``feats`` (plus a prior); frame ``t`` is
  normalised by the stats of every frame up to and including ``t``.
* ``rows`` ``(M, 2S + 1)`` int64: for each output frame, the rows of ``[context; CMVN(feats)]``
  that make its spliced input (the runtime clamps them at the utterance's edges, as Kaldi's
  splice-feats repeats the first / last frame).

Outputs: ``loglikes`` ``(M, P)``, ``normed`` ``(N, D)`` (CMVN'd ``feats``, for the next call's
context) and ``cmvn_stats_out`` (online: updated by ``feats``; speaker: unchanged).
"""

from __future__ import annotations

import torch
from torch import nn

from pykd.deploy.options import CMVN_SOURCES
from pykd.features.cmvn import VAR_FLOOR


class DeployGraph(nn.Module):
    """A trained network wrapped with its input contract and prior division."""

    def __init__(
        self,
        network: nn.Module,
        feat_dim: int,
        cmvn: str,
        cmvn_source: str,
        log_prior_term: torch.Tensor | None,
    ) -> None:
        super().__init__()
        if cmvn_source not in CMVN_SOURCES:
            raise ValueError(f"unknown CMVN source {cmvn_source!r} (one of {CMVN_SOURCES})")
        self.network = network.eval()
        self.feat_dim = feat_dim
        self.cmvn = cmvn
        self.online = cmvn_source == "online"
        term = torch.zeros(0) if log_prior_term is None else log_prior_term.float()
        self.has_prior = log_prior_term is not None
        self.register_buffer("log_prior_term", term)

    def _normalise(
        self, feats: torch.Tensor, stats: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.feat_dim
        if self.cmvn == "none":
            return feats, stats
        if self.online:
            sums = torch.cumsum(feats, 0) + stats[0, :d]
            counts = torch.cumsum(torch.ones_like(feats[:, :1]), 0) + stats[0, d:]
            squares = torch.cumsum(feats * feats, 0) + stats[1, :d]
            new_row0 = torch.cat([stats[0, :d] + feats.sum(0), stats[0, d:] + feats.shape[0]])
            new_row1 = torch.cat([stats[1, :d] + (feats * feats).sum(0), stats[1, d:]])
            stats_out = torch.stack([new_row0, new_row1])
        else:
            sums, counts, squares = stats[0:1, :d], stats[0:1, d:], stats[1:2, :d]
            stats_out = stats
        mean = sums / counts
        if self.cmvn == "mean":
            return feats - mean, stats_out
        var = torch.clamp(squares / counts - mean * mean, min=VAR_FLOOR)
        return (feats - mean) * torch.rsqrt(var), stats_out

    def forward(
        self,
        feats: torch.Tensor,
        context: torch.Tensor,
        cmvn_stats: torch.Tensor,
        rows: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        normed, stats_out = self._normalise(feats, cmvn_stats)
        frames = torch.cat([context, normed], 0)
        spliced = frames[rows].reshape(rows.shape[0], rows.shape[1] * self.feat_dim)
        out = torch.log_softmax(self.network(spliced), dim=-1)
        if self.has_prior:
            out = out - self.log_prior_term
        return out, normed, stats_out
