"""Kaldi dictionary directories (``data/local/dict``): reading and validation.

A dict dir holds ``lexicon.txt`` (or ``lexiconp.txt`` with pronunciation probabilities),
``silence_phones.txt``, ``nonsilence_phones.txt``, ``optional_silence.txt`` and optionally
``extra_questions.txt``. :func:`read_dict_dir` checks them the way Kaldi's
``utils/validate_dict_dir.pl`` does and raises :class:`DictDirError` listing every problem with its
file and line.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

RESERVED_WORDS = ("<s>", "</s>", "<eps>", "#0")
MAX_ERRORS_SHOWN = 30


class DictDirError(ValueError):
    """A dictionary directory failed validation."""


@dataclass(frozen=True)
class LexiconEntry:
    """One pronunciation: ``prob`` is kept as text so it is written back unchanged."""

    word: str
    prob: str
    phones: tuple[str, ...]
    line: int = field(default=0, compare=False)


@dataclass
class DictDir:
    path: Path
    silence_lines: list[list[str]]
    nonsilence_lines: list[list[str]]
    optional_silence: str
    extra_questions: list[list[str]]
    lexicon: list[LexiconEntry]
    has_lexiconp: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def silence_phones(self) -> list[str]:
        return [p for line in self.silence_lines for p in line]

    @property
    def nonsilence_phones(self) -> list[str]:
        return [p for line in self.nonsilence_lines for p in line]


def _read_lines(path: Path, errors: list[str]) -> list[tuple[int, str]]:
    """Lines of a UTF-8 file as (line number, text without newline)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        errors.append(f"{path}: file missing")
        return []
    out = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        if n > 1 and raw == b"" and n == data.count(b"\n") + 1:
            break  # after the final newline
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            errors.append(f"{path}:{n}: not valid UTF-8")
            continue
        if text.endswith("\r"):
            errors.append(f"{path}:{n}: has a DOS line ending (\\r)")
            text = text[:-1]
        out.append((n, text))
    if data and not data.endswith(b"\n"):
        errors.append(f"{path}: last line has no newline")
    return out


def _read_phone_lines(
    path: Path, errors: list[str], seen: dict[str, str], allow_empty: bool = False
) -> list[list[str]]:
    lines = []
    for n, text in _read_lines(path, errors):
        if text.strip() != text or "  " in text or "\t" in text:
            errors.append(f"{path}:{n}: phones must be separated by single spaces: {text!r}")
        phones = text.split()
        if not phones:
            errors.append(f"{path}:{n}: empty line")
            continue
        for p in phones:
            if p.startswith("#"):
                errors.append(f"{path}:{n}: phone {p!r} starts with '#' (reserved)")
            if p in seen:
                errors.append(f"{path}:{n}: phone {p!r} duplicated (first in {seen[p]})")
            seen[p] = f"{path.name}:{n}"
        lines.append(phones)
    if not lines and not allow_empty and path.exists():
        errors.append(f"{path}: no phones")
    return lines


def _read_lexicon(path: Path, with_probs: bool, errors: list[str]) -> list[LexiconEntry]:
    entries = []
    seen: dict[tuple[str, tuple[str, ...]], int] = {}
    for n, text in _read_lines(path, errors):
        fields = text.split()
        if not fields:
            errors.append(f"{path}:{n}: empty line")
            continue
        word, rest = fields[0], fields[1:]
        prob = "1.0"
        if with_probs:
            if not rest:
                errors.append(f"{path}:{n}: missing pronunciation probability")
                continue
            prob, rest = rest[0], rest[1:]
            try:
                value = float(prob)
                if not (0.0 < value <= 1.0) or math.isnan(value):
                    raise ValueError
            except ValueError:
                errors.append(
                    f"{path}:{n}: bad pronunciation probability {prob!r} (need 0 < p <= 1)"
                )
        if word in RESERVED_WORDS:
            errors.append(f"{path}:{n}: reserved word {word!r} in lexicon")
        if word.startswith("#"):
            errors.append(f"{path}:{n}: word {word!r} starts with '#' (reserved)")
        if not rest:
            errors.append(f"{path}:{n}: word {word!r} has an empty pronunciation")
        key = (word, tuple(rest))
        if key in seen:
            errors.append(f"{path}:{n}: duplicate entry for {word!r} (also line {seen[key]})")
        seen[key] = n
        entries.append(LexiconEntry(word, prob, tuple(rest), n))
    if not entries and path.exists():
        errors.append(f"{path}: empty lexicon")
    return entries


