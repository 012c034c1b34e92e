"""Embedded default corpus: seeded meeting-style English speech made offline with flite + sox.

``make_corpus`` (in :mod:`.build`) writes the wavs and Kaldi data dirs; see
``docs/embedded_corpus.md``.
"""

from .build import SIZES, SizeConfig, make_corpus, plan_corpus
from .grammar import SentenceGenerator, load_vocab
from .synth import SynthesisError, UttSpec

__all__ = [
    "SIZES",
    "SentenceGenerator",
    "SizeConfig",
    "SynthesisError",
    "UttSpec",
    "load_vocab",
    "make_corpus",
    "plan_corpus",
]
