"""Alignment jobs over split data, and ``align_si`` (Kaldi's steps/align_si.sh).

Parallelism: one job per ``<data>/split<nj>/<n>`` piece (speakers kept whole, made by
``utils/split_data.sh``), run in a Python process pool (``spawn``) of ``nj`` workers; with one
worker everything runs in-process. A worker keeps its job's features and compiled training
graphs between calls, so realigning at every scheduled iteration only re-runs the Viterbi pass.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import subprocess
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import kaldi_hmm_gmm as khg
import numpy as np

from pykd.gmm import em
from pykd.gmm.feats import load_gmm_feats
from pykd.io.atomic import atomic_write_text
from pykd.io.datadir import read_table
from pykd.kaldi import model_io

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- split data


def split_data(data_dir: str | Path, nj: int) -> list[Path]:
    """``utils/split_data.sh <data> <nj>`` (whole speakers per piece); the piece dirs."""
    data = Path(data_dir)
    if nj < 1:
        raise ValueError(f"--nj must be >= 1, got {nj}")
    num_spk = len(read_table(data / "spk2utt"))
    if nj > num_spk:
        raise ValueError(f"{data}: --nj {nj} exceeds the number of speakers ({num_spk})")
    script = REPO_ROOT / "utils_kd" / "split_data.sh"
    if not script.is_file():  # not a source checkout: the recipe's utils/ on PATH
        found = shutil.which("split_data.sh")
        if found is None:
            raise FileNotFoundError("utils/split_data.sh not found (source path.sh)")
        script = Path(found)
    proc = subprocess.run(["bash", str(script), str(data), str(nj)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"split_data.sh {data} {nj} failed: {proc.stderr.strip()}")
    pieces = [data / f"split{nj}" / str(j) for j in range(1, nj + 1)]
    for piece in pieces:
        if not (piece / "feats.scp").is_file():
            raise FileNotFoundError(f"split_data.sh left no {piece / 'feats.scp'}")
    return pieces


def check_inputs(data_dir: Path, lang_dir: Path, need_model: Path | None = None) -> None:
    """Fail early, naming the missing file."""
    needed = [data_dir / f for f in ("feats.scp", "cmvn.scp", "text", "utt2spk", "spk2utt")]
    needed += [lang_dir / f for f in ("L.fst", "topo", "words.txt", "phones.txt")]
    needed += [lang_dir / "phones" / f for f in ("disambig.int", "sets.int", "silence.csl")]
    if need_model is not None:
        needed += [need_model / "final.mdl", need_model / "tree"]
    for path in needed:
        if not path.is_file():
            raise FileNotFoundError(f"missing input file {path}")


def silence_phones(lang_dir: Path, which: str = "optional_silence") -> list[int]:
    """Phone ids from ``phones/<which>.csl`` (colon-separated)."""
    text = (lang_dir / "phones" / f"{which}.csl").read_text().strip()
    return [int(x) for x in text.split(":") if x]


# --------------------------------------------------------------------------- job workers


@dataclass(frozen=True)
class Job:
    """One piece of split data to work on."""

    index: int  # 1-based, as JOB in Kaldi's scripts
    data_dir: str
    lang_dir: str
    cmvn_opts: str = ""


# Per-process caches (workers keep their jobs' data between iterations), bounded by a budget
# of frames so that large corpora are re-read instead of filling the memory.
CACHE_FRAMES = int(os.environ.get("PYKD_GMM_CACHE_FRAMES", "5000000"))  # ~0.8 GB of 39-dim feats
_FEATS: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
_GRAPHS: OrderedDict[tuple, tuple[dict[str, Any], list[str], int]] = OrderedDict()


def _num_frames(feats: dict[str, np.ndarray]) -> int:
    return sum(int(m.shape[0]) for m in feats.values())


def _evict(cache: OrderedDict, frames_of: Callable[[Any], int], incoming: int) -> None:
    """Drop the least recently used entries until ``incoming`` more frames fit the budget."""
    while cache and sum(frames_of(v) for v in cache.values()) + incoming > CACHE_FRAMES:
        cache.popitem(last=False)


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat() if path.exists() else None
    return (st.st_mtime_ns, st.st_size) if st else (0, 0)


def job_feats(job: Job) -> dict[str, np.ndarray]:
    """The job's GMM features (CMVN + deltas), cached in this process."""
    data = Path(job.data_dir)
    key = (job.data_dir, job.cmvn_opts, _stamp(data / "feats.scp"), _stamp(data / "cmvn.scp"))
    if key in _FEATS:
        _FEATS.move_to_end(key)
        return _FEATS[key]
    feats = load_gmm_feats(job.data_dir, job.cmvn_opts)
    _evict(_FEATS, _num_frames, _num_frames(feats))
    _FEATS[key] = feats
    return feats