def read_dict_dir(dict_dir: str | Path) -> DictDir:
    """Read and validate a dict dir (``validate_dict_dir.pl`` checks); raise on any error."""
    d = Path(dict_dir)
    errors: list[str] = []
    if not d.is_dir():
        raise DictDirError(f"{d}: dict dir does not exist")
    seen: dict[str, str] = {}
    sil = _read_phone_lines(d / "silence_phones.txt", errors, seen)
    nonsil = _read_phone_lines(d / "nonsilence_phones.txt", errors, seen)
    phones = set(seen)

    opt = _read_lines(d / "optional_silence.txt", errors)
    optional = ""
    if opt:
        if len(opt) != 1 or len(opt[0][1].split()) != 1:
            errors.append(f"{d / 'optional_silence.txt'}: must hold exactly one phone")
        optional = opt[0][1].split()[0] if opt[0][1].split() else ""
        if optional and optional not in {p for line in sil for p in line}:
            errors.append(
                f"{d / 'optional_silence.txt'}:1: optional silence {optional!r} "
                "is not in silence_phones.txt"
            )
    elif (d / "optional_silence.txt").exists():
        errors.append(f"{d / 'optional_silence.txt'}: empty")

    questions: list[list[str]] = []
    qpath = d / "extra_questions.txt"
    if qpath.exists():
        for n, text in _read_lines(qpath, errors):
            q = text.split()
            if not q:
                errors.append(f"{qpath}:{n}: empty line")
                continue
            for p in q:
                if p not in phones:
                    errors.append(f"{qpath}:{n}: phone {p!r} not in (non)silence_phones.txt")
            questions.append(q)

    lexp = d / "lexiconp.txt"
    lex = d / "lexicon.txt"
    if not lexp.exists() and not lex.exists():
        errors.append(f"{d}: neither lexicon.txt nor lexiconp.txt exists")
        entries: list[LexiconEntry] = []
    else:
        entries = _read_lexicon(lexp if lexp.exists() else lex, lexp.exists(), errors)
        src = lexp if lexp.exists() else lex
        for e in entries:
            for p in e.phones:
                if p not in phones:
                    errors.append(
                        f"{src}:{e.line}: word {e.word!r} uses phone {p!r} "
                        "not in silence_phones.txt or nonsilence_phones.txt"
                    )
        if lexp.exists() and lex.exists():
            plain = _read_lexicon(lex, False, errors)
            if [(e.word, e.phones) for e in plain] != [(e.word, e.phones) for e in entries]:
                errors.append(f"{lex} and {lexp} differ (other than the probabilities)")
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = len(errors) - len(shown)
        raise DictDirError(
            f"invalid dict dir {d}:\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else "")
        )
    return DictDir(d, sil, nonsil, optional, questions, entries, has_lexiconp=lexp.exists())


def lexicon_to_lexiconp_text(lexicon_txt: str) -> str:
    """``lexicon.txt`` -> ``lexiconp.txt`` as prepare_lang.sh writes it: ``word<ws>1.0<TAB>phones``.

    The whitespace after the word is kept as it was (prepare_lang.sh's substitution does that).
    """
    out = []
    for line in lexicon_txt.splitlines():
        m = _WORD_REST.search(line)
        out.append((line[: m.start()] + m.group(1) + "1.0\t" + m.group(2) if m else line) + "\n")
    return "".join(out)


_WORD_REST = re.compile(r"(\S+\s+)(.+)")
