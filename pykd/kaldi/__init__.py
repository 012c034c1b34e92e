"""Kaldi's file formats: transition models and GMMs (final.mdl), trees, alignments and
lattices, read and written byte-compatible with Kaldi's binaries."""
