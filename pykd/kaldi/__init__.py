"""Builtin Kaldi backend: model/tree/alignment files, graphs, decoding, scoring (Kaldi formats)."""
