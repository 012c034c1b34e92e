"""Read ARPA back-off n-gram models and score text with them (log10 probabilities).

Tolerates IRSTLM's quirks: ``<s> <s>`` n-grams (kept, but never used by scoring since a sentence
has a single ``<s>``), a back-off weight on ``</s>``, and ``<unk>`` as an ordinary unigram.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"


class ArpaError(ValueError):
    """Malformed ARPA file."""


def open_text(path: str | os.PathLike) -> IO[str]:
    """Open a text file for reading, gunzipping ``*.gz``."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


@dataclass
class ArpaLM:
    """A back-off n-gram model: ``ngrams[n][words] = (log10 prob, log10 backoff)``."""

    order: int
    counts: dict[int, int]
    ngrams: dict[int, dict[tuple[str, ...], tuple[float, float]]] = field(default_factory=dict)

    @property
    def vocab(self) -> set[str]:
        """Every word with a unigram (including ``<s>``, ``</s>`` and ``<unk>`` if present)."""
        return {w[0] for w in self.ngrams.get(1, {})}

    def words(self) -> set[str]:
        """Every word appearing in any n-gram."""
        out: set[str] = set()
        for table in self.ngrams.values():
            for gram in table:
                out.update(gram)
        return out

    def logprob(self, word: str, history: tuple[str, ...]) -> tuple[float, int]:
        """log10 P(word | history) with Katz-style back-off; also the order of the n-gram used."""
        history = history[len(history) - (self.order - 1) :] if self.order > 1 else ()
        backoff = 0.0
        while True:
            n = len(history) + 1
            entry = self.ngrams.get(n, {}).get(history + (word,))
            if entry is not None:
                return entry[0] + backoff, n
            if not history:
                raise KeyError(word)
            ctx = self.ngrams.get(len(history), {}).get(history)
            if ctx is not None:
                backoff += ctx[1]
            history = history[1:]


def read_arpa(path: str | os.PathLike) -> ArpaLM:
    """Parse an ARPA file (plain or ``.gz``); checks n-gram counts against the header."""
    with open_text(path) as handle:
        return parse_arpa(handle, str(path))


def parse_arpa(lines: Iterable[str], name: str = "<arpa>") -> ArpaLM:
    """Parse ARPA text from an iterable of lines."""
    counts: dict[int, int] = {}
    ngrams: dict[int, dict[tuple[str, ...], tuple[float, float]]] = {}
    section: int | None = None  # None: before \data\, 0: in \data\, n: in \n-grams:
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line == "\\data\\":
            section = 0
            continue
        if line == "\\end\\":
            break
        if line.startswith("\\") and line.endswith("-grams:"):
            try:
                section = int(line[1 : -len("-grams:")])
            except ValueError as err:
                raise ArpaError(f"{name}:{lineno}: bad section header {line!r}") from err
            if section not in counts:
                raise ArpaError(f"{name}:{lineno}: section {line} not declared in \\data\\")
            ngrams[section] = {}
            continue
        if section is None:
            continue  # free text before \data\ is allowed
        if section == 0:
            if not line.startswith("ngram"):
                raise ArpaError(f"{name}:{lineno}: expected 'ngram N=count', got {line!r}")
            key, _, value = line[len("ngram") :].partition("=")
            try:
                counts[int(key)] = int(value)
            except ValueError as err:
                raise ArpaError(f"{name}:{lineno}: bad count line {line!r}") from err
            continue
        fields = line.split()
        n = section
        if len(fields) not in (n + 1, n + 2):
            raise ArpaError(f"{name}:{lineno}: expected {n} words for a {n}-gram, got {line!r}")
        try:
            prob = float(fields[0])
            backoff = float(fields[n + 1]) if len(fields) == n + 2 else 0.0
        except ValueError as err:
            raise ArpaError(f"{name}:{lineno}: bad number in {line!r}") from err
        ngrams[n][tuple(fields[1 : n + 1])] = (prob, backoff)
    if not counts:
        raise ArpaError(f"{name}: no \\data\\ section")
    for n, count in counts.items():
        got = len(ngrams.get(n, {}))
        if got != count:
            raise ArpaError(f"{name}: header says {count} {n}-grams, file has {got}")
    return ArpaLM(order=max(counts), counts=counts, ngrams=ngrams)


