"""Monophone training: Kaldi's steps/train_mono.sh with kaldi-hmm-gmm's maths.

Flat start (gmm-init-mono: one Gaussian per pdf with the global mean/variance of the first
utterances; compile-train-graphs; align-equal-compiled), then ``num_iters`` passes of
accumulate + gmm-est with realignment at Kaldi's schedule, Gaussians growing linearly from the
number of pdfs to ``totgauss`` over ``max_iter_inc`` iterations (mixing up with power 0.25).

Exp dir (Kaldi's layout): ``0.mdl``, ``<num_iters>.mdl`` (earlier models are deleted as
train_mono.sh does), ``final.mdl -> <num_iters>.mdl``, ``<num_iters>.occs``, ``final.occs``,
``tree``, ``ali.N.gz`` (from the last realignment), ``num_jobs``, ``cmvn_opts``, ``log/``
(``init.log``, ``align.<x>.N.log``, ``acc.<x>.N.log``, ``update.<x>.log``, ``train.log`` with
one progress line per iteration).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import kaldi_hmm_gmm as khg
import numpy as np

from pykd.gmm import em
from pykd.gmm.align import (
    Job,
    accumulate_all,
    align_all,
    check_inputs,
    job_feats,
    remove_graphs,
    split_data,
)
from pykd.io.atomic import atomic_write_text
from pykd.io.jobs import DEFAULT_CMD
from pykd.kaldi import model_io

log = logging.getLogger(__name__)

REALIGN_ITERS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 23, 26, 29, 32, 35, 38)


@dataclass
class MonoOptions:
    """train_mono.sh options (Kaldi's defaults)."""

    nj: int = 4
    cmd: str = DEFAULT_CMD  # job runner of the alignment jobs ($cmd)
    num_iters: int = 40
    max_iter_inc: int = 30  # Gaussians grow until this iteration
    totgauss: int = 1000
    boost_silence: float = 1.0
    realign_iters: tuple[int, ...] = REALIGN_ITERS
    power: float = 0.25
    cmvn_opts: str = ""
    initial_beam: float = 6.0  # first realignment; later ones use ``beam``
    beam: float = 10.0
    retry_beam_factor: float = 4.0  # retry-beam = 4 * beam, as train_mono.sh
    careful: bool = False
    num_init_utts: int = 10  # gmm-init-mono --train-feats="... subset-feats --n=10 ..."
    init_min_gaussian_occupancy: float = 3.0  # first gmm-est


@dataclass
class IterInfo:
    """One line of progress."""

    iteration: int
    like_per_frame: float  # gmm-acc-stats-ali, Gaussian only
    num_frames: int
    align_like_per_frame: float | None  # gmm-align-compiled (None: no realignment)
    num_failed: int
    num_gauss: int
    seconds: float

    def line(self) -> str:
        align = (
            f"align like/frame {self.align_like_per_frame:.4f}, failed {self.num_failed}; "
            if self.align_like_per_frame is not None
            else ""
        )
        return (
            f"iter {self.iteration}: {align}avg like/frame (Gaussian only) "
            f"{self.like_per_frame:.4f} over {self.num_frames} frames; "
            f"{self.num_gauss} Gaussians after update; {self.seconds:.1f} s"
        )


@dataclass
class MonoResult:
    iters: list[IterInfo] = field(default_factory=list)
    last_align: em.AlignStats | None = None
    seconds: float = 0.0


def init_mono(
    lang_dir: Path, feats: dict[str, np.ndarray], num_init_utts: int
) -> tuple[khg.ContextDependency, khg.TransitionModel, khg.AmDiagGmm]:
    """gmm-init-mono --shared-phones=phones/sets.int: tree, transition model and 0.mdl GMMs."""
    topo = model_io.read_topo(lang_dir / "topo")
    sets = em.read_int_sets(lang_dir / "phones" / "sets.int")
    ctx_dep = khg.monophone_context_dependency_shared(sets, topo.get_phone_to_num_pdf_classes())
    tm = khg.TransitionModel(ctx_dep, topo)
    subset = list(feats.values())[:num_init_utts]
    am = em.init_am(em.global_diag_gmm(subset), tm.num_pdfs)
    return ctx_dep, tm, am


def link_final(exp: Path, name: str, target: str) -> None:
    """``ln -sf target exp/name`` (atomically)."""
    tmp = exp / f".{name}.lnk"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, exp / name)


