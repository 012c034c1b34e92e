"""``pykd`` sub-commands for decoding graphs.

* ``pykd mkgraph [--self-loop-scale 0.1] [--transition-scale 1.0] [--remove-oov] [--no-cache]
  [--model MDL] <lang-dir> <model-dir> <graph-dir>`` — Kaldi's ``utils/mkgraph.sh``.
* ``pykd fst-info <fst>`` — states/arcs/finals of a VectorFst or ConstFst (e.g. Kaldi's HCLG).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from pykd.graph.hclg import MkgraphOptions, fst_to_arrays, mkgraph, read_fst

log = logging.getLogger(__name__)


def _mkgraph(args: argparse.Namespace) -> int:
    opts = MkgraphOptions(
        transition_scale=args.transition_scale,
        self_loop_scale=args.self_loop_scale,
        remove_oov=args.remove_oov,
        use_cache=not args.no_cache,
    )
    stats = mkgraph(args.lang_dir, args.model_dir, args.graph_dir, opts, model=args.model)
    if not stats.up_to_date:
        sizes = ", ".join(f"{k} {s}/{a}" for k, (s, a) in stats.sizes.items())
        log.info("states/arcs: %s; %.2f s", sizes, stats.total_seconds)
    return 0


def _fst_info(args: argparse.Namespace) -> int:
    a = fst_to_arrays(read_fst(args.fst))
    n_final = int(np.isfinite(a.final).sum())
    print(f"# of states\t{a.num_states}")
    print(f"# of arcs\t{a.num_arcs}")
    print(f"initial state\t{a.start}")
    print(f"# of final states\t{n_final}")
    print(f"# of input epsilons\t{int((a.ilabel == 0).sum())}")
    print(f"# of output epsilons\t{int((a.olabel == 0).sum())}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "mkgraph",
        help="build HCLG.fst like Kaldi's utils/mkgraph.sh",
        description="Builds <graph-dir>/HCLG.fst (OpenFst binary VectorFst, readable by Kaldi) "
        "from <lang-dir> (L_disambig.fst, G.fst, phones/, words.txt) and <model-dir> (tree, "
        "final.mdl), plus words.txt, phones.txt, phones/, num_pdfs, disambig_tid.int.",
    )
    p.add_argument("--self-loop-scale", type=float, default=0.1, help="default: %(default)s")
    p.add_argument("--transition-scale", type=float, default=1.0, help="default: %(default)s")
    p.add_argument(
        "--remove-oov", action="store_true", help="drop G paths through the OOV word (oov.int)"
    )
    p.add_argument("--no-cache", action="store_true", help="do not keep LG/CLG in <lang-dir>/tmp")
    p.add_argument("--model", default=None, help="model file (default: <model-dir>/final.mdl)")
    p.add_argument("lang_dir")
    p.add_argument("model_dir")
    p.add_argument("graph_dir")
    p.set_defaults(func=_mkgraph)

    p = subparsers.add_parser(
        "fst-info", help="sizes of an FST (VectorFst or Kaldi's ConstFst HCLG.fst)"
    )
    p.add_argument("fst")
    p.set_defaults(func=_fst_info)
