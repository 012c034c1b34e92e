"""``pykd gmm-latgen-faster [opts] <model> <HCLG.fst> <features-rspecifier> <lattice-wspecifier>
[<words-wspecifier> [<alignments-wspecifier>]]``: lattices of a GMM (builtin steps/decode.sh).

Features: an ark/scp of ready features, or ``gmmfeats:<data-dir>`` for Kaldi's GMM pipeline
(per-speaker CMVN from cmvn.scp + add-deltas). Decoding options as ``pykd latgen-faster-mapped``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pykd.decode.cli import add_decode_opts, check_inputs, decode_with_options
from pykd.decode.decoder import GmmScorer
from pykd.features.ark import read_matrices
from pykd.gmm.feats import iter_gmm_feats
from pykd.kaldi.model_io import read_model


def _gmm_loglikes(
    scorer: GmmScorer, feats: Iterator[tuple[str, np.ndarray]]
) -> Iterator[tuple[str, np.ndarray]]:
    for utt, x in feats:
        yield utt, scorer(x)


def cmd_gmm_latgen(args: argparse.Namespace) -> int:
    check_inputs(args.model, args.fst)
    if args.input.startswith("gmmfeats:"):
        data = args.input.split(":", 1)[1]
        check_inputs(str(Path(data) / "feats.scp"))
        feats = iter_gmm_feats(data, args.cmvn_opts)
    else:
        feats = read_matrices(args.input)
    tm, am = read_model(args.model)
    return decode_with_options(args, tm, _gmm_loglikes(GmmScorer(am), feats))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("gmm-latgen-faster", help="decode features with a GMM into lattices")
    add_decode_opts(p)
    p.add_argument("--cmvn-opts", default="", help="for gmmfeats:<data-dir> input")
    p.set_defaults(func=cmd_gmm_latgen)
