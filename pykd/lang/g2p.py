"""Grapheme-to-phoneme conversion for words missing from CMUdict, via Flite's ``t2p``.

Why Flite: Debian's ``flite`` package is already installed, needs no model download or training
at run time, is deterministic and fast (~5 ms a word), and its letter-to-sound rules were trained
on CMUdict, so its phone set is CMUdict's (lower case, plus ``ax``/``axr``/``ix`` and a few others)
with 0/1 stress. We map it to CMUdict ARPAbet with stress digits on every vowel.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

T2P = "t2p"

# Flite-only phones -> CMUdict ARPAbet (vowel stress is added afterwards).
_FLITE_MAP: dict[str, list[str]] = {
    "ax": ["AH0"],
    "axr": ["ER0"],
    "ix": ["IH0"],
    "el": ["AH0", "L"],
    "em": ["AH0", "M"],
    "en": ["AH0", "N"],
    "nx": ["N"],
    "dx": ["T"],
    "hv": ["HH"],
    "wh": ["W"],
}
VOWELS = frozenset(
    "AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split()
)  # the 15 CMUdict vowels, always with a stress digit
CONSONANTS = frozenset("B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH".split())


class G2PError(ValueError):
    """Some words could not be converted."""


def flite_to_arpabet(phones: list[str]) -> list[str]:
    """Map Flite ``t2p`` phones (``pau`` dropped) to CMUdict ARPAbet with stress digits."""
    out: list[str] = []
    for p in phones:
        if p == "pau":
            continue
        base, stress = (p[:-1], p[-1]) if p[-1].isdigit() else (p, "")
        if base in _FLITE_MAP:
            mapped = list(_FLITE_MAP[base])
            if stress and mapped[0][-1].isdigit():
                mapped[0] = mapped[0][:-1] + stress
            out.extend(mapped)
            continue
        up = base.upper()
        if up in VOWELS:
            out.append(up + (stress or "0"))
        elif up in CONSONANTS and not stress:
            out.append(up)
        else:
            raise G2PError(f"unknown flite phone {p!r}")
    return out


def _t2p(word: str) -> list[str]:
    res = subprocess.run([T2P, word], capture_output=True, text=True, check=False)
    if res.returncode != 0 or res.stdout.startswith("usage") or "usage:" in res.stderr:
        return []
    return flite_to_arpabet(res.stdout.split())


def g2p(words: list[str], work_dir: Path | None = None) -> dict[str, list[str]]:
    """One ARPAbet pronunciation (CMUdict style, with stress) per word.

    ``work_dir``, if given, receives ``g2p_lexicon.txt`` with the results (a record of what was
    generated); Flite needs no trained model. Raises :class:`G2PError` naming the words it could
    not handle.
    """
    if shutil.which(T2P) is None:
        raise G2PError("flite's 't2p' is not installed (Debian package 'flite'); cannot do G2P")
    prons: dict[str, list[str]] = {}
    failed: list[str] = []
    for w in dict.fromkeys(words):
        try:
            pron = _t2p(w.lower())
        except G2PError as err:
            log.warning("g2p: %s: %s", w, err)
            pron = []
        if pron:
            prons[w] = pron
        else:
            failed.append(w)
    if failed:
        raise G2PError(
            f"G2P (flite t2p) could not produce a pronunciation for {len(failed)} word(s): "
            + " ".join(failed[:50])
        )
    if work_dir is not None:
        from pykd.io.atomic import atomic_write_text

        Path(work_dir).mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            Path(work_dir) / "g2p_lexicon.txt",
            "".join(f"{w} {' '.join(p)}\n" for w, p in prons.items()),
        )
    log.info("g2p: %d word(s) converted with flite t2p", len(prons))
    return prons
