"""The one reader of a data dir's features with per-speaker CMVN (feats.scp, cmvn.scp, utt2spk).

Errors name the utterance, the file and, for CMVN, the speaker: a NaN or a dimension that does not
fit the stats would otherwise only show up as a non-finite loss or a shape error far away.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from pykd.features.cmvn import apply_cmvn
from pykd.frontend.spec import CMVN_MODES, InputSpec
from pykd.frontend.splice import splice
from pykd.io.compressed import kaldiio
from pykd.io.datadir import read_table


class FeatureInputError(ValueError):
    """Features that cannot be a network's (or GMM's) input; the message names the utterance."""


class SpeakerCmvn:
    """Per-speaker CMVN stats of a data dir, applied to one utterance's features at a time.

    ``mode``: ``mean`` (Kaldi apply-cmvn's default), ``meanvar`` or ``none``. ``utt2spk`` None with
    stats means per-utterance stats (keyed by utterance).
    """

    def __init__(
        self,
        cmvn_scp: str | os.PathLike | None,
        utt2spk: str | os.PathLike | Mapping[str, str] | None,
        mode: str,
    ) -> None:
        if mode not in CMVN_MODES:
            raise FeatureInputError(f"unknown CMVN mode {mode!r} (one of {', '.join(CMVN_MODES)})")
        self.mode = mode
        self.stats: dict[str, np.ndarray] = {}
        self.utt2spk: dict[str, str] | None = None
        if mode == "none":
            return
        if cmvn_scp is None or not Path(cmvn_scp).is_file():
            raise FileNotFoundError(f"{cmvn_scp} is needed for cmvn={mode}")
        self.stats = {k: np.asarray(v) for k, v in kaldiio.load_scp(os.fspath(cmvn_scp)).items()}
        if isinstance(utt2spk, Mapping):
            self.utt2spk = dict(utt2spk)
        elif utt2spk is not None:
            if not Path(utt2spk).is_file():
                raise FileNotFoundError(f"{utt2spk} is needed for cmvn={mode}")
            self.utt2spk = read_table(utt2spk)

    @classmethod
    def of_data_dir(cls, data_dir: str | os.PathLike, mode: str) -> SpeakerCmvn:
        """The stats of ``data_dir/cmvn.scp`` by ``data_dir/utt2spk``."""
        data = Path(data_dir)
        return cls(data / "cmvn.scp", data / "utt2spk", mode)

    def apply(self, utt: str, feats: np.ndarray, where: str) -> np.ndarray:
        """``feats`` of ``utt`` normalised by its speaker's stats (unchanged with mode none)."""
        if self.mode == "none":
            return feats
        spk = utt if self.utt2spk is None else self.utt2spk.get(utt)
        if spk is None or spk not in self.stats:
            raise FeatureInputError(f"{where}: no CMVN stats (speaker {spk!r})")
        try:
            return apply_cmvn(feats, self.stats[spk], norm_vars=self.mode == "meanvar")
        except ValueError as err:
            raise FeatureInputError(f"{where}, CMVN of speaker {spk}: {err}") from err


def check_finite(feats: np.ndarray, where: str) -> None:
    """FeatureInputError naming ``where`` when ``feats`` holds NaN or inf."""
    if not np.isfinite(feats).all():
        bad = int((~np.isfinite(feats)).any(axis=1).sum())
        raise FeatureInputError(f"{where}: {bad} of {len(feats)} frames have NaN/inf features")


def iter_features(
    data_dir: str | os.PathLike, cmvn: str = "mean"
) -> Iterator[tuple[str, np.ndarray]]:
    """``(utt, features)`` of ``data_dir/feats.scp`` in its order, finite-checked, with
    per-speaker CMVN (``cmvn``: mean, meanvar or none), as float32."""
    data = Path(data_dir)
    feats_scp = data / "feats.scp"
    if not feats_scp.is_file():
        raise FileNotFoundError(f"no features: {feats_scp} is missing")
    norm = SpeakerCmvn.of_data_dir(data, cmvn)
    for utt, feats in kaldiio.load_scp_sequential(str(feats_scp)):
        where = f"utterance {utt} of {feats_scp}"
        feats = np.asarray(feats, dtype=np.float32)
        check_finite(feats, where)
        yield utt, np.asarray(norm.apply(utt, feats, where), dtype=np.float32)


def iter_network_inputs(
    data_dir: str | os.PathLike, spec: InputSpec
) -> Iterator[tuple[str, np.ndarray]]:
    """``(utt, network input rows)``: :func:`iter_features` with the spec's CMVN, spliced
    +-``spec.splice`` frames (edge frames repeated, as Kaldi's splice-feats)."""
    for utt, feats in iter_features(data_dir, spec.cmvn):
        yield utt, splice(feats, spec.splice, spec.splice)
