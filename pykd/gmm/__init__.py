"""GMM-HMM systems with Kaldi's semantics and maths (kaldi-hmm-gmm): features, EM, training,
alignment. Files written are Kaldi's (final.mdl, tree, ali.N.gz) through pykd.kaldi.model_io.

Modules: :mod:`~pykd.gmm.feats` (CMVN + deltas), :mod:`~pykd.gmm.em` (alignment, stats,
update), :mod:`~pykd.gmm.mono` (train_mono), :mod:`~pykd.gmm.align` (jobs, align_si).
"""
