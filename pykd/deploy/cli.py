"""``pykd export-model`` (steps_kd/export_model.sh)."""

from __future__ import annotations

import argparse

from pykd.cli_args import config_from_args, str_to_bool
from pykd.deploy.options import CMVN_SOURCES, ExportOptions


def _export_model(args: argparse.Namespace) -> int:
    from pykd.deploy.export import export_model  # noqa: PLC0415 (torch)
    from pykd.train.distributed import setup_torch  # noqa: PLC0415

    setup_torch(args.num_threads, "cpu")
    export_model(args.checkpoint, args.out_dir, config_from_args(ExportOptions, args))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export-model``."""
    d = ExportOptions()
    p = subparsers.add_parser(
        "export-model",
        help="a trained network as one ONNX file (+ int8): raw features -> decoder log-likelihoods",
        description="Writes OUT_DIR/model.onnx, OUT_DIR/model.int8.onnx and OUT_DIR/export.json. "
        "The file holds CMVN, splice, network, log-softmax and the scaled log-prior "
        "(docs/deploy.md); pykd make-loglikes --exported runs it.",
    )
    p.add_argument("--prior-counts", help="pdf counts (analyze-counts format) for the prior")
    p.add_argument(
        "--prior-scale", type=float, default=d.prior_scale, help="scale on the log-prior"
    )
    p.add_argument(
        "--cmvn-source", default=d.cmvn_source, choices=CMVN_SOURCES,
        help="speaker: the caller gives the speaker's CMVN stats; online: accumulated frame by "
        "frame from a prior (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--global-cmvn-data",
        help="data dir whose summed cmvn.scp stats start online CMVN (e.g. data/train_fbank)",
    )
    p.add_argument(
        "--prior-frames", type=float, default=d.prior_frames,
        help="weight in frames of those stats (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--int8", type=str_to_bool, default=d.int8, help="also write model.int8.onnx (true|false)"
    )
    p.add_argument("--num-threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("checkpoint", help="e.g. exp/hdnn_kd/final.pt")
    p.add_argument("out_dir")
    p.set_defaults(func=_export_model)
