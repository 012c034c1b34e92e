"""``pykd prepare-lang``, ``pykd prepare-dict``, ``pykd check-lang-text``, ``pykd g2p``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pykd.cli_args import str_to_bool

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare-lang",
        help="dict dir -> lang dir (Kaldi utils/prepare_lang.sh, identical output)",
        description="Usage: pykd prepare-lang [options] <dict-src-dir> <oov-dict-entry> "
        "<tmp-dir> <lang-dir>",
    )
    p.add_argument("dict_dir", type=Path)
    p.add_argument("oov_word")
    p.add_argument("tmp_dir", type=Path)
    p.add_argument("lang_dir", type=Path)
    p.add_argument("--position-dependent-phones", type=str_to_bool, default=True)
    p.add_argument("--sil-prob", type=float, default=0.5)
    p.add_argument("--num-sil-states", type=int, default=5)
    p.add_argument("--num-nonsil-states", type=int, default=3)
    p.add_argument("--share-silence-phones", type=str_to_bool, default=False)
    p.add_argument("--phone-symbol-table", type=Path, default=None)
    p.set_defaults(func=_prepare_lang)

    p = subparsers.add_parser(
        "prepare-dict",
        help="word list -> Kaldi dict dir from CMUdict (+ flite G2P for OOVs)",
    )
    p.add_argument("dict_dir", type=Path)
    p.add_argument("--words", type=Path, required=True, help="word list (first field per line)")
    p.add_argument(
        "--prons",
        choices=("all", "first"),
        default="all",
        help="CMUdict pronunciations to keep per word (default all)",
    )
    p.add_argument(
        "--g2p",
        choices=("flite", "none"),
        default="flite",
        help="G2P for words not in CMUdict (none: they are an error)",
    )
    p.add_argument("--oov-word", default="<unk>")
    p.add_argument("--sil-word", default="!SIL")
    p.add_argument(
        "--extra-lexicon",
        type=Path,
        default=None,
        help="WORD PHONE... lines that take precedence over CMUdict/G2P for listed words",
    )
    p.set_defaults(func=_prepare_dict)

    p = subparsers.add_parser(
        "check-lang-text", help="OOV rate of a transcript against <lang>/words.txt"
    )
    p.add_argument("lang_dir", type=Path)
    p.add_argument("text", type=Path)
    p.add_argument(
        "--has-keys",
        type=str_to_bool,
        default=True,
        help="first field of each line is an utterance id (Kaldi text; default true)",
    )
    p.add_argument("--top", type=int, default=20, help="how many frequent OOVs to list")
    p.add_argument(
        "--max-oov-rate", type=float, default=None, help="exit 1 if the OOV rate (0-1) exceeds this"
    )
    p.set_defaults(func=_check_text)

    p = subparsers.add_parser("g2p", help="pronounce words with flite (CMUdict ARPAbet)")
    p.add_argument("words", nargs="+")
    p.set_defaults(func=_g2p)


def _prepare_lang(args: argparse.Namespace) -> int:
    from pykd.lang.prepare_lang import LangOptions, prepare_lang

    opts = LangOptions(
        position_dependent_phones=args.position_dependent_phones,
        sil_prob=args.sil_prob,
        num_sil_states=args.num_sil_states,
        num_nonsil_states=args.num_nonsil_states,
        share_silence_phones=args.share_silence_phones,
        phone_symbol_table=args.phone_symbol_table,
    )
    prepare_lang(args.dict_dir, args.oov_word, args.tmp_dir, args.lang_dir, opts)
    return 0


def _prepare_dict(args: argparse.Namespace) -> int:
    from pykd.lang.prepare_dict import prepare_dict, read_extra_lexicon, read_word_list

    words = read_word_list(args.words)
    extra = read_extra_lexicon(args.extra_lexicon) if args.extra_lexicon else None
    prepare_dict(
        words,
        args.dict_dir,
        all_prons=args.prons == "all",
        use_g2p=args.g2p != "none",
        oov_word=args.oov_word,
        sil_word=args.sil_word,
        extra_prons=extra,
    )
    return 0


def _check_text(args: argparse.Namespace) -> int:
    from pykd.lang.check_text import check_lang_text

    rep = check_lang_text(args.lang_dir, args.text, has_keys=args.has_keys)
    print(rep.summary(args.top))
    if args.max_oov_rate is not None and rep.rate > args.max_oov_rate:
        log.error("OOV rate %.4f exceeds --max-oov-rate %.4f", rep.rate, args.max_oov_rate)
        return 1
    return 0


def _g2p(args: argparse.Namespace) -> int:
    from pykd.lang.g2p import g2p

    for w, pron in g2p(args.words).items():
        print(w, " ".join(pron))
    return 0
