"""Alignment jobs over split data, and ``align_si`` (Kaldi's steps/align_si.sh).

Parallelism as in Kaldi: one job per ``<data>/split<nj>/<n>`` piece (speakers kept whole, made by
``utils/split_data.sh``), run through the recipe's job runner (``$cmd JOB=1:N
log/align.<x>.JOB.log pykd gmm-align-job ...``, :func:`pykd.io.jobs.run_jobs`), so ``queue.pl``
or ``slurm.pl`` spread them. A job reads its features, compiles its training graphs, aligns
(equal alignment or Viterbi with the model), and writes ``ali.JOB.gz`` plus its statistics
(``<log>.json``). Accumulation and the update run in the training's own process, which keeps
the features of its jobs in memory up to a budget (``PYKD_GMM_CACHE_FRAMES``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import kaldi_hmm_gmm as khg
import kaldifst
import numpy as np

from pykd.gmm import em
from pykd.gmm.feats import load_gmm_feats
from pykd.io.atomic import atomic_write_text
from pykd.io.datadir import read_table
from pykd.io.jobs import DEFAULT_CMD, pykd_command, recipe_tool, run_jobs
from pykd.kaldi import model_io

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- split data


def split_data(data_dir: str | Path, nj: int) -> list[Path]:
    """``utils/split_data.sh <data> <nj>`` (whole speakers per piece); the piece dirs."""
    data = Path(data_dir)
    if nj < 1:
        raise ValueError(f"--nj must be >= 1, got {nj}")
    num_spk = len(read_table(data / "spk2utt"))
    if nj > num_spk:
        raise ValueError(f"{data}: --nj {nj} exceeds the number of speakers ({num_spk})")
    script = recipe_tool("split_data.sh")
    proc = subprocess.run(["bash", script, str(data), str(nj)], capture_output=True, text=True)
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


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """One piece of split data to work on."""

    index: int  # 1-based, as JOB in Kaldi's scripts
    data_dir: str
    lang_dir: str
    cmvn_opts: str = ""


# The training process keeps its jobs' features between iterations, bounded by a budget of
# frames so that large corpora are re-read instead of filling the memory.
CACHE_FRAMES = int(os.environ.get("PYKD_GMM_CACHE_FRAMES", "5000000"))  # ~0.8 GB of 39-dim feats
_FEATS: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()


def _num_frames(feats: dict[str, np.ndarray]) -> int:
    return sum(int(m.shape[0]) for m in feats.values())


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
    incoming = _num_frames(feats)
    while _FEATS and sum(map(_num_frames, _FEATS.values())) + incoming > CACHE_FRAMES:
        _FEATS.popitem(last=False)  # least recently used first
    _FEATS[key] = feats
    return feats


def align_all(
    cmd: str,
    jobs: Sequence[Job],
    model: Path,
    tree: Path,
    opts: em.AlignOptions | None,
    exp: Path,
    tag: str,
    cache_graphs: bool = False,
) -> tuple[dict[int, dict[str, np.ndarray]], em.AlignStats]:
    """Align every job through ``cmd``: equal alignment when ``opts`` is None, else Viterbi
    with ``model``. Writes ``exp/ali.JOB.gz`` and ``exp/log/align.<tag>.JOB.log`` (an empty
    ``tag`` gives align_si's ``align.JOB.log``). ``cache_graphs``: the jobs keep their training
    graphs in ``exp/fsts.JOB.gz`` (compiled on the first pass; the caller removes them when the
    tree changes). Returns (job index -> alignments, totals);
    raises :class:`em.TrainingError` only when no utterance at all could be aligned."""
    what = "align-equal-compiled" if opts is None else "gmm-align-compiled"
    name = f"align.{tag}.JOB" if tag else "align.JOB"
    args = ["--equal"] if opts is None else [
        f"--beam={opts.beam}", f"--retry-beam={opts.retry_beam}",
        f"--careful={str(opts.careful).lower()}", f"--boost-silence={opts.boost_silence}",
    ]  # fmt: skip
    first = jobs[0]
    data_pattern = str(Path(first.data_dir).parent / "JOB")
    run_jobs(
        cmd,
        len(jobs),
        exp / "log" / f"{name}.log",
        pykd_command(
            "gmm-align-job", *args, f"--cmvn-opts={first.cmvn_opts}",
            f"--stats-out={exp / 'log' / name}.json",
            *([f"--graphs={exp / 'fsts.JOB.gz'}"] if cache_graphs else []),
            str(model), str(tree), first.lang_dir,
            data_pattern, str(exp / "ali.JOB.gz"),
        ),
    )  # fmt: skip
    alis: dict[int, dict[str, np.ndarray]] = {}
    total = em.AlignStats()
    for job in jobs:
        alis[job.index] = model_io.read_alignments(exp / f"ali.{job.index}.gz")
        stats_file = exp / "log" / f"{name.replace('JOB', str(job.index))}.json"
        total.add(em.AlignStats(**json.loads(stats_file.read_text())))
    if total.num_done == 0:
        raise em.TrainingError(f"{what} ({exp}, {tag or 'align'}): no utterance could be aligned")
    if total.failed:
        log.warning(
            "%s (%s): %d utterances failed to align and were skipped: %s",
            what,
            tag,
            total.num_failed,
            " ".join(total.failed[:20]) + (" ..." if total.num_failed > 20 else ""),
        )
    return alis, total


def compile_graphs(
    data_dir: Path, lang_dir: Path, ctx_dep: khg.ContextDependency, tm: khg.TransitionModel
) -> dict[str, kaldifst.StdVectorFst]:
    """compile-train-graphs for ``data_dir/text`` (failures warned about and left out)."""
    text = data_dir / "text"
    if not text.is_file():
        raise FileNotFoundError(f"missing transcripts {text}")
    compiler = em.GraphCompiler.load(lang_dir, ctx_dep, tm)
    graphs, _failed = compiler.compile_texts(read_table(text, allow_empty_value=True))
    return graphs


def remove_graphs(exp: Path) -> None:
    """Delete the training graphs the jobs of ``exp`` cached (``fsts.JOB.gz``)."""
    for path in exp.glob("fsts.*.gz"):
        path.unlink()


def write_graphs(path: Path, graphs: dict[str, kaldifst.StdVectorFst]) -> None:
    """Training graphs as a gzipped FST archive (Kaldi's fsts.JOB.gz), atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    writer = kaldifst.VectorFstWriter(f"ark:| gzip -c > {tmp}")
    for utt, graph in graphs.items():
        writer.write(utt, graph)
    writer.close()
    os.replace(tmp, path)


def read_graphs(path: Path) -> dict[str, kaldifst.StdVectorFst]:
    """The training graphs of :func:`write_graphs` (or Kaldi's compile-train-graphs)."""
    reader = kaldifst.SequentialVectorFstReader(f"ark:gunzip -c {path}|")
    graphs = {}
    while not reader.done:
        graphs[reader.key] = kaldifst.StdVectorFst(reader.value)  # a copy: value is reused
        reader.next()
    reader.close()
    return graphs


def align_job(
    data_dir: Path,
    lang_dir: Path,
    model: Path,
    tree: Path,
    cmvn_opts: str,
    opts: em.AlignOptions | None,
    ali_out: Path,
    stats_out: Path,
    graphs_file: Path | None = None,
) -> em.AlignStats:
    """One job of :func:`align_all`: compile-train-graphs, then align-equal-compiled (``opts``
    None) or gmm-align-compiled with ``model`` and the lang's optional silence boosted; writes
    the alignments to ``ali_out`` and the statistics (JSON) to ``stats_out``. With
    ``graphs_file`` (Kaldi's ``fsts.JOB.gz``) the training graphs are compiled once: read from
    it when it exists, else written to it."""
    tm, am = model_io.read_model(model)
    if graphs_file is not None and graphs_file.is_file():
        graphs = read_graphs(graphs_file)
    else:
        graphs = compile_graphs(data_dir, lang_dir, model_io.read_tree(tree), tm)
        if graphs_file is not None:
            write_graphs(graphs_file, graphs)
    feats = load_gmm_feats(data_dir, cmvn_opts)
    if opts is None:
        alis, stats = em.equal_align(graphs, feats)
    else:
        alis, stats = em.align_utterances(tm, am, graphs, feats, opts, silence_phones(lang_dir))
    model_io.write_alignments(ali_out, alis)
    atomic_write_text(stats_out, json.dumps(asdict(stats)) + "\n")
    return stats


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
    cmd: str = DEFAULT_CMD,
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
    pieces = split_data(data, nj)
    if src.resolve() != out.resolve():
        for name in ("final.mdl", "tree", "final.occs"):
            if (src / name).is_file():
                tmp = out / f".{name}.tmp"
                shutil.copyfile(src / name, tmp)
                os.replace(tmp, out / name)
    atomic_write_text(out / "cmvn_opts", cmvn_opts + "\n" if cmvn_opts else "")
    atomic_write_text(out / "num_jobs", f"{nj}\n")
    jobs = [Job(i + 1, str(p), str(lang), cmvn_opts) for i, p in enumerate(pieces)]
    log.info("%s: aligning %s in %d jobs with %s/final.mdl", out, data, nj, src)
    _, total = align_all(cmd, jobs, out / "final.mdl", out / "tree", opts, out, "")
    log.info("%s: %s", out, total.summary().replace("\n", "; "))
    return AlignSiResult(total, time.time() - start)
