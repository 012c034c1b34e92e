"""``pykd`` sub-commands for decoding, lattices and scoring (Kaldi binary names and options).

* ``pykd latgen-faster-mapped [opts] <model> <HCLG.fst> <loglikes-rspecifier> <lattice-wspecifier>
  [<words-wspecifier> [<alignments-wspecifier>]]``
* (``pykd gmm-latgen-faster``: :mod:`pykd.gmm.decode_cli`, with these decoding options)
* ``pykd lattice-best-path [opts] <lattice-rspecifier> [<words-wspecifier> [<ali-wspecifier>]]``
* ``pykd lattice-copy [--write-text] <lattice-rspecifier> <lattice-wspecifier>``
* ``pykd score-kaldi [--min-lmwt 7 --max-lmwt 17 --word-ins-penalty 0.0,0.5,1.0] <data-dir>
  <lang-or-graph-dir> <decode-dir>``
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pykd.cli_args import str_to_bool
from pykd.decode.decoder import (
    DecodeOptions,
    LatticeDecoder,
    _write_text_ark,
    best_path,
    load_graph,
    run_decoding,
)
from pykd.decode.score import ScoreOptions, read_words, score_dir
from pykd.features.ark import read_matrices
from pykd.io.datadir import read_table
from pykd.kaldi.lattice_io import CompactLattice, read_lattices, write_lattices

log = logging.getLogger(__name__)


def add_decode_opts(p: argparse.ArgumentParser) -> None:
    d = DecodeOptions()
    p.add_argument("--beam", type=float, default=16.0, help="decoding beam (Kaldi default 16)")
    p.add_argument("--lattice-beam", type=float, default=10.0, help="lattice beam (default 10)")
    p.add_argument("--max-active", type=int, default=2147483647, help="max active states")
    p.add_argument("--min-active", type=int, default=d.min_active)
    p.add_argument("--acoustic-scale", type=float, default=0.1, help="acoustic scale (default 0.1)")
    p.add_argument(
        "--allow-partial", type=str_to_bool, default=False, help="output partial results"
    )
    p.add_argument("--determinize-lattice", type=str_to_bool, default=True)
    p.add_argument("--word-symbol-table", default=None, help="words.txt (for the log)")
    p.add_argument(
        "--max-beam-widenings",
        type=int,
        default=d.max_beam_widenings,
        help="re-runs of the lattice search at 2x, 4x.. beam when it reaches no final state "
        "(or, with --check-best-path, misses the 1-best)",
    )
    p.add_argument(
        "--check-best-path",
        type=str_to_bool,
        default=d.check_best_path,
        help="also run a max-active 1-best search and widen the lattice beam if the lattice "
        "misses its path (slower)",
    )
    p.add_argument("model", help="final.mdl (its transition model is used)")
    p.add_argument("fst", help="HCLG.fst (vector or Kaldi's const)")
    p.add_argument("input", help="rspecifier of the per-frame input")
    p.add_argument("lattice_wspecifier", help="e.g. 'ark:|gzip -c > lat.1.gz' or lat.1.gz")
    p.add_argument("words_wspecifier", nargs="?", default=None)
    p.add_argument("ali_wspecifier", nargs="?", default=None)


def decode_opts(args: argparse.Namespace) -> DecodeOptions:
    return DecodeOptions(
        beam=args.beam,
        lattice_beam=args.lattice_beam,
        max_active=args.max_active,
        min_active=args.min_active,
        acoustic_scale=args.acoustic_scale,
        allow_partial=args.allow_partial,
        determinize_lattice=args.determinize_lattice,
        max_beam_widenings=args.max_beam_widenings,
        check_best_path=args.check_best_path,
    )


def lattice_path(spec: str) -> str:
    """Accept Kaldi's ``ark:|gzip -c > x.gz`` form as the plain path ``x.gz`` (atomic write)."""
    head, sep, rest = spec.partition(":")
    rest = rest.strip()
    if sep and head == "ark" and rest.startswith("|") and "gzip -c >" in rest:
        return rest.split(">", 1)[1].strip()
    return spec


def check_inputs(*paths: str) -> None:
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"input file not found: {p}")


def decode_with_options(
    args: argparse.Namespace, tm: Any, scores: Iterator[tuple[str, np.ndarray]]
) -> int:
    """The decoding half of ``latgen-faster-mapped`` / ``gmm-latgen-faster``: ``scores``
    (per-utterance log-likelihoods over pdfs) through ``args.fst`` with the decoding options,
    into the lattice / words / alignment outputs. Exit status 1 when no utterance decoded."""
    graph = load_graph(args.fst)
    decoder = LatticeDecoder(graph, tm, decode_opts(args))
    id2word = read_words(args.word_symbol_table) if args.word_symbol_table else None
    summary = run_decoding(
        decoder,
        scores,
        lattice_path(args.lattice_wspecifier),
        args.words_wspecifier,
        args.ali_wspecifier,
        id2word,
    )
    return 0 if summary.done else 1


def cmd_latgen_mapped(args: argparse.Namespace) -> int:
    from pykd.kaldi.model_io import read_transition_model

    check_inputs(args.model, args.fst)
    return decode_with_options(args, read_transition_model(args.model), read_matrices(args.input))


