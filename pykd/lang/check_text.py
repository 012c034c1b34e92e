"""Check a transcript against a lang dir: OOV counts and rate (words not in ``words.txt``)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pykd.lang.symbols import SymbolTable

log = logging.getLogger(__name__)


@dataclass
class OovReport:
    oov_word: str
    tokens: int = 0
    oov_tokens: int = 0
    oovs: Counter = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.oov_tokens / self.tokens if self.tokens else 0.0

    def summary(self, top: int = 20) -> str:
        lines = [
            f"{self.tokens} tokens, {self.oov_tokens} OOV tokens ({100 * self.rate:.2f}%), "
            f"{len(self.oovs)} distinct OOV words (mapped to {self.oov_word})"
        ]
        for w, c in self.oovs.most_common(top):
            lines.append(f"  {c}\t{w}")
        return "\n".join(lines)


def check_lang_text(lang_dir: str | Path, text: str | Path, has_keys: bool = True) -> OovReport:
    """Count words of ``text`` (Kaldi ``text``: ``<utt-id> w1 w2 ...`` if ``has_keys``) not in
    ``<lang>/words.txt``; each maps to the OOV word of ``<lang>/oov.txt``."""
    lang = Path(lang_dir)
    words = SymbolTable.read(lang / "words.txt")
    oov_file = lang / "oov.txt"
    oov_word = oov_file.read_text(encoding="utf-8").split()[0] if oov_file.exists() else ""
    if oov_word and oov_word not in words:
        raise ValueError(f"{oov_file}: OOV word {oov_word!r} is not in {lang / 'words.txt'}")
    rep = OovReport(oov_word)
    specials = {"<eps>", "#0", "<s>", "</s>"}
    with open(text, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if has_keys:
                if not fields:
                    raise ValueError(f"{text}:{n}: empty line (no utterance id)")
                fields = fields[1:]
            for w in fields:
                if w in specials:
                    raise ValueError(f"{text}:{n}: reserved symbol {w!r} in transcript")
                rep.tokens += 1
                if w not in words:
                    rep.oov_tokens += 1
                    rep.oovs[w] += 1
    return rep
