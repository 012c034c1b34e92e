"""Decoding and scoring: the lattice decoder over GMM or network scores (``latgen-faster-mapped``,
``gmm-latgen-faster``), best paths, and scoring as Kaldi's steps/score_kaldi.sh."""
