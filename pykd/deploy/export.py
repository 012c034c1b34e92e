"""``pykd export-model``: a trained checkpoint -> one ONNX file (fp32) and its int8 version.

The file holds the whole path from raw features to decoder input (:mod:`pykd.deploy.graph`):
CMVN (the checkpoint's mode; stats of the speaker, or accumulated online from a prior), the
splice, the network, log-softmax and the scaled log-prior. The int8 file is onnxruntime's dynamic
quantisation of it: weights of every MatMul/Gemm stored as int8 with one scale per output
column, activations quantised per call (no calibration data needed); biases, CMVN and the
log-softmax stay float32.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from pykd.data.priors import read_log_priors
from pykd.deploy.graph import DeployGraph
from pykd.deploy.options import CMVN_SOURCES, FP32_NAME, INT8_NAME, ExportOptions
from pykd.deploy.runtime import INPUTS, OUTPUTS, ExportedModel, ModelInfo
from pykd.frontend.features import SpeakerCmvn
from pykd.frontend.model import load_acoustic_model
from pykd.frontend.spec import InputSpec
from pykd.io.atomic import atomic_path, atomic_write_text
from pykd.models import count_parameters, mflops_per_frame

log = logging.getLogger(__name__)


def global_cmvn_prior(data_dir: str | os.PathLike, frames: float) -> np.ndarray:
    """The summed CMVN stats of every speaker of ``data_dir`` scaled to a count of ``frames``."""
    stats = SpeakerCmvn.of_data_dir(data_dir, "mean").stats
    if not stats:
        raise ValueError(f"{data_dir}/cmvn.scp has no stats")
    total = np.sum([np.asarray(s, np.float64) for s in stats.values()], axis=0)
    count = total[0, -1]
    if count < 1:
        raise ValueError(f"{data_dir}/cmvn.scp: total frame count {count}")
    return (total * (frames / count)).astype(np.float32)


def _example_inputs(feat_dim: int, splice: int) -> tuple[torch.Tensor, ...]:
    frames = 4 * splice + 3
    rows = torch.clamp(torch.arange(frames)[:, None] + torch.arange(-splice, splice + 1), 0)
    stats = torch.zeros(2, feat_dim + 1)
    stats[0, feat_dim] = 1.0
    return torch.randn(frames, feat_dim), torch.zeros(0, feat_dim), stats, rows % frames


def _export_graph(graph: DeployGraph, feat_dim: int, splice: int, path: Path) -> None:
    dim = torch.export.Dim
    shapes = {
        "feats": {0: dim("frames", min=0)}, "context": {0: dim("context", min=0)},
        "cmvn_stats": None, "rows": {0: dim("outputs", min=0)},
    }  # fmt: skip
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph, _example_inputs(feat_dim, splice), str(tmp), input_names=list(INPUTS),
            output_names=list(OUTPUTS), dynamic_shapes=shapes, dynamo=True,
            external_data=False, verbose=False,
        )  # fmt: skip


def _set_metadata(path: Path, info: ModelInfo) -> None:
    """Write pykd's metadata into the file at ``path`` (and drop the exporter's debug notes)."""
    import onnx  # noqa: PLC0415

    model = onnx.load(str(path))
    for node in model.graph.node:  # the exporter's per-node provenance (stack traces): ~4 KB/node
        del node.metadata_props[:]
        node.doc_string = ""
    del model.metadata_props[:]
    for key, value in info.to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = "pykd acoustic model: raw features -> Kaldi log-likelihoods (docs/deploy.md)"
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def quantize_int8(fp32: Path, out: Path, info: ModelInfo) -> None:
    """onnxruntime dynamic quantisation: int8 weights per output channel (MatMul/Gemm)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)  # the quantiser logs every tensor at INFO on the root logger
    try:
        with atomic_path(out) as tmp:
            quantize_dynamic(
                str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                op_types_to_quantize=["MatMul", "Gemm"],
            )  # fmt: skip
    finally:
        root.setLevel(level)
    _set_metadata(out, replace(info, quantization="int8-dynamic"))