@dataclass
class EvalResult:
    """Scores of a text under an LM. Log-probs are log10; perplexities follow SRILM.

    ``perplexity`` counts ``</s>`` as a predicted token (SRILM's ``ppl``); ``perplexity_no_eos``
    leaves the ``</s>`` terms out of both the sum and the count (SRILM's ``ppl1``). Words outside
    the LM's vocabulary are scored as ``<unk>`` when the LM has it (open vocabulary, as IRSTLM's
    ``compile-lm --eval`` does), otherwise skipped; either way they count as OOV.
    """

    sentences: int = 0
    words: int = 0  # tokens, excluding </s>
    oov: int = 0  # tokens not in the LM vocabulary, or written as <unk>
    skipped: int = 0  # OOV tokens not scored (LM without <unk>)
    logprob: float = 0.0  # total incl. </s>
    logprob_eos: float = 0.0  # the </s> part of it

    @property
    def scored_tokens(self) -> int:
        return self.words - self.skipped + self.sentences

    @property
    def perplexity(self) -> float:
        return 10.0 ** (-self.logprob / max(self.scored_tokens, 1))

    @property
    def perplexity_no_eos(self) -> float:
        n = self.words - self.skipped
        return 10.0 ** (-(self.logprob - self.logprob_eos) / max(n, 1))

    def perplexity_irstlm(self, vocab_size: int, dub: float = 1e7) -> float:
        """IRSTLM ``compile-lm --eval``'s PP: each scored OOV also pays log10(dub - |V|)."""
        penalty = (
            (self.oov - self.skipped) * math.log10(dub - vocab_size) if dub > vocab_size else 0
        )
        return 10.0 ** (-(self.logprob - penalty) / max(self.scored_tokens, 1))

    @property
    def oov_rate(self) -> float:
        return self.oov / max(self.words, 1)

    def summary(self) -> str:
        return (
            f"sentences={self.sentences} words={self.words} OOV={self.oov} "
            f"({100 * self.oov_rate:.2f}%) logprob10={self.logprob:.4f} "
            f"ppl={self.perplexity:.3f} (incl. </s>) ppl1={self.perplexity_no_eos:.3f} "
            f"(excl. </s>)"
        )


def sentence_tokens(line: str, kaldi_text: bool = False) -> list[str]:
    """Words of one text line; drops the utterance id for Kaldi ``text`` and any <s>/</s>."""
    fields = line.split()
    if kaldi_text:
        fields = fields[1:]
    if fields and fields[0] == BOS:
        fields = fields[1:]
    if fields and fields[-1] == EOS:
        fields = fields[:-1]
    return fields


def score_sentence(lm: ArpaLM, words: list[str], unk: str = UNK) -> list[float | None]:
    """Per-token log10 probs for ``words`` followed by ``</s>`` (None where an OOV is skipped)."""
    vocab_has_unk = (unk,) in lm.ngrams[1]
    history: tuple[str, ...] = (BOS,)
    out: list[float | None] = []
    for word in [*words, EOS]:
        if (word,) not in lm.ngrams[1]:
            if not vocab_has_unk:
                out.append(None)
                history = history + (word,)  # contexts with an OOV match no n-gram
                continue
            word = unk
        out.append(lm.logprob(word, history)[0])
        history = history + (word,)
    return out


def evaluate(lm: ArpaLM, sentences: Iterable[list[str]], unk: str = UNK) -> EvalResult:
    """Score tokenised sentences (without <s>/</s>) and accumulate an :class:`EvalResult`."""
    res = EvalResult()
    for words in sentences:
        res.sentences += 1
        res.words += len(words)
        res.oov += sum(1 for w in words if w == unk or (w,) not in lm.ngrams[1])
        scores = score_sentence(lm, words, unk)
        for s in scores:
            if s is None:
                res.skipped += 1
            else:
                res.logprob += s
        res.logprob_eos += scores[-1] or 0.0
    return res


def read_sentences(path: str | os.PathLike, kaldi_text: bool = False) -> Iterator[list[str]]:
    """Tokenised sentences of a text file (Kaldi ``text`` if ``kaldi_text``); skips empty lines."""
    with open_text(path) as handle:
        for line in handle:
            if line.split():
                yield sentence_tokens(line, kaldi_text)


def log10_to_cost(logprob: float) -> float:
    """ARPA log10 probability -> FST cost (-ln p), as arpa2fst does."""
    return -logprob * math.log(10.0)
