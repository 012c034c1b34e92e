"""Decoding graphs: HCLG built as Kaldi's utils/mkgraph.sh builds it (``pykd mkgraph``), read and
written in Kaldi's FST formats."""
