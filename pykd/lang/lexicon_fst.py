"""Lexicon FSTs (``L.fst``, ``L_disambig.fst``) built the way Kaldi's prepare_lang.sh builds them.

Kaldi runs ``utils/lang/make_lexicon_fst.py`` (text arcs), ``fstcompile``, optionally
``fstaddselfloops`` and ``fstarcsort --sort_type=olabel``. We produce the same arcs in the same
order, number states by first appearance (as ``fstcompile`` does) and call the same OpenFst/Kaldi
operations through ``kaldifst``, so the binary FST has identical states, arcs and arc order.

Topology with silence (``sil_prob`` > 0): state 0 is the start, state 1 the loop state (final),
state 2 the "after silence" state. 0 -> 1 costs ``-log(1 - sil_prob)``, 0 -> 2 costs
``-log(sil_prob)``; 2 -> 1 reads the optional silence phone (through one extra state reading the
silence disambiguation symbol in ``L_disambig``). Each pronunciation is a chain leaving state 1
whose first arc outputs the word; its last phone goes back to 1 (no silence) or to 2 (silence).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import kaldifst

from pykd.lang.fst_sort import arcsort
from pykd.lang.symbols import SymbolTable

log = logging.getLogger(__name__)

EPS = "<eps>"


@dataclass(frozen=True)
class TextArc:
    src: int
    dest: int
    ilabel: str
    olabel: str
    cost: float = 0.0


def lexicon_arcs(
    lexicon: Sequence[tuple[str, float, Sequence[str]]],
    sil_prob: float,
    sil_phone: str,
    sil_disambig: str | None = None,
) -> tuple[list[TextArc], list[tuple[int, float]]]:
    """Arcs and final states of the lexicon FST, in make_lexicon_fst.py's order."""
    arcs: list[TextArc] = []
    if sil_prob == 0.0:
        loop, next_state = 0, 1
        for word, prob, pron in lexicon:
            cost = -math.log(prob)
            cur = loop
            for i in range(len(pron) - 1):
                arcs.append(
                    TextArc(
                        cur, next_state, pron[i], word if i == 0 else EPS, cost if i == 0 else 0.0
                    )
                )
                cur, next_state = next_state, next_state + 1
            i = len(pron) - 1
            arcs.append(
                TextArc(
                    cur,
                    loop,
                    pron[i] if i >= 0 else EPS,
                    word if i <= 0 else EPS,
                    cost if i <= 0 else 0.0,
                )
            )
        return arcs, [(loop, 0.0)]
    if not 0.0 < sil_prob < 1.0:
        raise ValueError(f"sil-prob must be in [0, 1), got {sil_prob}")
    sil_cost = -math.log(sil_prob)
    no_sil_cost = -math.log(1.0 - sil_prob)
    start, loop, sil, next_state = 0, 1, 2, 3
    arcs.append(TextArc(start, loop, EPS, EPS, no_sil_cost))
    arcs.append(TextArc(start, sil, EPS, EPS, sil_cost))
    if sil_disambig is None:
        arcs.append(TextArc(sil, loop, sil_phone, EPS))
    else:
        arcs.append(TextArc(sil, next_state, sil_phone, EPS))
        arcs.append(TextArc(next_state, loop, sil_disambig, EPS))
        next_state += 1
    for word, prob, pron in lexicon:
        pron_cost = -math.log(prob)
        cur = loop
        for i in range(len(pron) - 1):
            arcs.append(
                TextArc(
                    cur, next_state, pron[i], word if i == 0 else EPS, pron_cost if i == 0 else 0.0
                )
            )
            cur, next_state = next_state, next_state + 1
        i = len(pron) - 1
        phone = pron[i] if i >= 0 else EPS
        out = word if i <= 0 else EPS
        extra = pron_cost if i <= 0 else 0.0
        arcs.append(TextArc(cur, loop, phone, out, no_sil_cost + extra))
        arcs.append(TextArc(cur, sil, phone, out, sil_cost + extra))
    return arcs, [(loop, 0.0)]


def compile_arcs(
    arcs: Sequence[TextArc],
    finals: Sequence[tuple[int, float]],
    isyms: SymbolTable,
    osyms: SymbolTable,
) -> kaldifst.StdVectorFst:
    """``fstcompile`` equivalent: states renumbered in order of first appearance."""
    fst = kaldifst.StdVectorFst()
    ids: dict[int, int] = {}

    def state(s: int) -> int:
        if s not in ids:
            ids[s] = fst.add_state()
        return ids[s]

    for a in arcs:
        src = state(a.src)
        if len(ids) == 1:
            fst.start = src
        dest = state(a.dest)
        il = isyms.map([a.ilabel], "phones.txt")[0]
        ol = osyms.map([a.olabel], "words.txt")[0]
        fst.add_arc(src, kaldifst.StdArc(il, ol, a.cost, dest))
    for s, cost in finals:
        fst.set_final(state(s), cost)
    return fst


def make_lexicon_fst(
    lexicon: Sequence[tuple[str, float, Sequence[str]]],
    phones: SymbolTable,
    words: SymbolTable,
    sil_prob: float,
    sil_phone: str,
    sil_disambig: str | None = None,
    self_loops: tuple[Sequence[int], Sequence[int]] | None = None,
) -> kaldifst.StdVectorFst:
    """Compile the lexicon FST, add disambiguation self-loops if given, sort arcs by olabel."""
    arcs, finals = lexicon_arcs(lexicon, sil_prob, sil_phone, sil_disambig)
    fst = compile_arcs(arcs, finals, phones, words)
    if self_loops is not None:
        kaldifst.add_self_loops(fst, list(self_loops[0]), list(self_loops[1]))
    arcsort(fst, sort_type="olabel")
    return fst


def fst_to_text(fst: kaldifst.StdFst, isyms: SymbolTable, osyms: SymbolTable) -> str:
    """``fstprint --isymbols --osymbols`` text (weights 9 significant digits, One() omitted)."""
    isym = {i: s for s, i in isyms.sym2id.items()}
    osym = {i: s for s, i in osyms.sym2id.items()}
    lines = []
    it = kaldifst.StateIterator(fst)
    order = []
    while not it.done:
        order.append(it.value)
        it.next()
    start = fst.start
    order.sort(key=lambda s: (s != start, s))
    for s in order:
        ait = kaldifst.ArcIterator(fst, s)
        while not ait.done:
            a = ait.value
            w = float(a.weight.value)
            fields = [str(s), str(a.nextstate), isym[a.ilabel], osym[a.olabel]]
            if w != 0.0:
                fields.append(_fmt_weight(w))
            lines.append("\t".join(fields))
            ait.next()
        fw = float(fst.final(s).value)
        if fw != math.inf:
            lines.append(f"{s}" + (f"\t{_fmt_weight(fw)}" if fw != 0.0 else ""))
    return "\n".join(lines) + "\n"


def _fmt_weight(w: float) -> str:
    return f"{w:.9g}"
