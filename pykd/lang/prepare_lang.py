"""``utils/prepare_lang.sh`` in Python: dict dir -> lang dir with identical files.

Writes ``<tmp-dir>`` (lexiconp.txt, lexiconp_disambig.txt, align_lexicon.txt, lex_ndisambig,
phone_map.txt) and ``<lang-dir>`` (phones.txt, words.txt, topo, oov.{txt,int}, L.fst,
L_disambig.fst, phones/*), each byte-for-byte as Kaldi writes them for the same options.
Also writes ``<dict-dir>/lexiconp.txt`` when missing, as Kaldi does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pykd.io.atomic import atomic_path, atomic_write_text
from pykd.lang.dictionary import LexiconEntry, lexicon_to_lexiconp_text, read_dict_dir
from pykd.lang.lexicon_fst import make_lexicon_fst
from pykd.lang.symbols import SymbolTable, sym2int_lines

log = logging.getLogger(__name__)

POSITIONS = ("_B", "_E", "_I", "_S")


@dataclass
class LangOptions:
    position_dependent_phones: bool = True
    sil_prob: float = 0.5
    num_sil_states: int = 5
    num_nonsil_states: int = 3
    share_silence_phones: bool = False
    phone_symbol_table: Path | None = None


def _lines(rows: list[list[str]] | list[str]) -> str:
    return "".join((r if isinstance(r, str) else " ".join(r)) + "\n" for r in rows)


def position_dependent(entry: LexiconEntry) -> list[str]:
    """Word-position suffixes: _S for one phone, else _B, _I..., _E."""
    p = entry.phones
    if len(p) == 1:
        return [p[0] + "_S"]
    return [p[0] + "_B"] + [x + "_I" for x in p[1:-1]] + [p[-1] + "_E"]


def add_lex_disambig(lexicon: list[tuple[str, str, list[str]]]) -> tuple[list[list[str]], int]:
    """Append ``#n`` to prons that are a prefix of another or shared (add_lex_disambig.pl).

    Returns the prons with disambiguation symbols and the highest ``n`` used (0 if none).
    """
    count: dict[tuple[str, ...], int] = {}
    prefixes: set[tuple[str, ...]] = set()
    for _, _, pron in lexicon:
        t = tuple(pron)
        count[t] = count.get(t, 0) + 1
        for i in range(1, len(t)):
            prefixes.add(t[:i])
    last: dict[tuple[str, ...], int] = {}
    out, max_n = [], 0
    for _, _, pron in lexicon:
        t = tuple(pron)
        if t in prefixes or count[t] > 1 or not t:
            n = last.get(t, 0) + 1
            last[t] = n
            max_n = max(max_n, n)
            out.append(list(pron) + [f"#{n}"])
        else:
            out.append(list(pron))
    return out, max_n


def gen_topo(num_nonsil: int, num_sil: int, nonsil: list[int], sil: list[int]) -> str:
    """The HMM topology file that Kaldi's ``utils/gen_topo.pl`` writes."""
    o = ["<Topology>", "<TopologyEntry>", "<ForPhones>", " ".join(map(str, nonsil)), "</ForPhones>"]
    for s in range(num_nonsil):
        o.append(
            f"<State> {s} <PdfClass> {s} <Transition> {s} 0.75 <Transition> {s + 1} 0.25 </State>"
        )
    o += [f"<State> {num_nonsil} </State>", "</TopologyEntry>"]
    o += ["<TopologyEntry>", "<ForPhones>", " ".join(map(str, sil)), "</ForPhones>"]
    if num_sil > 1:
        p = _perl_num(1.0 / (num_sil - 1))
        o.append(
            "<State> 0 <PdfClass> 0 "
            + "".join(f"<Transition> {t} {p} " for t in range(num_sil - 1))
            + "</State>"
        )
        for s in range(1, num_sil - 1):
            o.append(
                f"<State> {s} <PdfClass> {s} "
                + "".join(f"<Transition> {t} {p} " for t in range(1, num_sil))
                + "</State>"
            )
        last = num_sil - 1
        o.append(
            f"<State> {last} <PdfClass> {last} <Transition> {last} 0.75 "
            f"<Transition> {num_sil} 0.25 </State>"
        )
        o.append(f"<State> {num_sil} </State>")
    else:
        o.append("<State> 0 <PdfClass> 0 <Transition> 0 0.75 <Transition> 1 0.25 </State>")
        o.append("<State> 1 </State>")
    o += ["</TopologyEntry>", "</Topology>"]
    return "\n".join(o) + "\n"


def _perl_num(x: float) -> str:
    """A number as Perl prints it (%.15g)."""
    return f"{x:.15g}"


