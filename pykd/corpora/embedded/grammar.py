"""Seeded sentence generator for the embedded meeting corpus.

The vocabulary lives in ``vocab.txt`` (a plain data file in this package): ``[category]``
sections whose words fill the slot ``{category}`` of a template. Templates are below, grouped by
sentence type. Template syntax (tokens separated by spaces):

* ``word``        a literal word (must be in the ``[function]`` section or another section),
* ``{cat}``       a word drawn from section ``cat`` (Zipf-like weights: earlier words more often),
  or one of the generated phrases ``{num}`` (1..999 in words), ``{date}``, ``{clock}``,
* ``(a b|c|d e)`` one alternative, chosen uniformly,
* ``[a b]``       optional (taken with probability 1/2).

Groups nest. Every sentence has ``min_words``..``max_words`` words (resampled otherwise).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np

log = logging.getLogger(__name__)

VOCAB_RESOURCE = "vocab.txt"

#: Zipf exponent for the slot-filler weights (higher: more skewed, lower perplexity).
ZIPF_EXPONENT = 0.0

# fmt: off
TEMPLATES: dict[str, list[str]] = {
    "agenda": [
        "(the next|the first|the last|our main) (item|point) on the agenda is {np}",
        "let us (move on to|talk about|start with|look at) {np}",
        "[okay] (first|next) we need to (talk about|look at|decide on) {np}",
        "the (goal|main goal) of (this|our) meeting is to {verb} {np}",
        "(okay|right|so) can we (start|move on) (with|to) {np} (now|please)",
        "[so] we have {num} (minutes|points) left on the agenda",
    ],
    "action": [
        "{name} will {verb} {np} (by|before) {weekday}",
        "{name} is going to {verb} {np} [for the {team} team]",
        "(the|our) {team} team (will|should|must) {verb} {np} (by|before) {deadline}",
        "(action item|one action item) for {name} is to {verb} {np}",
        "i will {verb} {np} and send it to {name} {when}",
        "can you {verb} {np} (before|after) the (next|{adj}) meeting",
        "{name} and {name} (will|should) {verb} {np} together",
    ],
    "question": [
        "(what|how) do you think about {np}",
        "(when|where) is {np} (due|going to be ready)",
        "(did|does) anyone ({verb}|look at) {np} [{when}]",
        "who is going to {verb} {np} for the {role}",
        "(can|could) we {verb} {np} [before {np}]",
        "how much (does|did) {np} cost",
        "do we (have|need) (a|another) {thing} for the {team} team",
        "is {np} (ready|done|finished) [yet]",
        "what (is|was) the (price|cost) of {np}",
    ],
    "opinion": [
        "i think {np} is (too|very|quite|not) {adj}",
        "in my opinion we should {verb} {np} (first|now|later|again)",
        "i (really|do not) like the {colour} {thing}",
        "(personally|honestly) i (think|feel) (that|) {np} (looks|sounds|seems) {adj}",
        "i am (not|) {feeling} about {np}",
        "the {role} (wants|needs|likes) (a|the) {adj} {thing}",
        "(maybe|perhaps) we (should|could) (make|keep) {np} {adj}",
        "i (agree|do not agree) with {name} about {np}",
    ],
    "numbers": [
        "{np} (costs|is) {num} {unit}",
        "we (sold|need|have) {num} {unit} (this|last|next) {period}",
        "the (budget|price) is (about|around|under|over) {num} (euros|dollars|pounds)",
        "(sales|costs) (went up|went down) by {num} percent (this|last) {period}",
        "(we have|there are) {num} people in the {team} team",
        "{np} has {num} pages",
    ],
    "dates": [
        "the (next|final) meeting is on {weekday} [the {date}]",
        "{np} is due on {date}",
        "(can we|let us) meet on {weekday} {partofday} at {clock}",
        "(the|our) deadline for {np} is {date}",
        "{name} is (away|on holiday) (until|from) {weekday}",
        "we will (meet|talk) again (next|on) {weekday} at {clock}",
    ],
    "decision": [
        "(so|okay) we (decided|agreed) to {verb} {np}",
        "(so|okay) we agree that {np} will be {colour}",
        "the decision is to {verb} {np} [{when}]",
        "(let us|we will) go with {np}",
        "(everyone|we all) agreed on {np}",
        "we will not {verb} {np} (this|next) {period}",
    ],
    "status": [
        "(the|our) {team} team (has|have) {past} {np}",
        "{name} {past} {np} {when}",
        "(we|i) (already|just) {past} {np}",
        "{np} (is|was) {past} (last|this) {period}",
        "i (have|had) a (problem|question) with {np}",
        "there is (a|one) {issue} with {np}",
    ],
    "proposal": [
        "{subj} {modal} {verb} {np} [{pp}] [{time}]",
        "{subj} (need|needs|want|wants|has|have) to {verb} {np} [{pp}] [{time}]",
        "(should|could|can|will) {subj} {verb} {np} [{pp}] [{time}]",
    ],
    "report": [
        "{subj} (already|just|) {past} {np} [{pp}] [{time}]",
        "{subj} (did not|could not) {verb} {np} [{pp}] [{time}]",
        "{np} (is|was|will be) {adj} [{pp}] [{time}]",
    ],
    "social": [
        "(yes|okay|right) i (agree|think so) [{name}]",
        "(thanks|thank you) {name} that (sounds|is) (good|great|fine)",
        "(sorry|okay) can you (say that again|repeat that) please",
        "(good|great) idea {name} [let us do that]",
        "(okay|right) (so|then) that is (all|it) for {when}",
        "(thank you|thanks) (everyone|all) see you on {weekday}",
    ],
}
# fmt: on

#: Relative frequency of each sentence type.
TYPE_WEIGHTS: dict[str, float] = {
    "agenda": 0.6,
    "action": 1.5,
    "question": 1.5,
    "opinion": 1.5,
    "numbers": 1.0,
    "dates": 1.0,
    "decision": 0.8,
    "status": 1.5,
    "social": 0.4,
    "proposal": 7.0,
    "report": 6.0,
}

GENERATED_SLOTS = ("num", "date", "clock", "np", "subj", "pp", "time", "deadline", "modal")

#: Determiners of a noun phrase ``{np}`` (the first twice as likely) and P(adjective).
DETERMINERS = ("the", "this", "that", "our", "your", "their", "his", "her", "every", "another")
NP_ADJ_P = 0.5
#: Probability that a noun phrase is coordinated with a second thing.
NP_AND_P = 0.15
#: Words the generated slots use literally (besides their vocabulary sections).
GENERATED_WORDS = ("hundred", "and", "the", "of", *DETERMINERS)
#: Sub-templates of the slots ``{subj}``, ``{pp}``, ``{time}``, ``{deadline}``, ``{modal}``.
SUBJECT = "({name}|i|we|you|they|he|she|the {team} team|the {role}|{name} and {name}|our {role})"
PREPOSITION = "(for|with|about|from|after|before|without|like|into|over|under) {np}"
MODAL = "(should|could|will|must|might|can|would|may) [(not|also|still)]"
DEADLINE = "(next|the end of the) {period}"
TIME = "({when}|(on|by|before|after|until) {weekday}|(this|next|last) {period}|on {date})"

#: Discourse openers put before a sentence (probability ``OPENER_P``), as people talk in meetings.
OPENERS = [
    "(okay|so|well|right|yes|and|but|now|actually|basically) [{name}]",
    "(i think|i mean|you know|to be honest|as i said|in any case)",
]
OPENER_P = 0.5
#: Closers put after a sentence (probability ``CLOSER_P``).
CLOSERS = [
    "(i think|i guess|if possible|as soon as possible|for now|for the moment)",
    "(for|with) the {team} team",
    "(by|before|after|on) {weekday} [{partofday}]",
    "(this|next|last) {period}",
    "(because of the|instead of the|without the|like the) {adj} {thing}",
    "(right|okay) {name}",
]
CLOSER_P = 0.5


@dataclass(frozen=True)
class Vocabulary:
    """The categories of ``vocab.txt`` (order kept: it sets the slot-filler weights)."""

    categories: dict[str, tuple[str, ...]]

    @property
    def words(self) -> list[str]:
        """All words, sorted, unique."""
        return sorted({w for ws in self.categories.values() for w in ws})


def parse_vocab(text: str, source: str = VOCAB_RESOURCE) -> Vocabulary:
    """Parse ``vocab.txt``; errors name the line."""
    categories: dict[str, list[str]] = {}
    current: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = header.group(1)
            if current in categories:
                raise ValueError(f"{source}:{lineno}: duplicate section [{current}]")
            categories[current] = []
            continue
        if current is None:
            raise ValueError(f"{source}:{lineno}: words before the first [section]")
        for word in line.split():
            if not re.fullmatch(r"[a-z]+", word):
                raise ValueError(f"{source}:{lineno}: word '{word}' is not lower-case a-z")
            if word in categories[current]:
                raise ValueError(f"{source}:{lineno}: '{word}' twice in [{current}]")
            categories[current].append(word)
    return Vocabulary({k: tuple(v) for k, v in categories.items()})


@functools.lru_cache(maxsize=1)
def load_vocab() -> Vocabulary:
    """The packaged vocabulary."""
    text = resources.files(__package__).joinpath(VOCAB_RESOURCE).read_text(encoding="utf-8")
    return parse_vocab(text)


# ---- template parsing -------------------------------------------------------------------------
# A parsed template is a sequence of nodes: ("w", word) | ("slot", name) | ("alt", [seq, ...]) |
# ("opt", seq).

_TOKEN = re.compile(r"\(|\)|\[|\]|\||\{\w+\}|[a-z]+")


def parse_template(template: str) -> list:
    """Parse one template into nodes; raises ValueError naming the template on bad syntax."""
    tokens = _TOKEN.findall(template)
    if "".join(tokens) != template.replace(" ", ""):
        raise ValueError(f"template has bad characters: {template!r}")
    pos = 0

    def seq(stop: set[str]) -> list:
        nonlocal pos
        out: list = []
        while pos < len(tokens) and tokens[pos] not in stop:
            tok = tokens[pos]
            pos += 1
            if tok == "(":
                alts = [seq({"|", ")"})]
                while pos < len(tokens) and tokens[pos] == "|":
                    pos += 1
                    alts.append(seq({"|", ")"}))
                if pos >= len(tokens) or tokens[pos] != ")":
                    raise ValueError(f"unclosed '(' in template {template!r}")
                pos += 1
                out.append(("alt", alts))
            elif tok == "[":
                inner = seq({"]"})
                if pos >= len(tokens) or tokens[pos] != "]":
                    raise ValueError(f"unclosed '[' in template {template!r}")
                pos += 1
                out.append(("opt", inner))
            elif tok in (")", "]", "|"):
                raise ValueError(f"unexpected '{tok}' in template {template!r}")
            elif tok.startswith("{"):
                out.append(("slot", tok[1:-1]))
            else:
                out.append(("w", tok))
        return out

    nodes = seq(set())
    if pos != len(tokens):
        raise ValueError(f"unbalanced template {template!r}")
    return nodes


def template_literals(nodes: list) -> set[str]:
    """Literal words of a parsed template (all branches)."""
    found: set[str] = set()
    for kind, value in nodes:
        if kind == "w":
            found.add(value)
        elif kind == "alt":
            for alt in value:
                found |= template_literals(alt)
        elif kind == "opt":
            found |= template_literals(value)
    return found


def template_slots(nodes: list) -> set[str]:
    """Slot names of a parsed template (all branches)."""
    found: set[str] = set()
    for kind, value in nodes:
        if kind == "slot":
            found.add(value)
        elif kind == "alt":
            for alt in value:
                found |= template_slots(alt)
        elif kind == "opt":
            found |= template_slots(value)
    return found


def all_templates() -> list[str]:
    """Every template string: sentence types, openers and closers."""
    subs = [SUBJECT, PREPOSITION, TIME, DEADLINE, MODAL]
    return [t for ts in TEMPLATES.values() for t in ts] + OPENERS + CLOSERS + subs


class SentenceGenerator:
    """Draws sentences from the templates with a seeded ``numpy.random.Generator``."""

    def __init__(
        self,
        rng: np.random.Generator,
        vocab: Vocabulary | None = None,
        min_words: int = 4,
        max_words: int = 18,
    ) -> None:
        self.rng = rng
        self.vocab = vocab or load_vocab()
        self.min_words = min_words
        self.max_words = max_words
        self.types = list(TEMPLATES)
        weights = np.array([TYPE_WEIGHTS[t] for t in self.types], dtype=float)
        self.type_p = weights / weights.sum()
        self.parsed = {t: [parse_template(s) for s in TEMPLATES[t]] for t in self.types}
        self.openers = [parse_template(s) for s in OPENERS]
        self.sub = {
            "subj": parse_template(SUBJECT),
            "pp": parse_template(PREPOSITION),
            "time": parse_template(TIME),
            "deadline": parse_template(DEADLINE),
            "modal": parse_template(MODAL),
        }
        self.closers = [parse_template(s) for s in CLOSERS]
        self._weights: dict[str, np.ndarray] = {}
        for name, words in self.vocab.categories.items():
            w = 1.0 / np.arange(1, len(words) + 1) ** ZIPF_EXPONENT
            self._weights[name] = w / w.sum()
        self.check()

    def check(self) -> None:
        """Every template literal and slot must be known to the vocabulary."""
        known = set(self.vocab.words)
        missing = set(GENERATED_WORDS) - known
        if missing:
            raise ValueError(f"generated slots use words not in vocab: {sorted(missing)}")
        slots = set(self.vocab.categories) | set(GENERATED_SLOTS)
        for source in all_templates():
            nodes = parse_template(source)
            missing = template_literals(nodes) - known
            if missing:
                raise ValueError(f"template {source!r}: words {sorted(missing)} not in vocab")
            bad = template_slots(nodes) - slots
            if bad:
                raise ValueError(f"template {source!r}: unknown slots {sorted(bad)}")

    # ---- drawing ------------------------------------------------------------------------------
    def _pick(self, category: str) -> str:
        words = self.vocab.categories[category]
        return words[int(self.rng.choice(len(words), p=self._weights[category]))]

    def _number(self) -> list[str]:
        """A number 1..999 in words; small and round numbers are likelier."""
        cats = self.vocab.categories
        kind = self.rng.integers(4)
        if kind == 0:
            return [self._pick("number")]
        if kind == 1:
            return [self._pick("tens")]
        if kind == 2:
            return [self._pick("tens"), str(cats["number"][self.rng.integers(9)])]
        words = [str(cats["number"][self.rng.integers(9)]), "hundred"]
        if self.rng.random() < 0.4:
            words += ["and", self._pick("tens")]
        return words

    def _date(self) -> list[str]:
        ordinals = self.vocab.categories["ordinal"]
        day = ["the", self._pick("ordinal")]
        if self.rng.random() < 0.3:
            day = ["the", "twenty", str(ordinals[self.rng.integers(9)])]
        return [*day, "of", self._pick("month")]

    def _clock(self) -> list[str]:
        hour = self._pick("number") if self.rng.random() < 0.9 else "twelve"
        tail = [["thirty"], ["fifteen"], ["forty", "five"], []][int(self.rng.integers(4))]
        return [hour, *tail]

    def _noun_phrase(self) -> list[str]:
        """Determiner, optional adjective, thing, sometimes "and the" another thing."""
        i = int(self.rng.integers(len(DETERMINERS) + 1))
        words = [DETERMINERS[max(i - 1, 0)]]
        if self.rng.random() < NP_ADJ_P:
            words.append(self._pick("adj"))
        words.append(self._pick("thing"))
        if self.rng.random() < NP_AND_P:  # "the budget and the schedule"
            words += ["and", "the", self._pick("thing")]
        return words

    def _expand(self, nodes: list) -> list[str]:
        out: list[str] = []
        for kind, value in nodes:
            if kind == "w":
                out.append(value)
            elif kind == "slot":
                if value == "num":
                    out += self._number()
                elif value == "date":
                    out += self._date()
                elif value == "clock":
                    out += self._clock()
                elif value == "np":
                    out += self._noun_phrase()
                elif value in self.sub:
                    out += self._expand(self.sub[value])
                else:
                    out.append(self._pick(value))
            elif kind == "alt":
                out += self._expand(value[int(self.rng.integers(len(value)))])
            elif kind == "opt" and self.rng.random() < 0.5:
                out += self._expand(value)
        return out

    def sentence(self) -> tuple[str, str]:
        """One sentence: ``(type, text)``."""
        for _ in range(1000):
            sentence_type = self.types[int(self.rng.choice(len(self.types), p=self.type_p))]
            templates = self.parsed[sentence_type]
            words = self._expand(templates[int(self.rng.integers(len(templates)))])
            if self.rng.random() < OPENER_P:
                opener = self.openers[int(self.rng.integers(len(self.openers)))]
                words = self._expand(opener) + words
            if self.rng.random() < CLOSER_P:
                closer = self.closers[int(self.rng.integers(len(self.closers)))]
                words += self._expand(closer)
            if self.min_words <= len(words) <= self.max_words:
                return sentence_type, " ".join(words)
        raise RuntimeError(
            f"no sentence with {self.min_words}..{self.max_words} words in 1000 draws"
        )
