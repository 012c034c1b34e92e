"""The acoustic front end of every network command (training, log-likelihoods, network alignment,
sequence training, adaptation): the input contract a checkpoint carries (:mod:`.spec`), the one
reader of features + per-speaker CMVN (:mod:`.features`), and model loading, parameter groups and
per-speaker parameters (:mod:`.model`). The network packages depend on it; it depends only on
``io``, ``features``, ``models`` and ``train.checkpoint``."""
