"""Cached teacher targets for knowledge distillation: the teacher's posteriors over a data dir,
computed once, kept sparse (the top k pdfs of each frame) in a Kaldi Posterior table.

A KD student then reads them like alignments instead of running the teacher on every batch of
every epoch. ``softmax(z / T)`` for any temperature comes from the stored ``T = 1`` posteriors
``p`` as ``p^(1/T)`` renormalised over the kept pdfs (exact up to the mass left out, which
:func:`write_teacher_posts` reports). Files in ``<out>``: ``post.ark`` + ``post.scp`` (readable
by Kaldi's ``copy-post``), ``info.json`` (teacher, k, frames, kept mass, bytes per frame).

Several teachers make one ensemble teacher: the targets are the mean of their posteriors (as in
Hinton et al.'s distillation of an ensemble); the teachers must share the input (features,
splicing, CMVN) and the pdfs, e.g. the same recipe trained with different seeds.

The same forward pass can also write the teacher's hybrid log-likelihoods (:class:`LoglikesOutput`):
the recipe's denominator lattices of the teacher (stage 12) read them instead of running the
teacher over the training data a second time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pykd.features.ark import ArkScpWriter
from pykd.frontend.features import iter_network_inputs
from pykd.frontend.model import file_sha256, load_acoustic_model, module_forward
from pykd.frontend.spec import InputSpec
from pykd.io.atomic import atomic_write_text
from pykd.kaldi.posterior_io import Posterior, write_posteriors
from pykd.nnet.loglikes import checked_loglikes
from pykd.train.options import KdOptions

log = logging.getLogger(__name__)


def top_k_posteriors(logits: torch.Tensor, k: int) -> Posterior:
    """``(ids, probs)`` of the k most probable pdfs per row of ``logits`` (softmax, T = 1),
    highest first."""
    probs = torch.softmax(logits.double(), dim=-1)
    top = torch.topk(probs, min(k, probs.shape[-1]), dim=-1)
    return top.indices.int().numpy(), top.values.float().numpy()


@dataclass(frozen=True)
class LoglikesOutput:
    """Where and how to write the log-likelihoods of the same forward pass: ``<dir>/loglikes.ark``
    + ``loglikes.scp``, ``log_softmax - prior_scale * log_priors`` (:mod:`pykd.nnet.loglikes`)."""

    dir: Path
    log_priors: np.ndarray | None
    prior_scale: float = 1.0


def ensemble_forward(
    teachers: Sequence[str | os.PathLike], device: str = "cpu"
) -> tuple[Callable[[np.ndarray], torch.Tensor], dict]:
    """One forward for one or several teachers, and the first teacher's meta. Several: the
    log of the mean of their posteriors (a softmax of it gives that mean); one: its logits as
    they are. ValueError naming the teacher whose input or pdfs differ from the first's."""
    if not teachers:
        raise ValueError("no teacher given")
    loaded = [load_acoustic_model(t, device=device) for t in teachers]
    meta = loaded[0][1]
    spec = InputSpec.from_meta(meta)
    for path, (_, other) in zip(teachers[1:], loaded[1:], strict=True):
        if int(other["num_pdfs"]) != int(meta["num_pdfs"]) or InputSpec.from_meta(other) != spec:
            raise ValueError(
                f"teacher {path}: its pdfs ({other['num_pdfs']}) or input differ from "
                f"{teachers[0]}'s ({meta['num_pdfs']} pdfs): an ensemble shares both"
            )
    forwards = [module_forward(model, device) for model, _ in loaded]
    if len(forwards) == 1:
        return forwards[0], meta
    log_n = math.log(len(forwards))

    def forward(x: np.ndarray) -> torch.Tensor:
        log_posts = torch.stack([torch.log_softmax(f(x).double(), dim=-1) for f in forwards])
        return torch.logsumexp(log_posts, dim=0) - log_n

    return forward, meta


def write_teacher_posts(
    teachers: str | os.PathLike | Sequence[str | os.PathLike],
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    top_k: int = KdOptions().top_k,
    device: str = "cpu",
    loglikes: LoglikesOutput | None = None,
) -> dict:
    """The teacher's (or the teachers' ensemble's) top-k posteriors over every utterance of
    ``data_dir`` into ``out_dir`` (see the module doc), and its log-likelihoods where
    ``loglikes`` says; returns the ``info.json`` content."""
    if isinstance(teachers, str | os.PathLike):
        teachers = [teachers]
    if top_k < 1:
        raise ValueError(f"top-k must be >= 1, got {top_k}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    forward, meta = ensemble_forward(teachers, device)
    kept: list[float] = []

    with contextlib.ExitStack() as stack:
        loglikes_writer = None
        if loglikes is not None:
            loglikes.dir.mkdir(parents=True, exist_ok=True)
            loglikes_writer = stack.enter_context(
                ArkScpWriter(loglikes.dir / "loglikes.ark", loglikes.dir / "loglikes.scp")
            )

        def items() -> Iterator[tuple[str, Posterior]]:
            for utt, x in iter_network_inputs(data_dir, InputSpec.from_meta(meta)):
                logits = forward(x)
                if loglikes_writer is not None:
                    loglikes_writer.write(
                        utt,
                        checked_loglikes(
                            utt, x.shape[0], logits, loglikes.log_priors, loglikes.prior_scale
                        ),
                    )
                ids, probs = top_k_posteriors(logits, top_k)
                kept.append(float(probs.sum(dtype=np.float64)))
                yield utt, (ids, probs)

        frames = write_posteriors(out / "post.ark", out / "post.scp", items())
    size = (out / "post.ark").stat().st_size
    info = {
        "teacher": os.fspath(teachers[0]),
        "teacher_sha256": file_sha256(teachers[0]),
        "data": os.fspath(data_dir),
        "top_k": min(top_k, int(meta["num_pdfs"])),
        "num_pdfs": int(meta["num_pdfs"]),
        "utterances": len(kept),
        "frames": frames,
        "kept_mass": sum(kept) / frames if frames else 0.0,
        "bytes_per_frame": size / frames if frames else 0.0,
        "seconds": round(time.time() - start, 1),
    }
    if len(teachers) > 1:
        info["ensemble_with"] = [
            {"teacher": os.fspath(t), "teacher_sha256": file_sha256(t)} for t in teachers[1:]
        ]
    if loglikes is not None:
        info["loglikes"] = {"dir": os.fspath(loglikes.dir), "prior_scale": loglikes.prior_scale}
    atomic_write_text(out / "info.json", json.dumps(info, indent=1) + "\n")
    log.info(
        "teacher posteriors of %s: %d utterances, %d frames, top %d keep %.4f of the mass, "
        "%.0f bytes/frame (%.1f GB for AMI's 29M frames), %.1f s",
        data_dir, len(kept), frames, info["top_k"], info["kept_mass"], info["bytes_per_frame"],
        info["bytes_per_frame"] * 29e6 / 1e9, info["seconds"],
    )  # fmt: skip
    return info


def read_info(posts_dir: str | os.PathLike) -> dict:
    """``info.json`` of a teacher-posteriors dir (FileNotFoundError naming it when missing)."""
    path = Path(posts_dir) / "info.json"
    if not path.is_file() or not (Path(posts_dir) / "post.scp").is_file():
        raise FileNotFoundError(
            f"{posts_dir} has no info.json / post.scp: make it with steps_kd/make_teacher_posts.sh"
        )
    return json.loads(path.read_text())
