"""Network-side hybrid decoding: log-likelihoods from an acoustic model, and their validation."""

from pykd.nnet.loglikes import (
    LoglikesError,
    ValidationReport,
    checkpoint_num_pdfs,
    iter_features,
    load_acoustic_model,
    loglikes_from_logits,
    module_forward,
    num_pdfs_of_model,
    validate_loglikes,
    write_loglikes,
)

__all__ = [
    "LoglikesError",
    "ValidationReport",
    "checkpoint_num_pdfs",
    "iter_features",
    "load_acoustic_model",
    "loglikes_from_logits",
    "module_forward",
    "num_pdfs_of_model",
    "validate_loglikes",
    "write_loglikes",
]