def _write(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def prepare_lang(
    dict_dir: str | Path,
    oov_word: str,
    tmp_dir: str | Path,
    lang_dir: str | Path,
    opts: LangOptions | None = None,
) -> Path:
    """Run the whole of prepare_lang.sh; returns the lang dir."""
    opts = opts or LangOptions()
    if opts.num_sil_states < 1 or opts.num_nonsil_states < 1:
        raise ValueError("--num-sil-states and --num-nonsil-states must be >= 1")
    src, tmp, lang = Path(dict_dir), Path(tmp_dir), Path(lang_dir)
    d = read_dict_dir(src)
    if not d.has_lexiconp:
        log.info("creating %s from %s", src / "lexiconp.txt", src / "lexicon.txt")
        text = (src / "lexicon.txt").read_text(encoding="utf-8")
        _write(src / "lexiconp.txt", lexicon_to_lexiconp_text(text))
    tmp.mkdir(parents=True, exist_ok=True)
    (lang / "phones").mkdir(parents=True, exist_ok=True)
    ph = lang / "phones"
    pos = opts.position_dependent_phones

    # Lexicon with (optionally) position-dependent phones, and the phone map.
    if pos:
        lex = [(e.word, e.prob, position_dependent(e)) for e in d.lexicon]
        _write(tmp / "lexiconp.txt", "".join(f"{w} {p} {' '.join(x)}\n" for w, p, x in lex))
        pmap = {s: [s] + [s + x for x in POSITIONS] for s in d.silence_phones}
        pmap |= {s: [s + x for x in POSITIONS] for s in d.nonsilence_phones}
        _write(
            tmp / "phone_map.txt",
            "".join(f"{s} " + "".join(f"{x} " for x in v) + "\n" for s, v in pmap.items()),
        )
    else:
        lex = [(e.word, e.prob, list(e.phones)) for e in d.lexicon]
        _write(tmp / "lexiconp.txt", (src / "lexiconp.txt").read_text(encoding="utf-8"))
        pmap = {s: [s] for s in d.silence_phones + d.nonsilence_phones}
        _write(tmp / "phone_map.txt", "".join(f"{s} {s}\n" for s in pmap))

    def apply_map(rows: list[list[str]]) -> list[list[str]]:
        return [[y for x in r for y in pmap[x]] for r in rows]

    if opts.share_silence_phones:
        sets = apply_map([d.silence_phones] + d.nonsilence_lines)
        roots = [["not-shared", "not-split"] + sets[0]] + [
            ["shared", "split"] + s for s in sets[1:]
        ]
    else:
        sets = apply_map(d.silence_lines + d.nonsilence_lines)
        roots = [["shared", "split"] + s for s in sets]
    silence = [p for r in apply_map(d.silence_lines) for p in r]
    nonsilence = [p for r in apply_map(d.nonsilence_lines) for p in r]
    _write(ph / "sets.txt", _lines(sets))
    _write(ph / "roots.txt", _lines(roots))
    _write(ph / "silence.txt", _lines(silence))
    _write(ph / "nonsilence.txt", _lines(nonsilence))
    _write(ph / "optional_silence.txt", (src / "optional_silence.txt").read_text("utf-8"))
    _write(ph / "context_indep.txt", _lines(silence))
    eq = _lines(apply_map(d.extra_questions))
    if pos:
        for suf in POSITIONS:
            eq += "".join(f"{p}{suf} " for p in d.nonsilence_phones) + "\n"
        for suf in ("",) + POSITIONS:
            eq += "".join(f"{p}{suf} " for p in d.silence_phones) + "\n"
        _write(ph / "extra_questions.txt", eq)
        kinds = {"_B": "begin", "_E": "end", "_I": "internal", "_S": "singleton"}
        _write(
            ph / "word_boundary.txt",
            "".join(f"{p} {kinds.get(p[-2:], 'nonword')}\n" for p in silence + nonsilence),
        )
    else:
        _write(ph / "extra_questions.txt", eq)
        (ph / "word_boundary.txt").unlink(missing_ok=True)
        (ph / "word_boundary.int").unlink(missing_ok=True)

    # Disambiguation symbols: those the lexicon needs, plus one for silence in L_disambig.
    disambig_prons, ndisambig = add_lex_disambig(lex)
    ndisambig += 1
    _write(
        tmp / "lexiconp_disambig.txt",
        "".join(
            f"{w}\t{p}\t{' '.join(x)}\n" for (w, p, _), x in zip(lex, disambig_prons, strict=True)
        ),
    )
    _write(tmp / "lex_ndisambig", f"{ndisambig}\n")
    disambig = [f"#{n}" for n in range(ndisambig + 1)]
    _write(ph / "disambig.txt", _lines(disambig))

    # Symbol tables.
    if opts.phone_symbol_table is not None:
        phones = SymbolTable.read(opts.phone_symbol_table)
        missing = [p for p in silence + nonsilence + disambig if p not in phones]
        if missing:
            raise ValueError(
                f"{opts.phone_symbol_table}: lacks phones of the lexicon or disambiguation "
                f"symbols: {' '.join(missing[:20])}"
            )
        phones_text = Path(opts.phone_symbol_table).read_text(encoding="utf-8")
    else:
        phones = SymbolTable.from_symbols(["<eps>"] + silence + nonsilence + disambig)
        phones_text = phones.to_text()
    _write(lang / "phones.txt", phones_text)
    vocab = sorted({w for w, _, _ in lex}, key=lambda s: s.encode("utf-8"))
    for bad in ("<s>", "</s>"):
        if bad in vocab:
            raise ValueError(f"{src}: {bad} is in the vocabulary (it is reserved)")
    words = SymbolTable.from_symbols(["<eps>"] + vocab + ["#0", "<s>", "</s>"])
    _write(lang / "words.txt", words.to_text())
    if oov_word not in words:
        raise ValueError(f"OOV word {oov_word!r} is not in the lexicon of {src}")
    _write(lang / "oov.txt", oov_word + "\n")
    _write(lang / "oov.int", f"{words[oov_word]}\n")

    # Align lexicon.
    align = [f"{w} {' '.join(x)}" for w, _, x in lex]
    align.append(f"<eps> {d.optional_silence}")
    _write(tmp / "align_lexicon.txt", _lines(align))
    align_full = sorted({f"{a.split()[0]} {a}" for a in align}, key=lambda s: s.encode("utf-8"))
    _write(ph / "align_lexicon.txt", _lines(align_full))
    a_int = sym2int_lines(align_full, phones, slice(2, None), "phones.txt")
    _write(
        ph / "align_lexicon.int", sym2int_lines(a_int.splitlines(), words, slice(0, 2), "words.txt")
    )

    # Integer and colon-separated versions.
    def txt(name: str) -> list[str]:
        return (ph / name).read_text(encoding="utf-8").splitlines()

    for f in ("silence", "nonsilence", "optional_silence", "disambig", "context_indep"):
        ints = sym2int_lines(txt(f"{f}.txt"), phones, what="phones.txt")
        _write(ph / f"{f}.int", ints)
        _write(ph / f"{f}.csl", ":".join(ints.split()) + "\n")
    for f in ("sets", "extra_questions"):
        _write(ph / f"{f}.int", sym2int_lines(txt(f"{f}.txt"), phones, what="phones.txt"))
    _write(ph / "roots.int", sym2int_lines(txt("roots.txt"), phones, slice(2, None), "phones.txt"))
    if pos:
        _write(
            ph / "word_boundary.int",
            sym2int_lines(txt("word_boundary.txt"), phones, slice(0, 1), "phones.txt"),
        )
    _write(ph / "wdisambig.txt", "#0\n")
    _write(ph / "wdisambig_phones.int", f"{phones['#0']}\n")
    _write(ph / "wdisambig_words.int", f"{words['#0']}\n")

    # Topology.
    sil_ids = phones.map(silence)
    nonsil_ids = phones.map(nonsilence)
    _write(
        lang / "topo",
        gen_topo(opts.num_nonsil_states, opts.num_sil_states, nonsil_ids, sil_ids),
    )

    # Lexicon FSTs.
    sil_phone = d.optional_silence
    plain = [(w, float(p), x) for w, p, x in lex]
    fst = make_lexicon_fst(plain, phones, words, opts.sil_prob, sil_phone)
    with atomic_path(lang / "L.fst") as tmp_path:
        if not fst.write(str(tmp_path)):
            raise RuntimeError(f"could not write {lang / 'L.fst'}")
    dis = [(w, float(p), x) for (w, p, _), x in zip(lex, disambig_prons, strict=True)]
    fst_d = make_lexicon_fst(
        dis,
        phones,
        words,
        opts.sil_prob,
        sil_phone,
        sil_disambig=f"#{ndisambig}",
        self_loops=([phones["#0"]], [words["#0"]]),
    )
    with atomic_path(lang / "L_disambig.fst") as tmp_path:
        if not fst_d.write(str(tmp_path)):
            raise RuntimeError(f"could not write {lang / 'L_disambig.fst'}")
    log.info(
        "prepare-lang: %d words, %d phones (%d disambig) -> %s",
        len(vocab),
        len(phones),
        len(disambig),
        lang,
    )
    return lang