def cmd_best_path(args: argparse.Namespace) -> int:
    id2word = read_words(args.word_symbol_table) if args.word_symbol_table else None
    words_out, ali_out = [], []
    done = failed = 0
    tot_g = tot_a = 0.0
    frames = 0
    for utt, lat in read_lattices(args.lattice_rspecifier):
        if not isinstance(lat, CompactLattice):
            raise ValueError(f"{args.lattice_rspecifier}: {utt} is not a CompactLattice")
        bp = best_path(lat, args.lm_scale, args.acoustic_scale, args.word_ins_penalty)
        if bp is None:
            log.warning("utterance %s: lattice has no path", utt)
            failed += 1
            continue
        words, tids, g, a = bp
        done += 1
        frames += len(tids)
        tot_g += g * args.lm_scale
        tot_a += a * args.acoustic_scale
        if id2word:
            log.info("%s %s", utt, " ".join(id2word.get(w, str(w)) for w in words))
        log.info(
            "For utterance %s, best cost %.6g + %.6g = %.6g over %d frames.",
            utt, g * args.lm_scale, a * args.acoustic_scale,
            g * args.lm_scale + a * args.acoustic_scale, len(tids),
        )  # fmt: skip
        words_out.append(utt + " " + "".join(f"{w} " for w in words) + "\n")
        ali_out.append(utt + " " + "".join(f"{t} " for t in tids) + "\n")
    if args.words_wspecifier:
        _write_text_ark(args.words_wspecifier, words_out)
    if args.ali_wspecifier:
        _write_text_ark(args.ali_wspecifier, ali_out)
    if frames:
        log.info(
            "Overall cost per frame is %.6g = %.6g [graph] + %.6g [acoustic] over %d frames.",
            (tot_g + tot_a) / frames, tot_g / frames, tot_a / frames, frames,
        )  # fmt: skip
    log.info("Done %d lattices, failed for %d", done, failed)
    return 0 if done else 1


def cmd_lattice_copy(args: argparse.Namespace) -> int:
    if args.include and args.exclude:
        raise ValueError("lattice-copy: give --include or --exclude, not both")
    lats = list(read_lattices(args.lattice_rspecifier))
    total = len(lats)
    if args.include:
        keep = set(read_table(args.include, allow_empty_value=True))  # first fields
        lats = [(utt, lat) for utt, lat in lats if utt in keep]
    elif args.exclude:
        drop = set(read_table(args.exclude, allow_empty_value=True))
        lats = [(utt, lat) for utt, lat in lats if utt not in drop]
    write_lattices(lattice_path(args.lattice_wspecifier), lats, text=args.write_text)
    if args.include or args.exclude:
        log.info("Wrote %d out of %d utterances.", len(lats), total)  # Kaldi's subset log line
    log.info("Done copying %d lattices.", len(lats))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    opts = ScoreOptions(
        min_lmwt=args.min_lmwt,
        max_lmwt=args.max_lmwt,
        word_ins_penalties=tuple(p for p in args.word_ins_penalty.split(",") if p),
        run_sclite=not args.no_sclite,
    )
    if args.non_scored_words is not None:
        opts.non_scored = tuple(args.non_scored_words.split())
    line, _ = score_dir(args.data_dir, args.lang_or_graph_dir, args.decode_dir, opts)
    print(line)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "latgen-faster-mapped", help="decode log-likelihoods over pdfs into lattices"
    )
    add_decode_opts(p)
    p.set_defaults(func=cmd_latgen_mapped)

    p = subparsers.add_parser("lattice-best-path", help="1-best words/alignment of lattices")
    p.add_argument("--acoustic-scale", type=float, default=1.0)
    p.add_argument("--lm-scale", type=float, default=1.0)
    p.add_argument("--word-ins-penalty", type=float, default=0.0)
    p.add_argument("--word-symbol-table", default=None)
    p.add_argument("lattice_rspecifier")
    p.add_argument("words_wspecifier", nargs="?", default=None)
    p.add_argument("ali_wspecifier", nargs="?", default=None)
    p.set_defaults(func=cmd_best_path)

    p = subparsers.add_parser("lattice-copy", help="copy lattices (binary <-> text, gz)")
    p.add_argument("--write-text", action="store_true", help="text output (like ark,t:)")
    p.add_argument("--include", help="copy only the utterances listed (first field of each line)")
    p.add_argument("--exclude", help="copy all but the utterances listed")
    p.add_argument("lattice_rspecifier")
    p.add_argument("lattice_wspecifier")
    p.set_defaults(func=cmd_lattice_copy)

    p = subparsers.add_parser("score-kaldi", help="score lattices like steps/score_kaldi.sh")
    p.add_argument("--min-lmwt", type=int, default=7)
    p.add_argument("--max-lmwt", type=int, default=17)
    p.add_argument("--word-ins-penalty", default="0.0,0.5,1.0")
    p.add_argument(
        "--non-scored-words", default=None, help="space-separated words dropped from ref and hyp"
    )
    p.add_argument("--no-sclite", action="store_true", help="skip the sclite reports")
    p.add_argument("data_dir")
    p.add_argument("lang_or_graph_dir")
    p.add_argument("decode_dir")
    p.set_defaults(func=cmd_score)
