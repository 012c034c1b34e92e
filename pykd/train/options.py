"""Frame-level training options that are not the optimiser's (torch-free, so command lines can
show the defaults without importing torch). Each default lives here once; ``conf/train_nnet.yaml``
and the command-line options override them."""

from __future__ import annotations

from dataclasses import dataclass

# Names shared by the trainers, the recipe's checks and the results report (each list once).
SEQ_CRITERIA = {"smbr": "sMBR", "mpfe": "MPFE", "mmi": "MMI"}  # criterion -> display name
ADAPT_METHODS = ("teacher", "decode", "oracle")  # where speaker adaptation's targets come from
PRECISIONS = ("auto", "float32", "bfloat16")  # training's matrix products (pykd.train.precision)
OPTIMIZERS = ("adam", "sgd")  # every trainer's choice (pykd.train.optimizers)


@dataclass(frozen=True)
class KdOptions:
    """Knowledge distillation: ``L = (1 - p) CE(hard) + p T^2 CE(teacher at T)``
    (docs/design.md §1)."""

    p: float = 0.5
    temperature: float = 1.0
    top_k: int = 20  # teacher posteriors kept per frame when they are cached (teacher-posts)


@dataclass(frozen=True)
class DataOptions:
    """Mini-batches, the frame-shuffle buffer, and the held-out share of the training data."""

    batch_size: int = 256
    buffer_frames: int = 100_000  # memory ~ buffer_frames x input dim x 4 bytes
    cv_fraction: float = 0.1  # of the training utterances, whole speakers
    data_on_device: bool = False  # hold the training set on the training device (GPU)
    device_dtype: str = "float16"  # features' type there: float16 | bfloat16 | float32
