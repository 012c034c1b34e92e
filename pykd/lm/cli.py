"""``pykd train-lm``, ``pykd lm-eval`` and ``pykd format-lm``."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def _train_lm(args: argparse.Namespace) -> int:
    from pykd.lm.irstlm import train_lm

    train_lm(
        args.text,
        args.out_arpa,
        order=args.order,
        smoothing=args.smoothing,
        prune_threshold=args.prune_threshold,
        words_txt=args.words,
        unk=args.unk,
        kaldi_text=args.kaldi_text,
        log_file=args.log,
    )
    return 0


def _lm_eval(args: argparse.Namespace) -> int:
    from pykd.lm.arpa import evaluate, read_arpa, read_sentences

    lm = read_arpa(args.arpa)
    res = evaluate(lm, read_sentences(args.text, args.kaldi_text), unk=args.unk)
    print(f"{args.text}: {res.summary()}")
    if args.irstlm:
        from pykd.lm.irstlm import irstlm_eval

        ref = irstlm_eval(args.arpa, args.text, args.kaldi_text)
        ours = res.perplexity_irstlm(len(lm.vocab))
        print(
            f"IRSTLM compile-lm --eval: PP={ref['PP']:.2f} (with its OOV penalty, dub=1e7) "
            f"Noov={int(ref['Noov'])} OOV={ref['OOV']:.2f}% of Nw={int(ref['Nw'])}; "
            f"ours with the same penalty: {ours:.2f} "
            f"(relative difference {100 * abs(ref['PP'] - ours) / ours:.3f}%)"
        )
    return 0


def _format_lm(args: argparse.Namespace) -> int:
    from pykd.lm.gfst import format_lm

    format_lm(args.lang_dir, args.arpa, args.lexicon, args.out_dir, max_order=args.max_order)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the LM sub-commands."""
    p = subparsers.add_parser("train-lm", help="train an ARPA n-gram LM with IRSTLM")
    p.add_argument("text", help="training text (plain sentences, or Kaldi text with --kaldi-text)")
    p.add_argument("out_arpa", help="output ARPA (.gz to gzip)")
    p.add_argument("--order", type=int, default=3)
    p.add_argument("--smoothing", default="improved-kneser-ney", help="build-lm.sh -s value")
    p.add_argument("--prune-threshold", default=None, help="prune-lm --threshold (e.g. 1e-7)")
    p.add_argument("--words", default=None, help="words.txt: map words outside it to --unk")
    p.add_argument("--unk", default="<unk>")
    p.add_argument("--kaldi-text", action="store_true", help="first field is an utterance id")
    p.add_argument("--log", default=None, help="IRSTLM log (default: beside out_arpa)")
    p.set_defaults(func=_train_lm)

    p = subparsers.add_parser("lm-eval", help="perplexity and OOV rate of a text under an ARPA")
    p.add_argument("arpa")
    p.add_argument("text")
    p.add_argument("--kaldi-text", action="store_true", help="first field is an utterance id")
    p.add_argument("--unk", default="<unk>")
    p.add_argument("--irstlm", action="store_true", help="cross-check with compile-lm --eval")
    p.set_defaults(func=_lm_eval)

    p = subparsers.add_parser("format-lm", help="lang dir + ARPA -> lang dir with G.fst")
    p.add_argument("lang_dir")
    p.add_argument("arpa")
    p.add_argument("lexicon", help="lexicon (checked to exist, as Kaldi's format_lm.sh)")
    p.add_argument("out_dir")
    p.add_argument("--max-order", type=int, default=-1, help="highest n-gram order used")
    p.set_defaults(func=_format_lm)