def job_graphs(
    job: Job, ctx_dep: khg.ContextDependency, tm: khg.TransitionModel
) -> tuple[dict[str, Any], list[str]]:
    """The job's training graphs (compile-train-graphs), cached per tree in this process.

    Returns (utt -> graph, utterances whose graph could not be compiled).
    """
    tree_key = zlib.crc32(pickle.dumps(ctx_dep))
    text = Path(job.data_dir) / "text"
    if not text.is_file():
        raise FileNotFoundError(f"missing transcripts {text}")
    key = (job.data_dir, job.lang_dir, tree_key, _stamp(text), _stamp(Path(job.lang_dir) / "L.fst"))
    if key in _GRAPHS:
        _GRAPHS.move_to_end(key)
        graphs, bad, _ = _GRAPHS[key]
        return graphs, bad
    compiler = em.GraphCompiler.load(job.lang_dir, ctx_dep, tm)
    graphs, bad = compiler.compile_texts(read_table(text, allow_empty_value=True))
    frames = _num_frames(job_feats(job))
    _evict(_GRAPHS, lambda v: v[2], frames)
    _GRAPHS[key] = (graphs, bad, frames)
    return graphs, bad


def align_job(
    job: Job,
    ctx_dep: khg.ContextDependency,
    tm: khg.TransitionModel,
    am: khg.AmDiagGmm | None,
    opts: em.AlignOptions,
    silence: Sequence[int] = (),
) -> tuple[dict[str, np.ndarray], em.AlignStats, float]:
    """Align one job: equal alignment when ``am`` is None, else Viterbi (gmm-align-compiled).

    Returns (alignments, stats, seconds).
    """
    start = time.time()
    feats = job_feats(job)
    graphs, _bad = job_graphs(job, ctx_dep, tm)
    if am is None:
        alis, stats = em.equal_align(graphs, feats)
    else:
        alis, stats = em.align_utterances(tm, am, graphs, feats, opts, silence)
    return alis, stats, time.time() - start


def make_pool(nj: int) -> Executor | None:
    """A process pool of ``nj`` workers, or None for in-process work when ``nj`` is 1."""
    if nj <= 1:
        return None
    return ProcessPoolExecutor(max_workers=nj, mp_context=get_context("spawn"))


def run_jobs(pool: Executor | None, fn: Callable[..., Any], calls: list[tuple]) -> list[Any]:
    """``fn(*args)`` for each tuple in ``calls``, in the pool (if any); results in order."""
    if pool is None:
        return [fn(*args) for args in calls]
    futures = [pool.submit(fn, *args) for args in calls]
    return [f.result() for f in futures]


def write_align_log(path: Path, job: Job, what: str, stats: em.AlignStats, secs: float) -> None:
    atomic_write_text(
        path,
        f"# {what} (job {job.index}: {job.data_dir})\n{stats.summary()}\n"
        f"# Accounting: time={secs:.1f} secs\n",
    )


def align_all(
    pool: Executor | None,
    jobs: Sequence[Job],
    ctx_dep: khg.ContextDependency,
    tm: khg.TransitionModel,
    am: khg.AmDiagGmm | None,
    opts: em.AlignOptions,
    silence: Sequence[int],
    log_dir: Path,
    tag: str,
    ali_dir: Path | None = None,
) -> tuple[dict[int, dict[str, np.ndarray]], em.AlignStats]:
    """Align every job (equal alignment when ``am`` is None); logs ``log_dir/align.<tag>.N.log``.

    An empty ``tag`` gives ``align.N.log`` (align_si's names). With ``ali_dir``, writes
    ``ali_dir/ali.N.gz``. Returns (job index -> alignments, totals);
    raises :class:`em.TrainingError` only when no utterance at all could be aligned.
    """
    what = "align-equal-compiled" if am is None else "gmm-align-compiled"
    results = run_jobs(pool, align_job, [(j, ctx_dep, tm, am, opts, silence) for j in jobs])
    alis: dict[int, dict[str, np.ndarray]] = {}
    total = em.AlignStats()
    for job, (job_alis, stats, secs) in zip(jobs, results, strict=True):
        alis[job.index] = job_alis
        name = f"align.{tag}.{job.index}.log" if tag else f"align.{job.index}.log"
        write_align_log(log_dir / name, job, what, stats, secs)
        if ali_dir is not None:
            model_io.write_alignments(ali_dir / f"ali.{job.index}.gz", job_alis)
        total.add(stats)
    if total.num_done == 0:
        raise em.TrainingError(f"{what} ({tag}): no utterance could be aligned")
    if total.failed:
        log.warning(
            "%s (%s): %d utterances failed to align and were skipped: %s",
            what,
            tag,
            total.num_failed,
            " ".join(total.failed[:20]) + (" ..." if total.num_failed > 20 else ""),
        )
    return alis, total


