"""ARPA -> G.fst (kaldilm, i.e. Kaldi's arpa2fst) and ``format_lm``: lang dir + G.fst.

Kaldi's arpa2fst also runs ``RemoveRedundantStates`` (a non-final state whose only arc is its
back-off arc is bypassed); kaldilm 1.15.4 does not, so :func:`remove_redundant_states` does it here.
On kaldi-ref/lm this turns kaldilm's 136 states / 414 arcs into Kaldi's 128 / 406.
"""

from __future__ import annotations

import gzip
import heapq
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path

import kaldifst

from pykd.io.atomic import atomic_path
from pykd.lm.arpa import BOS, EOS, read_arpa

log = logging.getLogger(__name__)


def read_symbols(words_txt: str | os.PathLike) -> dict[str, int]:
    """A Kaldi symbol table (``word id`` lines) as a dict."""
    table: dict[str, int] = {}
    with open(words_txt, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[1].isdigit():
                raise ValueError(f"{words_txt}:{lineno}: expected 'word id', got {line.strip()!r}")
            table[fields[0]] = int(fields[1])
    return table


def check_arpa_words(arpa: str | os.PathLike, words_txt: str | os.PathLike) -> None:
    """Raise ValueError naming every ARPA word missing from ``words_txt``."""
    symbols = read_symbols(words_txt)
    missing = sorted(read_arpa(arpa).words() - set(symbols))
    if missing:
        shown = " ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise ValueError(
            f"{arpa}: {len(missing)} word(s) not in {words_txt}: {shown} "
            "(map them to <unk> when training the LM, or add them to the lexicon)"
        )


def _is_final(fst: kaldifst.StdVectorFst, state: int) -> bool:
    return math.isfinite(fst.final(state).value)


def remove_redundant_states(fst: kaldifst.StdVectorFst, disambig: int) -> kaldifst.StdVectorFst:
    """Bypass non-final, non-start states whose only arc is a back-off (``disambig``) arc."""
    n = fst.num_states
    arcs = [list(kaldifst.ArcIterator(fst, s)) for s in range(n)]
    bypass: dict[int, tuple[int, float]] = {}
    for s in range(n):
        if s != fst.start and not _is_final(fst, s) and len(arcs[s]) == 1:
            arc = arcs[s][0]
            if arc.ilabel == disambig and arc.olabel == 0 and arc.nextstate != s:
                bypass[s] = (arc.nextstate, arc.weight.value)

    def resolve(s: int) -> tuple[int, float]:
        """Follow bypassed states to a kept one, adding their back-off costs."""
        cost, seen = 0.0, set()
        while s in bypass and s not in seen:
            seen.add(s)
            s, weight = bypass[s]
            cost += weight
        return s, cost

    out = kaldifst.StdVectorFst()
    keep = [s for s in range(n) if s not in bypass]
    new_id = {}
    for s in keep:
        new_id[s] = out.add_state()
    out.start = new_id[fst.start]
    for s in keep:
        out.set_final(new_id[s], fst.final(s))
        for arc in arcs[s]:
            dest, extra = resolve(arc.nextstate)
            weight = kaldifst.TropicalWeight(arc.weight.value + extra)
            out.add_arc(new_id[s], kaldifst.StdArc(arc.ilabel, arc.olabel, weight, new_id[dest]))
    kaldifst.connect(out)
    return out


