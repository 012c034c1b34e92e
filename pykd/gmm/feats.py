"""GMM feature pipeline, as Kaldi's GMM scripts build it on the fly.

``apply-cmvn $cmvn_opts --utt2spk=ark:utt2spk scp:cmvn.scp scp:feats.scp ark:- |
add-deltas ark:- ark:-``: per-speaker CMVN (the front end's reader,
:func:`pykd.frontend.features.iter_features`) then Kaldi's
delta features (order 2, window 2 by default: 13 -> 39 dims).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pykd.frontend.features import FeatureInputError, iter_features

log = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def delta_scales(order: int, window: int) -> tuple[np.ndarray, ...]:
    """Kaldi's DeltaFeatures filters: ``scales[i]`` has ``2 * i * window + 1`` taps."""
    if order < 0 or window < 1:
        raise ValueError(f"bad delta options order={order} window={window}")
    scales = [np.ones(1, dtype=np.float64)]
    normalizer = float(sum(j * j for j in range(-window, window + 1)))
    for i in range(1, order + 1):
        prev = scales[i - 1]
        cur = np.zeros(len(prev) + 2 * window, dtype=np.float64)
        for j in range(-window, window + 1):
            # cur[k + j + window] += j * prev[k]
            cur[j + window : j + window + len(prev)] += j * prev
        scales.append(cur / normalizer)
    return tuple(s.astype(np.float32) for s in scales)


def add_deltas(feats: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Kaldi ``add-deltas``: append ``order`` delta blocks; edge frames are repeated.

    Accumulates in float32 in Kaldi's order, so results match add-deltas to float precision.
    """
    feats = np.asarray(feats, dtype=np.float32)
    if feats.ndim != 2:
        raise ValueError(f"features must be a matrix, got shape {feats.shape}")
    num_frames, dim = feats.shape
    out = np.empty((num_frames, dim * (order + 1)), dtype=np.float32)
    if num_frames == 0:
        return out
    max_off = order * window
    padded = np.concatenate(
        [np.repeat(feats[:1], max_off, 0), feats, np.repeat(feats[-1:], max_off, 0)], axis=0
    )
    for i, filt in enumerate(delta_scales(order, window)):
        half = (len(filt) - 1) // 2
        block = np.zeros((num_frames, dim), dtype=np.float32)
        for j, scale in enumerate(filt):
            if scale != 0.0:
                start = max_off + j - half
                block += scale * padded[start : start + num_frames]
        out[:, i * dim : (i + 1) * dim] = block
    return out


@dataclass(frozen=True)
class CmvnOpts:
    """The subset of apply-cmvn options Kaldi recipes put in ``cmvn_opts``."""

    norm_means: bool = True
    norm_vars: bool = False

    @classmethod
    def parse(cls, text: str) -> CmvnOpts:
        norm_means, norm_vars = True, False
        for tok in shlex.split(text):
            name, _, value = tok.partition("=")
            flag = value.lower() in ("", "true", "1")
            if name == "--norm-vars":
                norm_vars = flag
            elif name == "--norm-means":
                norm_means = flag
            else:
                raise FeatureInputError(f"unsupported cmvn option {tok!r} in cmvn_opts {text!r}")
        if not norm_means and norm_vars:
            raise FeatureInputError("--norm-vars=true needs --norm-means=true (as in apply-cmvn)")
        return cls(norm_means, norm_vars)

    @property
    def mode(self) -> str:
        """The front end's CMVN mode (mean, meanvar, none)."""
        return "none" if not self.norm_means else ("meanvar" if self.norm_vars else "mean")


def iter_gmm_feats(
    data_dir: str | Path,
    cmvn_opts: str = "",
    delta_order: int = 2,
    delta_window: int = 2,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(utt, feats)`` of a data dir in feats.scp order: CMVN per speaker + deltas.

    Needs ``feats.scp``, ``utt2spk`` and (unless means are not normalised) ``cmvn.scp``
    with stats per speaker.
    """
    data = Path(data_dir)
    mode = CmvnOpts.parse(cmvn_opts).mode
    for utt, mat in iter_features(data, mode):
        yield utt, add_deltas(mat, delta_order, delta_window)


def load_gmm_feats(data_dir: str | Path, cmvn_opts: str = "") -> dict[str, np.ndarray]:
    """All utterances of :func:`iter_gmm_feats` as a dict (insertion = feats.scp order)."""
    return dict(iter_gmm_feats(data_dir, cmvn_opts))