def accumulate_all(
    jobs: Sequence[Job],
    tm: khg.TransitionModel,
    am: khg.AmDiagGmm,
    alis: dict[int, dict[str, np.ndarray]],
    log_dir: Path,
    tag: str,
) -> tuple[khg.AccumAmDiagGmm, np.ndarray, em.AccStats]:
    """gmm-acc-stats-ali over every job, summed (as gmm-sum-accs); ``log_dir/acc.<tag>.N.log``."""
    acc = em.new_accs(am)
    tcounts = np.zeros(tm.num_transition_ids + 1)
    total = em.AccStats()
    for job in jobs:
        _, _, st = em.accumulate(tm, am, job_feats(job), alis.get(job.index, {}), acc, tcounts)
        atomic_write_text(
            log_dir / f"acc.{tag}.{job.index}.log",
            f"Done {st.num_done} files, {st.num_no_ali} with no alignments.\n"
            f"Overall avg like per frame (Gaussian only) = {st.like_per_frame():.6g} "
            f"over {st.num_frames} frames.\n",
        )
        total.tot_like += st.tot_like
        total.num_frames += st.num_frames
        total.num_done += st.num_done
        total.num_no_ali += st.num_no_ali
    if total.num_frames == 0:
        raise em.TrainingError(f"acc ({tag}): no aligned frames to accumulate")
    return acc, tcounts, total


# --------------------------------------------------------------------------- align_si


@dataclass
class AlignSiResult:
    stats: em.AlignStats
    seconds: float


def align_si(
    data_dir: str | Path,
    lang_dir: str | Path,
    src_dir: str | Path,
    ali_dir: str | Path,
    nj: int = 4,
    opts: em.AlignOptions | None = None,
) -> AlignSiResult:
    """steps/align_si.sh: align ``data`` with ``src_dir/final.mdl`` -> ``ali_dir/ali.N.gz``.

    Copies final.mdl, tree, cmvn_opts to ``ali_dir`` and writes num_jobs; failed utterances
    are skipped, counted and named in ``ali_dir/log/align.N.log``.
    """
    start = time.time()
    data, lang, src, out = Path(data_dir), Path(lang_dir), Path(src_dir), Path(ali_dir)
    opts = opts or em.AlignOptions()
    check_inputs(data, lang, need_model=src)
    cmvn_opts_file = src / "cmvn_opts"
    cmvn_opts = cmvn_opts_file.read_text().strip() if cmvn_opts_file.is_file() else ""
    (out / "log").mkdir(parents=True, exist_ok=True)
    tm, am = model_io.read_model(src / "final.mdl")
    ctx_dep = model_io.read_tree(src / "tree")
    pieces = split_data(data, nj)
    if src.resolve() != out.resolve():
        for name in ("final.mdl", "tree", "final.occs"):
            if (src / name).is_file():
                tmp = out / f".{name}.tmp"
                shutil.copyfile(src / name, tmp)
                os.replace(tmp, out / name)
    atomic_write_text(out / "cmvn_opts", cmvn_opts + "\n" if cmvn_opts else "")
    atomic_write_text(out / "num_jobs", f"{nj}\n")
    sil = silence_phones(lang)
    jobs = [Job(i + 1, str(p), str(lang), cmvn_opts) for i, p in enumerate(pieces)]
    log.info("%s: aligning %s in %d jobs with %s/final.mdl", out, data, nj, src)
    pool = make_pool(nj)
    try:
        _, total = align_all(pool, jobs, ctx_dep, tm, am, opts, sil, out / "log", "", out)
    finally:
        if pool is not None:
            pool.shutdown()
    log.info("%s: %s", out, total.summary().replace("\n", "; "))
    return AlignSiResult(total, time.time() - start)