def export_model(
    checkpoint: str | os.PathLike, out_dir: str | os.PathLike, opts: ExportOptions
) -> dict[str, object]:
    """Write ``out_dir/model.onnx`` (+ ``model.int8.onnx``) and ``export.json``; returns the
    summary written to ``export.json`` (sizes, parameters, MFLOPs, max |onnx - torch|)."""
    if opts.cmvn_source not in CMVN_SOURCES:
        raise ValueError(f"unknown CMVN source {opts.cmvn_source!r} (one of {CMVN_SOURCES})")
    model, meta = load_acoustic_model(checkpoint)
    spec = InputSpec.from_meta(meta)
    feat_dim = int(meta["input_dim"]) // (2 * spec.splice + 1)
    prior_term = None
    if opts.prior_counts:
        lp = read_log_priors(opts.prior_counts, int(meta["num_pdfs"]))
        prior_term = torch.from_numpy(opts.prior_scale * lp).float()
    online_prior = None
    if opts.cmvn_source == "online" and spec.cmvn != "none" and opts.global_cmvn_data:
        online_prior = global_cmvn_prior(opts.global_cmvn_data, opts.prior_frames)
    info = ModelInfo(
        feat_dim=feat_dim, splice=spec.splice, num_pdfs=int(meta["num_pdfs"]), cmvn=spec.cmvn,
        cmvn_source=opts.cmvn_source, online_prior_stats=online_prior,
        prior_scale=opts.prior_scale if prior_term is not None else 0.0,
        has_priors=prior_term is not None, quantization="none",
        num_params=count_parameters(model), mflops_per_frame=round(mflops_per_frame(model), 4),
    )  # fmt: skip
    graph = DeployGraph(model, feat_dim, spec.cmvn, opts.cmvn_source, prior_term).eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = out / FP32_NAME
    _export_graph(graph, feat_dim, spec.splice, fp32)
    _set_metadata(fp32, info)
    max_diff = check_against_torch(graph, fp32)
    files = {"fp32": fp32}
    if opts.int8:
        quantize_int8(fp32, out / INT8_NAME, info)
        files["int8"] = out / INT8_NAME
    summary: dict[str, object] = {
        "checkpoint": str(checkpoint),
        "model": json.loads(info.to_metadata()["pykd.model"]) | {"online_prior_stats": None},
        "online_prior_frames": opts.prior_frames if online_prior is not None else 0,
        "files": {k: {"path": str(p), "bytes": p.stat().st_size} for k, p in files.items()},
        "max_abs_diff_fp32_vs_torch": max_diff,
    }
    atomic_write_text(out / "export.json", json.dumps(summary, indent=1) + "\n")
    log.info(
        "exported %s -> %s (%s); fp32 %.0f KB, max |onnx - torch| %.2g%s",
        checkpoint, out, info.describe(), fp32.stat().st_size / 1024, max_diff,
        f"; int8 {(out / INT8_NAME).stat().st_size / 1024:.0f} KB" if opts.int8 else "",
    )  # fmt: skip
    return summary


def check_against_torch(graph: DeployGraph, path: Path, frames: int = 300, seed: int = 0) -> float:
    """Max |onnx - torch| of the log-likelihoods of random features through both (a file that
    does not reproduce the network is an error, not a warning)."""
    exported = ExportedModel(path)
    d = exported.info.feat_dim
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(frames, d)).astype(np.float32)
    stats = np.zeros((2, d + 1), np.float32)
    stats[0, :d], stats[1, :d], stats[0, d] = feats.sum(0), (feats * feats).sum(0), frames
    if exported.info.cmvn_source == "online":
        stats = exported.initial_stats()
    got = exported.utterance(feats, stats if exported.info.cmvn_source == "speaker" else None)
    offsets = np.arange(-exported.info.splice, exported.info.splice + 1)
    rows = np.clip(np.arange(frames)[:, None] + offsets, 0, frames - 1)
    with torch.no_grad():
        want = graph(
            torch.from_numpy(feats), torch.zeros(0, d), torch.from_numpy(stats),
            torch.from_numpy(rows),
        )[0].numpy()  # fmt: skip
    diff = float(np.abs(got - want).max())
    if not diff < 1e-3:
        raise RuntimeError(f"{path}: exported model differs from the network by {diff}")
    return diff
