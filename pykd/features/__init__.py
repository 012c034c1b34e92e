"""Feature extraction with Kaldi's semantics: fbank/MFCC (kaldi-native-fbank), CMVN, ark/scp io."""

from pykd.features.cmvn import acc_cmvn_stats, apply_cmvn, compute_cmvn_stats
from pykd.features.compute import compute_to_ark, compute_waveform
from pykd.features.kaldi_conf import ConfigError, FeatureConfig, load_config

__all__ = [
    "ConfigError",
    "FeatureConfig",
    "acc_cmvn_stats",
    "apply_cmvn",
    "compute_cmvn_stats",
    "compute_to_ark",
    "compute_waveform",
    "load_config",
]
