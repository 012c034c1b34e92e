"""Running an exported model with onnxruntime (no torch): a whole utterance in one call, or chunk
by chunk with the splice context and the online CMVN stats carried over (:class:`LoglikeStream`).

Both paths make the same calls on the same graph (:mod:`pykd.deploy.graph` documents its inputs),
so chunked output equals whole-utterance output up to float rounding, for any chunk size.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "pykd-acoustic-model/1"
INPUTS = ("feats", "context", "cmvn_stats", "rows")
OUTPUTS = ("loglikes", "normed", "cmvn_stats_out")


class ExportedModelError(ValueError):
    """An exported model file that cannot be used (the message names the file and why)."""


@dataclass(frozen=True)
class ModelInfo:
    """What an exported file says about itself (its ``pykd.*`` metadata)."""

    feat_dim: int
    splice: int
    num_pdfs: int
    cmvn: str  # mean | meanvar | none
    cmvn_source: str  # speaker | online
    online_prior_stats: np.ndarray | None  # (2, D + 1) initial stats of online CMVN
    prior_scale: float
    has_priors: bool
    quantization: str  # none | int8-dynamic
    num_params: int
    mflops_per_frame: float

    def to_metadata(self) -> dict[str, str]:
        """The ONNX ``metadata_props`` entries (strings)."""
        prior = None if self.online_prior_stats is None else self.online_prior_stats.tolist()
        body = {
            "feat_dim": self.feat_dim, "splice": self.splice, "num_pdfs": self.num_pdfs,
            "cmvn": self.cmvn, "cmvn_source": self.cmvn_source, "online_prior_stats": prior,
            "prior_scale": self.prior_scale, "has_priors": self.has_priors,
            "quantization": self.quantization, "num_params": self.num_params,
            "mflops_per_frame": self.mflops_per_frame,
        }  # fmt: skip
        return {"pykd.format": FORMAT, "pykd.model": json.dumps(body)}

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], where: str) -> ModelInfo:
        if meta.get("pykd.format") != FORMAT:
            raise ExportedModelError(
                f"{where}: not a pykd exported acoustic model (metadata pykd.format is "
                f"{meta.get('pykd.format')!r}, expected {FORMAT!r}); pykd export-model makes one"
            )
        try:
            body = json.loads(meta["pykd.model"])
            prior = body["online_prior_stats"]
            return cls(
                feat_dim=int(body["feat_dim"]), splice=int(body["splice"]),
                num_pdfs=int(body["num_pdfs"]), cmvn=str(body["cmvn"]),
                cmvn_source=str(body["cmvn_source"]),
                online_prior_stats=None if prior is None else np.asarray(prior, np.float32),
                prior_scale=float(body["prior_scale"]), has_priors=bool(body["has_priors"]),
                quantization=str(body["quantization"]), num_params=int(body["num_params"]),
                mflops_per_frame=float(body["mflops_per_frame"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as err:
            raise ExportedModelError(f"{where}: bad pykd.model metadata: {err!r}") from err

    def describe(self) -> str:
        return (
            f"{self.num_params:,} params, {self.num_pdfs} pdfs, {self.quantization}, "
            f"splice +-{self.splice}, cmvn {self.cmvn} ({self.cmvn_source})"
        )


def session_options(num_threads: int = 1):  # noqa: ANN201 (onnxruntime type, imported lazily)
    """onnxruntime session options with ``num_threads`` intra-op threads and one inter-op."""
    import onnxruntime as ort  # noqa: PLC0415

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only
    return opts


class ExportedModel:
    """An exported acoustic model loaded into onnxruntime (CPU)."""

    def __init__(self, path: str | os.PathLike, num_threads: int = 1) -> None:
        import onnxruntime as ort  # noqa: PLC0415

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"exported model not found: {self.path}")
        try:
            self.session = ort.InferenceSession(
                str(self.path), session_options(num_threads), providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...)
            raise ExportedModelError(
                f"{self.path}: onnxruntime cannot load it (corrupt or not an ONNX model): {err}"
            ) from err
        self.info = ModelInfo.from_metadata(
            self.session.get_modelmeta().custom_metadata_map, str(self.path)
        )
        names = tuple(i.name for i in self.session.get_inputs())
        if names != INPUTS:
            raise ExportedModelError(f"{self.path}: inputs {names}, expected {INPUTS}")

    def initial_stats(self, stats: np.ndarray | None = None) -> np.ndarray:
        """CMVN stats to start an utterance with. Source ``speaker``: ``stats``, the speaker's
        (required). ``online``: ``stats`` when given (e.g. carried from the speaker's previous
        utterance), else the file's prior (zeros without one). CMVN ``none``: zeros."""
        d = self.info.feat_dim
        if self.info.cmvn == "none":
            return np.zeros((2, d + 1), dtype=np.float32)
        if stats is None:
            if self.info.cmvn_source == "speaker":
                raise ExportedModelError(f"{self.path}: this model needs the speaker's CMVN stats")
            if self.info.online_prior_stats is not None:
                return self.info.online_prior_stats.copy()
            return np.zeros((2, d + 1), dtype=np.float32)
        stats = np.asarray(stats, dtype=np.float32)
        min_count = 1 if self.info.cmvn_source == "speaker" else 0
        if stats.shape != (2, d + 1) or stats[0, d] < min_count:
            raise ExportedModelError(
                f"CMVN stats of shape {stats.shape}, count "
                f"{stats[0, -1] if stats.ndim == 2 else '?'}: need (2, {d + 1}), count >= "
                f"{min_count}"
            )
        return stats

    def run(
        self, feats: np.ndarray, context: np.ndarray, stats: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One call of the graph: (loglikes, CMVN'd feats, stats after feats)."""
        out = self.session.run(
            list(OUTPUTS),
            {"feats": feats, "context": context, "cmvn_stats": stats, "rows": rows},
        )
        return out[0], out[1], out[2]

    def check_features(self, feats: np.ndarray, where: str) -> np.ndarray:
        """``feats`` as float32 ``(T, feat_dim)``, finite; else an error naming ``where``."""
        x = np.ascontiguousarray(feats, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.info.feat_dim:
            raise ExportedModelError(
                f"{where}: features of shape {x.shape}, the model takes (frames, "
                f"{self.info.feat_dim})"
            )
        if not np.isfinite(x).all():
            raise ExportedModelError(f"{where}: NaN/inf in the features")
        return x

    def utterance(
        self, feats: np.ndarray, stats: np.ndarray | None = None, where: str = "input"
    ) -> np.ndarray:
        """Log-likelihoods ``(T, num_pdfs)`` of one whole utterance in one graph call
        (``stats``: as :meth:`initial_stats`)."""
        return self.stream(stats).accept(feats, where, final=True)

    def stream(self, stats: np.ndarray | None = None) -> LoglikeStream:
        """A chunk-by-chunk computation of one utterance (``stats``: as :meth:`initial_stats`);
        its ``stats`` after :meth:`LoglikeStream.finish` can start the speaker's next one."""
        return LoglikeStream(self, self.initial_stats(stats))


class LoglikeStream:
    """Log-likelihoods of one utterance computed as its features arrive.

    :meth:`accept` takes the next frames and returns the log-likelihoods of every frame whose
    right context (``splice`` frames) has arrived; :meth:`finish` returns the rest (the last
    frames' right context is the last frame repeated, as Kaldi's splice-feats). Carried between
    calls: the last ``2 * splice`` CMVN'd frames and the CMVN stats.
    """

    def __init__(self, model: ExportedModel, stats: np.ndarray) -> None:
        self.model = model
        self.splice = model.info.splice
        self.stats = stats
        self.context = np.zeros((0, model.info.feat_dim), dtype=np.float32)
        self.frames_in = 0  # frames accepted so far
        self.frames_out = 0  # frames whose log-likelihoods were returned
        self.chunk_seconds: list[float] = []  # wall time of each graph call

    def _rows(self, first: int, last: int, known: int, base: int) -> np.ndarray:
        """Splice rows of frames ``first..last`` into [context; new frames] (whose row 0 is
        frame ``base``), clamped to ``[0, known)`` (the frames accepted with this call's)."""
        offsets = np.arange(-self.splice, self.splice + 1, dtype=np.int64)
        frames = np.arange(first, last + 1, dtype=np.int64)[:, None] + offsets[None, :]
        return np.clip(frames, 0, known - 1) - base

    def _step(self, feats: np.ndarray, final: bool) -> np.ndarray:
        known = self.frames_in + feats.shape[0]
        if known == 0:
            raise ExportedModelError("an utterance needs at least one frame")
        last = known - 1 if final else known - 1 - self.splice
        rows = self._rows(self.frames_out, last, known, self.frames_in - self.context.shape[0])
        start = time.perf_counter()
        loglikes, normed, self.stats = self.model.run(feats, self.context, self.stats, rows)
        self.chunk_seconds.append(time.perf_counter() - start)
        keep = 2 * self.splice
        frames = np.concatenate([self.context, normed], 0)
        self.context = frames[max(0, frames.shape[0] - keep) :]
        self.frames_in = known
        self.frames_out = max(self.frames_out, last + 1)
        return loglikes

    def accept(self, feats: np.ndarray, where: str = "input", final: bool = False) -> np.ndarray:
        """Log-likelihoods of the frames completed by ``feats`` (possibly none); with ``final``,
        ``feats`` end the utterance and every remaining frame is returned (one graph call)."""
        return self._step(self.model.check_features(feats, where), final=final)

    def finish(self) -> np.ndarray:
        """Log-likelihoods of the remaining frames (the end of the utterance)."""
        empty = np.zeros((0, self.model.info.feat_dim), dtype=np.float32)
        return self._step(empty, final=True)
