"""Tied-state triphone training: Kaldi's ``steps/train_deltas.sh`` with a tree built by us.

Steps (Kaldi's programs in brackets)::

    tree statistics from the source alignments           [acc-tree-stats, sum-tree-stats]
    automatic + extra questions                          [cluster-phones, compile-questions]
    decision tree                                        [build-tree]
    one Gaussian per tied state from the tree statistics [gmm-init-model, gmm-mixup]
    source alignments mapped onto the new tree           [convert-ali]
    EM iterations, realigning at 10 20 30, mixing up     [gmm-align-compiled, gmm-acc-stats-ali,
                                                          gmm-est]

The EM pass reuses :mod:`pykd.gmm.em` (Kaldi's maths from kaldi-hmm-gmm); the tree statistics
and the realignments are parallel jobs through the job runner (``$cmd JOB=1:N``, as
:mod:`pykd.gmm.align`), one per piece of the source alignment's split data. Outputs in
``exp_dir``: ``tree`` (Kaldi binary), ``final.mdl``, ``final.occs``, ``ali.N.gz``,
``num_jobs``, ``cmvn_opts``, ``questions.int``, ``treeacc.npz`` (our format), ``log/``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import kaldi_hmm_gmm as khg
import numpy as np

from pykd.gmm import align, em
from pykd.gmm.build_tree import (
    ContextTree,
    TreeBuildResult,
    build_tree,
    read_roots,
    to_context_dependency,
    write_tree,
)
from pykd.gmm.feats import load_gmm_feats
from pykd.gmm.questions import cluster_phones, compile_questions, read_int_sets, write_int_sets
from pykd.gmm.tree_stats import (
    TidInfo,
    TreeStats,
    accumulate_tree_stats,
    merge_tree_stats,
    split_to_phones,
    tid_info,
)
from pykd.io.atomic import atomic_write_text
from pykd.io.datadir import read_table
from pykd.io.jobs import DEFAULT_CMD, pykd_command, run_jobs
from pykd.kaldi import model_io

log = logging.getLogger(__name__)


@dataclass
class TriConfig:
    """train_deltas.sh options (Kaldi defaults) plus the tree-building ones."""

    num_leaves: int
    tot_gauss: int
    num_iters: int = 35
    realign_iters: tuple[int, ...] = (10, 20, 30)
    max_iter_inc: int = 25
    power: float = 0.25
    beam: float = 10.0
    retry_beam: float = 40.0
    careful: bool = False
    boost_silence: float = 1.0
    split_thresh: float = 300.0  # build-tree --thresh: smallest likelihood gain of a split
    cluster_thresh: float = -1.0
    min_leaf_count: float = 0.0  # smallest frame count of a new tree leaf (0: as Kaldi)
    context_width: int = 3
    central_position: int = 1
    var_floor: float = 0.01  # acc-tree-stats --var-floor
    cmd: str = DEFAULT_CMD  # job runner of the tree-statistics and alignment jobs
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- model init


def init_model_from_tree(
    result: TreeBuildResult,
    stats: TreeStats,
    topo: khg.HmmTopology,
    var_floor: float = 0.01,
) -> tuple[khg.TransitionModel, khg.AmDiagGmm, np.ndarray]:
    """``gmm-init-model``: one Gaussian per tied state from the tree statistics.

    Returns (transition model, acoustic model, occupation count per pdf). A pdf with no
    statistics (e.g. the never-seen SPN phone) gets the global mean and variance.
    """
    tree = result.tree
    ctx_dep = to_context_dependency(tree)
    tm = khg.TransitionModel(ctx_dep, topo)
    num_pdfs = tm.num_pdfs
    stacked = stats.stacked()
    sums = np.zeros((num_pdfs, stacked.shape[1]))
    np.add.at(sums, result.leaf_of_event, stacked)
    total = stacked.sum(axis=0)
    dim = stats.dim
    am = khg.AmDiagGmm()
    empty = []
    for pdf in range(num_pdfs):
        s = sums[pdf] if sums[pdf, 0] > 0 else total
        if sums[pdf, 0] <= 0:
            empty.append(pdf)
        mean = s[1 : 1 + dim] / s[0]
        var = np.maximum(s[1 + dim :] / s[0] - mean * mean, var_floor)
        am.add_pdf(model_io.make_diag_gmm(np.ones(1), (mean / var)[None, :], (1.0 / var)[None, :]))
    if empty:
        log.warning("gmm-init-model: pdfs with no stats (global Gaussian used): %s", empty)
    return tm, am, sums[:, 0]


# --------------------------------------------------------------------------- convert-ali


def convert_alignment(
    ali: np.ndarray,
    old: TidInfo,
    new_tm: khg.TransitionModel,
    new_tree: ContextTree,
    topo: khg.HmmTopology,
    utt: str = "?",
    _cache: dict | None = None,
) -> np.ndarray:
    """``convert-ali``: the same phones, HMM states and transitions, under the new tree.

    Each phone instance's context window (phone 0 outside the utterance) picks the new pdfs;
    the transition-id is the one with the same (phone, HMM state, transition index).
    """
    cache = _cache if _cache is not None else {}
    if "tstate" not in cache:
        cache["tstate"] = {t.__getstate__(): i + 1 for i, t in enumerate(new_tm.tuples)}
        cache["state2id"] = list(new_tm.state2id)
        cache["topo"] = {}
    tstate, state2id, topo_cache = cache["tstate"], cache["state2id"], cache["topo"]
    n, p = new_tree.context_width, new_tree.central_position
    segs = split_to_phones(ali, old, utt)
    seq = [0] * p + [s[0] for s in segs] + [0] * (n - p - 1)
    out = np.empty(len(ali), dtype=np.int32)
    for i, (phone, start, end) in enumerate(segs):
        window = tuple(seq[i : i + n])
        if phone not in topo_cache:
            topo_cache[phone] = topo.topology_for_phone(phone)
        states = topo_cache[phone]
        for t in range(start, end):
            tid = int(ali[t])
            hs = int(old.hmm_state[tid])
            key = (window, hs, int(old.trans_index[tid]))
            new = cache.get(key)
            if new is None:
                st = states[hs]
                fpdf = new_tree.compute(window, st.forward_pdf_class)
                lpdf = new_tree.compute(window, st.self_loop_pdf_class)
                ts = tstate.get((phone, hs, fpdf, lpdf))
                if fpdf is None or lpdf is None or ts is None:
                    raise ValueError(
                        f"utterance {utt}: phone {phone} state {hs} in context {window} "
                        "has no pdf in the new tree"
                    )
                new = state2id[ts] + int(old.trans_index[tid])
                cache[key] = new
            out[t] = new
    return out


def convert_alignments(
    alis: Mapping[str, np.ndarray],
    old: TidInfo,
    new_tm: khg.TransitionModel,
    new_tree: ContextTree,
    topo: khg.HmmTopology,
) -> dict[str, np.ndarray]:
    cache: dict = {}
    return {
        utt: convert_alignment(a, old, new_tm, new_tree, topo, utt, cache)
        for utt, a in alis.items()
    }


# --------------------------------------------------------------------------- helpers


def _read_csl(path: Path) -> list[int]:
    text = path.read_text().strip()
    return [int(x) for x in text.split(":") if x]


def check_inputs(data: Path, lang: Path, ali_dir: Path) -> None:
    """Fail before any work, naming the missing file."""
    need = [data / f for f in ("feats.scp", "text", "utt2spk", "spk2utt")]
    need += [lang / f for f in ("L.fst", "topo", "words.txt", "phones.txt")]
    need += [
        lang / "phones" / f
        for f in (
            "roots.int", "sets.int", "extra_questions.int", "context_indep.csl",
            "optional_silence.csl", "disambig.int",
        )
    ]  # fmt: skip
    need += [ali_dir / "final.mdl", ali_dir / "num_jobs"]
    for path in need:
        if not path.is_file():
            raise FileNotFoundError(f"train_deltas: missing input file {path}")
    nj = int((ali_dir / "num_jobs").read_text().split()[0])
    for j in range(1, nj + 1):
        if not (ali_dir / f"ali.{j}.gz").is_file():
            raise FileNotFoundError(f"train_deltas: missing alignment file {ali_dir}/ali.{j}.gz")


def _copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def tree_stats_job(
    data_dir: Path, src_model: Path, topo_file: Path, ali: Path, cmvn_opts: str,
    context_width: int, central_position: int, ci_phones: list[int], out: Path,
) -> int:  # fmt: skip
    """acc-tree-stats for one job (run through ``$cmd`` by :func:`train_deltas`): writes
    ``out`` (npz); returns the number of utterances with statistics."""
    old_tm = model_io.read_transition_model(src_model)
    info = tid_info(old_tm, model_io.read_topo(topo_file))
    alis = model_io.read_alignments(ali)
    if not alis:
        raise em.TrainingError(f"{ali}: no alignments, no tree statistics")
    feats = load_gmm_feats(data_dir, cmvn_opts)
    stats = accumulate_tree_stats(
        info, alis, feats.items(), context_width, central_position, ci_phones
    )
    stats.save(out)
    return sum(1 for utt in feats if utt in alis)


def _tree_stats_all(
    cfg: TriConfig, jobs: list[align.Job], src: Path, lang: Path, exp: Path
) -> TreeStats:
    """acc-tree-stats over every job through ``cfg.cmd``, summed (sum-tree-stats)."""
    first = jobs[0]
    ci = ":".join(map(str, _read_csl(lang / "phones" / "context_indep.csl")))
    run_jobs(
        cfg.cmd,
        len(jobs),
        exp / "log" / "acc_tree.JOB.log",
        pykd_command(
            "gmm-tree-stats-job", f"--context-width={cfg.context_width}",
            f"--central-position={cfg.central_position}", f"--ci-phones={ci}",
            f"--cmvn-opts={first.cmvn_opts}", str(src / "final.mdl"), str(lang / "topo"),
            str(src / "ali.JOB.gz"), str(Path(first.data_dir).parent / "JOB"),
            str(exp / "treeacc.JOB.npz"),
        ),
    )  # fmt: skip
    parts = [exp / f"treeacc.{job.index}.npz" for job in jobs]
    stats = merge_tree_stats(TreeStats.load(p) for p in parts)
    for p in parts:
        p.unlink()
    return stats


def _realign(cfg: TriConfig, jobs, tm, am, opts, exp: Path, x: int):
    """gmm-align-compiled over all jobs at iteration ``x`` with ``x.mdl`` (deleted after);
    logs ``log/align.x.JOB.log``."""
    model = exp / f"{x}.mdl"
    model_io.write_model(model, tm, am)
    by_job, total = align.align_all(cfg.cmd, jobs, model, exp / "tree", opts, exp, str(x), True)
    model.unlink()
    alis: dict[str, np.ndarray] = {}
    for job_alis in by_job.values():
        alis.update(job_alis)
    log.info("iteration %d realigned: %s", x, total.summary().replace("\n", "; "))
    return alis, total


# --------------------------------------------------------------------------- train_deltas


def build_tree_stage(
    stats: TreeStats, lang: Path, topo: khg.HmmTopology, cfg: TriConfig, exp: Path
) -> TreeBuildResult:
    """cluster-phones + compile-questions + build-tree; writes questions.int and tree."""
    sets = read_int_sets(lang / "phones" / "sets.int")
    qs = cluster_phones(stats, sets, var_floor=cfg.var_floor)
    qs += read_int_sets(lang / "phones" / "extra_questions.int")
    write_int_sets(exp / "questions.int", qs)
    npc = topo.get_phone_to_num_pdf_classes()
    num_pdf_classes = {p: npc[p] for p in topo.phones}
    compiled = compile_questions(qs, cfg.context_width, max(num_pdf_classes.values()))
    result = build_tree(
        stats,
        read_roots(lang / "phones" / "roots.int"),
        compiled,
        num_pdf_classes,
        cfg.num_leaves,
        thresh=cfg.split_thresh,
        cluster_thresh=cfg.cluster_thresh,
        min_count=cfg.min_leaf_count,
        var_floor=cfg.var_floor,
    )
    write_tree(result.tree, exp / "tree")
    log.info(
        "build-tree: %d leaves, tree-impr %.2f per frame over %.0f frames",
        result.num_leaves, result.impr_per_frame, result.count,
    )  # fmt: skip
    return result


def train_deltas(
    data_dir: str | Path,
    lang_dir: str | Path,
    ali_dir: str | Path,
    exp_dir: str | Path,
    cfg: TriConfig,
) -> dict:
    """Train a tied-state triphone system; returns a summary (leaves, gauss, likelihoods)."""
    start = time.time()
    data, lang, src, exp = Path(data_dir), Path(lang_dir), Path(ali_dir), Path(exp_dir)
    check_inputs(data, lang, src)
    (exp / "log").mkdir(parents=True, exist_ok=True)
    src_nj = int((src / "num_jobs").read_text().split()[0])
    cmvn_file = src / "cmvn_opts"
    cmvn_opts = cmvn_file.read_text().strip() if cmvn_file.is_file() else ""
    atomic_write_text(exp / "cmvn_opts", cmvn_opts + "\n" if cmvn_opts else "")
    atomic_write_text(exp / "num_jobs", f"{src_nj}\n")

    topo = model_io.read_topo(lang / "topo")
    old_tm, _old_am = model_io.read_model(src / "final.mdl")
    old_info = tid_info(old_tm, topo)
    alis: dict[str, np.ndarray] = {}
    for j in range(1, src_nj + 1):
        alis.update(model_io.read_alignments(src / f"ali.{j}.gz"))
    pieces = align.split_data(data, src_nj)
    jobs = [align.Job(i + 1, str(p), str(lang), cmvn_opts) for i, p in enumerate(pieces)]
    job_utts = [set(read_table(Path(j.data_dir) / "utt2spk")) for j in jobs]

    align.remove_graphs(exp)  # compiled for the new tree on the first realignment
    stats = _tree_stats_all(cfg, jobs, src, lang, exp)
    stats.save(exp / "treeacc.npz")
    result = build_tree_stage(stats, lang, topo, cfg, exp)
    tm, am, occs = init_model_from_tree(result, stats, topo, cfg.var_floor)
    num_gauss = result.num_leaves
    inc_gauss = em.gauss_increment(cfg.tot_gauss, num_gauss, cfg.max_iter_inc)
    am.split_by_count(occs.astype(np.float32), num_gauss, 0.01, cfg.power, 20.0)
    cur = convert_alignments(alis, old_info, tm, result.tree, topo)
    log.info("convert-ali: %d alignments converted to the new tree", len(cur))
    all_feats = None
    opts = em.AlignOptions(
        beam=cfg.beam, retry_beam=cfg.retry_beam, careful=cfg.careful,
        boost_silence=cfg.boost_silence,
    )  # fmt: skip
    last_align: em.AlignStats | None = None
    for x in range(1, cfg.num_iters):
        if x in cfg.realign_iters:
            cur, last_align = _realign(cfg, jobs, tm, am, opts, exp, x)
        if all_feats is None:
            all_feats = {}
            for job in jobs:
                all_feats.update(align.job_feats(job))
        acc, tcounts, astats = em.accumulate(tm, am, all_feats, cur)
        ustats = em.update(tm, am, acc, tcounts, em.GmmEstOptions(mixup=num_gauss, power=cfg.power))
        atomic_write_text(
            exp / "log" / f"update.{x}.log",
            f"# gmm-acc-stats-ali: {astats.num_done} utterances, log-like per frame "
            f"{astats.like_per_frame():.6g} over {astats.num_frames} frames\n"
            f"{ustats.summary()}\n",
        )
        log.info(
            "iteration %d: like/frame %.4f, %d Gaussians",
            x,
            astats.like_per_frame(),
            ustats.num_gauss,
        )
        occs = ustats.pdf_occs
        if x <= cfg.max_iter_inc:
            num_gauss += inc_gauss
    align.remove_graphs(exp)
    model_io.write_model(exp / "final.mdl", tm, am)
    model_io.write_occs(exp / "final.occs", occs)
    for job, us in zip(jobs, job_utts, strict=True):
        model_io.write_alignments(
            exp / f"ali.{job.index}.gz", {u: a for u, a in cur.items() if u in us}
        )
    summary = {
        "num_leaves": result.num_leaves,
        "num_gauss": am.num_gauss,
        "tree_impr": result.impr_per_frame,
        "align_like_per_frame": last_align.like_per_frame() if last_align else float("nan"),
        "seconds": time.time() - start,
    }
    atomic_write_text(
        exp / "log" / "summary.log", "".join(f"{k} {v}\n" for k, v in summary.items())
    )
    log.info("%s: %s", exp, summary)
    return summary
