"""Frame-level data for the networks: splicing, CMVN'd features, pdf targets, priors, CV split."""

from pykd.data.frames import (
    EpochStats,
    FrameShuffleDataset,
    SequentialFrameDataset,
    UtteranceSource,
    split_cv,
)
from pykd.data.priors import log_priors, pdf_counts, read_counts, write_counts
from pykd.data.splice import splice
from pykd.data.targets import ali_to_pdf, load_pdf_alignments, match_lengths, num_pdfs, pdf_map

__all__ = [
    "EpochStats",
    "FrameShuffleDataset",
    "SequentialFrameDataset",
    "UtteranceSource",
    "ali_to_pdf",
    "load_pdf_alignments",
    "log_priors",
    "match_lengths",
    "num_pdfs",
    "pdf_counts",
    "pdf_map",
    "read_counts",
    "split_cv",
    "splice",
    "write_counts",
]