class _Logs:
    """Progress lines to the logger and to ``log/train.log``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def __call__(self, msg: str) -> None:
        log.info("%s", msg)
        self.lines.append(f"{time.strftime('%F %T')} {msg}")
        atomic_write_text(self.path, "\n".join(self.lines) + "\n")


def train_mono(
    data_dir: str | Path, lang_dir: str | Path, exp_dir: str | Path, opts: MonoOptions
) -> MonoResult:
    """Train a monophone system into ``exp_dir`` (see the module docstring)."""
    start = time.time()
    data, lang, exp = Path(data_dir), Path(lang_dir), Path(exp_dir)
    check_inputs(data, lang)
    if opts.num_iters < 1 or opts.totgauss < 1:
        raise ValueError("--num-iters and --totgauss must be positive")
    (exp / "log").mkdir(parents=True, exist_ok=True)
    progress = _Logs(exp / "log" / "train.log")
    progress(f"train_mono: data {data}, lang {lang}, exp {exp}, {opts}")
    atomic_write_text(exp / "num_jobs", f"{opts.nj}\n")
    atomic_write_text(exp / "cmvn_opts", opts.cmvn_opts + "\n" if opts.cmvn_opts else "")
    pieces = split_data(data, opts.nj)
    jobs = [Job(i + 1, str(p), str(lang), opts.cmvn_opts) for i, p in enumerate(pieces)]
    remove_graphs(exp)  # compiled for this tree on the first alignment pass
    result = MonoResult()

    ctx_dep, tm, am = init_mono(lang, job_feats(jobs[0]), opts.num_init_utts)
    model_io.write_tree(ctx_dep, exp / "tree")
    model_io.write_model(exp / "0.mdl", tm, am)
    num_gauss = am.num_gauss
    inc_gauss = em.gauss_increment(opts.totgauss, num_gauss, opts.max_iter_inc)
    atomic_write_text(
        exp / "log" / "init.log",
        f"gmm-init-mono --shared-phones={lang}/phones/sets.int: {tm.num_pdfs} pdfs, "
        f"{tm.num_transition_ids} transition-ids, {tm.num_transition_states} "
        f"transition-states, feature dim {am.dim}, from the first {opts.num_init_utts} "
        f"utterances of job 1\nGaussians: {num_gauss} -> {opts.totgauss} (+{inc_gauss} per "
        f"iteration up to iteration {opts.max_iter_inc})\n",
    )
    progress(f"initialised: {tm.num_pdfs} pdfs, {num_gauss} Gaussians, dim {am.dim}")

    alis: dict[int, dict[str, np.ndarray]] = {}
    beam = opts.initial_beam
    for x in range(0, opts.num_iters):
        t0 = time.time()
        align_stats: em.AlignStats | None = None
        if x == 0 or x in opts.realign_iters:
            aopts = None if x == 0 else em.AlignOptions(
                beam=beam,
                retry_beam=beam * opts.retry_beam_factor,
                careful=opts.careful,
                boost_silence=opts.boost_silence,
            )  # fmt: skip
            alis, align_stats = align_all(
                opts.cmd, jobs, exp / f"{x}.mdl", exp / "tree", aopts, exp, str(x), True
            )
            if x > 0:
                result.last_align = align_stats
        acc, tcounts, acc_total = accumulate_all(jobs, tm, am, alis, exp / "log", str(x))
        est = em.GmmEstOptions(mixup=num_gauss, power=opts.power)
        if x == 0:
            est.min_gaussian_occupancy = opts.init_min_gaussian_occupancy
        upd = em.update(tm, am, acc, tcounts, est)
        model_io.write_model(exp / f"{x + 1}.mdl", tm, am)
        model_io.write_occs(exp / f"{x + 1}.occs", upd.pdf_occs)
        atomic_write_text(exp / "log" / f"update.{x}.log", upd.summary() + "\n")
        if x >= 1:  # as train_mono.sh: keep 0.mdl and the newest model only
            for old in (exp / f"{x}.mdl", exp / f"{x}.occs"):
                old.unlink(missing_ok=True)
        info = IterInfo(
            x,
            acc_total.like_per_frame(),
            acc_total.num_frames,
            align_stats.like_per_frame() if align_stats is not None and x > 0 else None,
            align_stats.num_failed if align_stats is not None else 0,
            am.num_gauss,
            time.time() - t0,
        )
        result.iters.append(info)
        progress(info.line())
        if x >= 1 and x <= opts.max_iter_inc:
            num_gauss += inc_gauss
        if x >= 1:
            beam = opts.beam
    remove_graphs(exp)
    link_final(exp, "final.mdl", f"{opts.num_iters}.mdl")
    link_final(exp, "final.occs", f"{opts.num_iters}.occs")
    result.seconds = time.time() - start
    progress(summary_line(exp, opts.nj, result, tm.num_pdfs, am.num_gauss))
    return result


def summary_line(exp: Path, nj: int, result: MonoResult, num_pdfs: int, num_gauss: int) -> str:
    """Like steps/info/gmm_dir_info.pl: align prob, retry/fail rates, states, Gaussians."""
    st = result.last_align
    if st is None:
        return f"{exp}: nj={nj} (no realignment) states={num_pdfs} gauss={num_gauss}"
    total = st.num_done + st.num_failed
    hours = st.num_frames / 100.0 / 3600.0
    return (
        f"{exp}: nj={nj} align prob={st.like_per_frame():.2f} over {hours:.2f}h "
        f"[retry={100.0 * st.num_retried / max(total, 1):.1f}%, "
        f"fail={100.0 * st.num_failed / max(total, 1):.1f}%] states={num_pdfs} "
        f"gauss={num_gauss} ({result.seconds:.0f} s)"
    )
