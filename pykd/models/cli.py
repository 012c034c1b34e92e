"""``pykd model-info``: build a model from its YAML config and print its size and cost."""

from __future__ import annotations

import argparse


def _model_info(args: argparse.Namespace) -> int:
    from pykd.models import (
        build_model,
        count_parameters,
        load_model_config,
        macs_per_frame,
    )

    cfg = load_model_config(args.config)
    model = build_model(cfg, args.input_dim, args.num_pdfs)
    macs = macs_per_frame(model)
    print(
        f"{args.config}: {type(model).__name__} {cfg.to_dict()[cfg.type]}, "
        f"{args.input_dim} inputs, {args.num_pdfs} pdfs: "
        f"{count_parameters(model):,} parameters, {macs:,} multiply-adds/frame = "
        f"{2 * macs / 1e6:.3f} MFLOPs/frame"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``model-info``."""
    p = subparsers.add_parser(
        "model-info", help="print a model config's parameter count and MFLOPs per frame"
    )
    p.add_argument("config", help="YAML config with a model: section (e.g. conf/student_hdnn.yaml)")
    p.add_argument("--input-dim", type=int, default=440, help="spliced feature dim (40 x 11)")
    p.add_argument("--num-pdfs", type=int, default=4000, help="output dim (pdfs of final.mdl)")
    p.set_defaults(func=_model_info)
