"""AMI transcript normalisation (in the spirit of Kaldi's AMI s5b recipe).

Rules, applied per ``<w>`` element of a segment:

1. punctuation (``punc="true"``) and every non-``<w>`` element (``vocalsound``, ``disfmarker``,
   ``gap``, ...) give no text (they still count for id ranges and split points);
2. truncated words (``trunc="true"``) are dropped by default (partial words are not in any
   pronunciation dictionary); ``keep_truncated=True`` keeps them like ordinary words;
3. upper case;
4. ``_`` (spelt acronyms, ``X_M_L``) and ``-`` split a token into words (``X M L``,
   ``ANTI TRUST``), except the frequent backchannels ``MM-HMM`` and ``UH-HUH``, kept whole;
5. every other character that is not a letter, digit or apostrophe becomes a space;
   apostrophes are kept (``WE'RE``, ``'CAUSE``), a token of apostrophes only is dropped.
"""

from __future__ import annotations

import logging
import re

from pykd.corpora.ami.annotations import Word

log = logging.getLogger(__name__)

KEEP_HYPHENATED = frozenset({"MM-HMM", "UH-HUH"})
_NOT_WORD_CHAR = re.compile(r"[^\w']|_")


def normalise_token(text: str) -> list[str]:
    """One ``<w>`` text -> zero or more upper-case words."""
    upper = text.strip().upper()
    if upper in KEEP_HYPHENATED:
        return [upper]
    pieces = _NOT_WORD_CHAR.sub(" ", upper).split()
    return [p for p in pieces if p.strip("'")]


def word_tokens(word: Word, *, keep_truncated: bool = False) -> list[str]:
    """The words one annotation element contributes to the transcript."""
    if not word.is_lexical or (word.trunc and not keep_truncated):
        return []
    return normalise_token(word.text)
