"""Kaldi on-disk formats: data directories, tables, atomic file writes."""
