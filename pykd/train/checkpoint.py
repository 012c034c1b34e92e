"""Atomic, resumable training checkpoints (model, optimizer, scheduler, RNG, data position)."""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pykd.io.atomic import atomic_path

LAST_NAME = "last.pt"


def rng_state() -> dict[str, Any]:
    """Snapshot of the python, numpy and torch (CPU and CUDA) random generators."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generators captured by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())  # RNG states must be CPU byte tensors
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def nonfinite_parameter(module: torch.nn.Module) -> str | None:
    """Name of the first parameter holding a NaN or inf (not to be checkpointed), else None."""
    for name, p in module.named_parameters():
        if not bool(torch.isfinite(p).all()):
            return name
    return None


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` to a temp file beside ``path``, then rename it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read (truncated, corrupt, not a torch file)."""


def load_checkpoint(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    weights_only: bool = False,
) -> Any:
    """Load a torch checkpoint (a :func:`save_checkpoint` file holds RNG states, so by default
    not weights-only); every pykd reader of ``.pt`` files goes through here, so a truncated or
    corrupt file is an error naming it rather than torch's zip-reader message."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"{path}: not a readable checkpoint, truncated or corrupt "
            f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
            "re-create it (training resumes from checkpoints/last.pt)"
        ) from err


def latest_checkpoint(ckpt_dir: str | os.PathLike) -> Path | None:
    """The most recent checkpoint in ``ckpt_dir`` (``last.pt``), or None."""
    path = Path(ckpt_dir) / LAST_NAME
    return path if path.is_file() else None