def arpa_to_gfst(
    arpa: str | os.PathLike,
    words_txt: str | os.PathLike,
    out_fst: str | os.PathLike,
    disambig: str = "#0",
    max_order: int = -1,
    remove_redundant: bool = True,
) -> kaldifst.StdVectorFst:
    """Compile ``arpa`` (plain or .gz) into a G.fst over ``words_txt`` ids, written atomically."""
    import kaldilm  # imported late: only this function needs it

    check_arpa_words(arpa, words_txt)
    symbols = read_symbols(words_txt)
    if disambig not in symbols:
        raise ValueError(f"{words_txt}: no disambiguation symbol {disambig!r}")
    with tempfile.TemporaryDirectory(prefix="arpa2fst.") as tmp_name:
        src = Path(arpa)
        if src.suffix == ".gz":
            plain = Path(tmp_name) / "lm.arpa"
            with gzip.open(src, "rb") as fin, open(plain, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            src = plain
        raw = Path(tmp_name) / "G.raw.fst"
        kaldilm.arpa2fst(
            input_arpa=str(src),
            output_fst=str(raw),
            read_symbol_table=str(words_txt),
            disambig_symbol=disambig,
            max_order=max_order,
        )
        fst = kaldifst.StdVectorFst.read(str(raw))
    if remove_redundant:
        before = (fst.num_states, _num_arcs(fst))
        fst = remove_redundant_states(fst, symbols[disambig])
        log.info(
            "G: reduced states %d -> %d, arcs %d -> %d",
            before[0], fst.num_states, before[1], _num_arcs(fst),
        )  # fmt: skip
    check_gfst(fst, words_txt)
    with atomic_path(out_fst) as tmp:
        fst.write(str(tmp))
        os.chmod(tmp, 0o644)
    return fst


def _num_arcs(fst: kaldifst.StdVectorFst) -> int:
    return sum(fst.num_arcs(s) for s in range(fst.num_states))


def check_gfst(fst: kaldifst.StdVectorFst, words_txt: str | os.PathLike) -> None:
    """G must have no <s>/</s> on arcs and use only ids from ``words_txt``."""
    symbols = read_symbols(words_txt)
    ids = set(symbols.values())
    banned = {symbols[s] for s in (BOS, EOS) if s in symbols}
    for s in range(fst.num_states):
        for arc in kaldifst.ArcIterator(fst, s):
            for label in (arc.ilabel, arc.olabel):
                if label not in ids:
                    raise ValueError(f"G.fst state {s}: label {label} not in {words_txt}")
                if label in banned:
                    raise ValueError(f"G.fst state {s}: <s> or </s> (id {label}) on an arc")


def sentence_cost(fst: kaldifst.StdVectorFst, labels: list[int]) -> float:
    """Cheapest cost of a path in G whose output labels are ``labels`` (0 = epsilon; any
    epsilon-output arc, i.e. a back-off arc, may be taken), including the final weight.

    Label-synchronous Dijkstra-like search; back-off costs may be negative, so relax until fixed.
    Returns ``inf`` if no path exists.
    """
    arcs_cache: dict[int, list] = {}

    def arcs(s: int) -> list:
        if s not in arcs_cache:
            arcs_cache[s] = list(kaldifst.ArcIterator(fst, s))
        return arcs_cache[s]

    frontier = {fst.start: 0.0}
    for i in range(len(labels) + 1):
        # epsilon closure (back-off arcs), label-correcting
        best = dict(frontier)
        heap = [(c, s) for s, c in best.items()]
        heapq.heapify(heap)
        while heap:
            c, s = heapq.heappop(heap)
            if c > best.get(s, math.inf):
                continue
            for arc in arcs(s):
                if arc.olabel == 0:
                    nc = c + arc.weight.value
                    if nc < best.get(arc.nextstate, math.inf) - 1e-12:
                        best[arc.nextstate] = nc
                        heapq.heappush(heap, (nc, arc.nextstate))
        if i == len(labels):
            return min((c + fst.final(s).value for s, c in best.items()), default=math.inf)
        frontier = {}
        for s, c in best.items():
            for arc in arcs(s):
                if arc.olabel == labels[i]:
                    nc = c + arc.weight.value
                    if nc < frontier.get(arc.nextstate, math.inf):
                        frontier[arc.nextstate] = nc
        if not frontier:
            return math.inf
    return math.inf  # unreachable


LANG_REQUIRED = ("words.txt", "phones.txt", "L.fst", "L_disambig.fst", "topo", "oov.txt", "oov.int")


def format_lm(
    lang_dir: str | os.PathLike,
    arpa: str | os.PathLike,
    lexicon: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    max_order: int = -1,
) -> kaldifst.StdVectorFst:
    """Copy ``lang_dir`` (all files) to ``out_dir`` and add ``G.fst`` compiled from ``arpa``.

    Built in a temp dir beside ``out_dir`` and renamed into place (an existing ``out_dir`` is
    replaced). ``lexicon`` (Kaldi's argument) is only checked to exist, as in Kaldi.
    """
    lang_dir, out_dir = Path(lang_dir), Path(out_dir)
    missing = [f for f in LANG_REQUIRED if not (lang_dir / f).exists()]
    if missing:
        raise FileNotFoundError(f"{lang_dir} is not a lang dir (missing {', '.join(missing)})")
    if not Path(arpa).is_file():
        raise FileNotFoundError(f"ARPA LM {arpa} not found")
    if lexicon is not None and not Path(lexicon).is_file():
        raise FileNotFoundError(f"lexicon {lexicon} not found")
    if lang_dir.resolve() == out_dir.resolve():
        raise ValueError(f"out-dir must differ from lang-dir ({lang_dir})")
    check_arpa_words(arpa, lang_dir / "words.txt")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        stage = tmp / "lang"
        shutil.copytree(lang_dir, stage, symlinks=False)
        for path in [stage, *stage.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)  # golden dirs may be read-only
        fst = arpa_to_gfst(arpa, stage / "words.txt", stage / "G.fst", max_order=max_order)
        old = tmp / "old"
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(stage, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "%s: lang dir with G.fst (%d states, %d arcs)", out_dir, fst.num_states, _num_arcs(fst)
    )
    return fst
