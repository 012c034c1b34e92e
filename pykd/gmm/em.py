"""Shared EM machinery for GMM-HMM training with Kaldi's own maths (kaldi-hmm-gmm).

One training pass of Kaldi's scripts is::

    gmm-align-compiled (at realignment iterations)   -> :func:`align_utterances`
    gmm-acc-stats-ali                                -> :func:`accumulate`
    gmm-est --mix-up=N --power=P                     -> :func:`update`

Graphs are compiled as ``compile-train-graphs`` does (no transition probabilities:
:class:`GraphCompiler`); the current model's transition probabilities are added to a copy of
each graph at alignment time (``--transition-scale=1.0 --self-loop-scale=0.1``), and the
decoding uses ``--acoustic-scale=0.1`` (Kaldi's ``scale_opts``). The flat start is
``align-equal-compiled`` (:func:`equal_align`). Everything here works on in-memory
objects; the scripts' file layout lives in :mod:`pykd.gmm.mono` / :mod:`pykd.gmm.align`.

Typical use (what helpers for other systems reuse)::

    compiler = GraphCompiler.load(lang_dir, ctx_dep, trans_model)
    graphs, bad = compiler.compile_texts(texts)          # utt -> fst
    alis, astats = align_utterances(trans_model, am, graphs, feats, AlignOptions())
    acc, tcounts, acc_stats = accumulate(trans_model, am, feats, alis)
    ustats = update(trans_model, am, acc, tcounts, GmmEstOptions(mixup=1000))
"""

from __future__ import annotations

import heapq
import logging
import math
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import kaldi_hmm_gmm as khg
import kaldifst
import numpy as np

from pykd.io.datadir import read_table
from pykd.kaldi.model_io import make_diag_gmm

log = logging.getLogger(__name__)

GMM_ALL = int(khg.GmmUpdateFlags.kGmmAll)


class TrainingError(RuntimeError):
    """A training step cannot go on (no data, no successful alignment, ...)."""


# --------------------------------------------------------------------------- options


@dataclass
class AlignOptions:
    """gmm-align-compiled options with Kaldi's training ``scale_opts`` as defaults."""

    beam: float = 10.0
    retry_beam: float = 40.0
    careful: bool = False
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1
    acoustic_scale: float = 0.1
    boost_silence: float = 1.0  # gmm-boost-silence factor on the silence phones' pdfs


@dataclass
class GmmEstOptions:
    """gmm-est options (Kaldi defaults; ``mixup`` 0 = no mixing up)."""

    mixup: int = 0
    power: float = 0.25
    perturb_factor: float = 0.01
    min_count: float = 20.0  # --min-count: a pdf needs this many frames per Gaussian to split
    min_gaussian_occupancy: float = 10.0
    min_gaussian_weight: float = 1.0e-5
    min_variance: float = 1.0e-3
    transition_floor: float = 0.01
    transition_mincount: float = 5.0
    update_transitions: bool = True
    seed: int = 0  # of the mean perturbations when mixing up (the same inputs give the same model)


# --------------------------------------------------------------------------- lang / graphs


def read_int_list(path: Path) -> list[int]:
    """A file of whitespace-separated integers (Kaldi's ``phones/*.int``)."""
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}")
    return [int(tok) for tok in path.read_text().split()]


def read_int_sets(path: Path) -> list[list[int]]:
    """One integer list per line (``phones/sets.int``; a ``shared split`` prefix is dropped)."""
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}")
    out = []
    for line in path.read_text().splitlines():
        toks = [t for t in line.split() if t not in ("shared", "not-shared", "split", "not-split")]
        if toks:
            out.append([int(t) for t in toks])
    return out


@dataclass
class GraphCompiler:
    """``compile-train-graphs`` for one model: transcript words -> training graph (no probs)."""

    compiler: khg.TrainingGraphCompiler
    words: dict[str, int]
    oov_id: int | None
    # kept alive: the compiler refers to them (a dropped tree or model would leave it dangling)
    lexicon_fst: kaldifst.StdVectorFst
    ctx_dep: khg.ContextDependency
    trans_model: khg.TransitionModel

    @classmethod
    def load(
        cls, lang_dir: str | Path, ctx_dep: khg.ContextDependency, trans_model: khg.TransitionModel
    ) -> GraphCompiler:
        lang = Path(lang_dir)
        lfst_path = lang / "L.fst"
        if not lfst_path.is_file():
            raise FileNotFoundError(f"missing lexicon FST {lfst_path}")
        lfst = kaldifst.StdVectorFst.read(str(lfst_path))
        disambig = read_int_list(lang / "phones" / "disambig.int")
        words = {k: int(v) for k, v in read_table(lang / "words.txt").items()}
        oov_file = lang / "oov.int"
        oov_id = int(oov_file.read_text().split()[0]) if oov_file.is_file() else None
        # compile-train-graphs defaults: transition/self-loop scales 0 (probs added at align).
        opts = khg.TrainingGraphCompilerOptions(transition_scale=0.0, self_loop_scale=0.0)
        comp = khg.TrainingGraphCompiler(trans_model, ctx_dep, lfst, disambig, opts)
        return cls(comp, words, oov_id, lfst, ctx_dep, trans_model)

    def word_ids(self, utt: str, words: list[str]) -> tuple[list[int], list[str]]:
        """Word ids and the OOV words among ``words``, which map to ``oov.int`` (as
        ``sym2int.pl --map-oov``)."""
        ids, oovs = [], []
        for w in words:
            wid = self.words.get(w)
            if wid is None:
                if self.oov_id is None:
                    raise KeyError(f"utterance '{utt}': word '{w}' not in words.txt, no oov.int")
                wid = self.oov_id
                oovs.append(w)
            ids.append(wid)
        return ids, oovs

    def compile(self, utt: str, words: list[str]) -> kaldifst.StdVectorFst:
        return self._compile_ids(utt, self.word_ids(utt, words)[0])

    def _compile_ids(self, utt: str, ids: list[int]) -> kaldifst.StdVectorFst:
        graph = self.compiler.compile_graph_from_text(ids)
        if graph.num_states == 0 or graph.start < 0:
            raise ValueError(f"utterance '{utt}': empty training graph")
        return graph

    def compile_texts(
        self, texts: Mapping[str, str]
    ) -> tuple[dict[str, kaldifst.StdVectorFst], list[str]]:
        """Graphs for ``utt -> transcript``; returns (graphs, utterances that failed). OOV words
        and empty transcripts are allowed (as in Kaldi) and named in warnings."""
        graphs: dict[str, kaldifst.StdVectorFst] = {}
        failed: list[str] = []
        oovs: dict[str, list[str]] = {}
        empty: list[str] = []
        for utt, text in texts.items():
            words = text.split()
            if not words:
                empty.append(utt)
            try:
                ids, utt_oovs = self.word_ids(utt, words)
                if utt_oovs:
                    oovs[utt] = utt_oovs
                graphs[utt] = self._compile_ids(utt, ids)
            except (KeyError, ValueError, RuntimeError) as err:
                log.warning("compile-train-graphs: %s", err)
                failed.append(utt)
        if oovs:
            shown = "; ".join(f"{u}: {' '.join(w)}" for u, w in list(oovs.items())[:10])
            more = f"; ... ({len(oovs) - 10} more)" if len(oovs) > 10 else ""
            log.warning(
                "compile-train-graphs: %d words of %d utterances are not in words.txt and are "
                "trained as the OOV word (oov.int): %s%s",
                sum(map(len, oovs.values())), len(oovs), shown, more,
            )  # fmt: skip
        if empty:
            more = f" ... ({len(empty) - 10} more)" if len(empty) > 10 else ""
            log.warning(
                "compile-train-graphs: %d utterances have an empty transcript and are aligned "
                "as silence: %s%s", len(empty), " ".join(empty[:10]), more,
            )  # fmt: skip
        return graphs, failed


# --------------------------------------------------------------------------- alignment


@dataclass
class AlignStats:
    """What gmm-align-compiled / align-equal-compiled report, plus the failing utterances."""

    num_done: int = 0
    num_retried: int = 0
    failed: list[str] = field(default_factory=list)
    tot_like: float = 0.0
    num_frames: int = 0

    @property
    def num_failed(self) -> int:
        return len(self.failed)

    def add(self, other: AlignStats) -> None:
        self.num_done += other.num_done
        self.num_retried += other.num_retried
        self.failed.extend(other.failed)
        self.tot_like += other.tot_like
        self.num_frames += other.num_frames

    def like_per_frame(self) -> float:
        return self.tot_like / self.num_frames if self.num_frames else float("nan")

    def summary(self) -> str:
        lines = [
            f"Done {self.num_done}, errors on {self.num_failed}, retried {self.num_retried}",
            f"Overall log-likelihood per frame is {self.like_per_frame():.6g} over "
            f"{self.num_frames} frames.",
        ]
        if self.failed:
            lines.append("Failed utterances: " + " ".join(self.failed))
        return "\n".join(lines)


def kaldi_string_hash(key: str) -> int:
    """Kaldi's ``StringHasher`` of an utterance id as int32 (align-equal-compiled's seed)."""
    ans = 0
    for byte in key.encode("utf-8"):
        signed = byte - 256 if byte > 127 else byte  # C++ char is signed on x86
        ans = (ans * 7853 + signed) & 0xFFFFFFFFFFFFFFFF  # size_t arithmetic
    low = ans & 0xFFFFFFFF
    return low - (1 << 32) if low >= (1 << 31) else low


def equal_align(
    graphs: Mapping[str, kaldifst.StdVectorFst], feats: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], AlignStats]:
    """``align-equal-compiled``: a random path through each graph, frames spread equally.

    The random seed per utterance is Kaldi's (a hash of the utterance id).
    """
    alis: dict[str, np.ndarray] = {}
    stats = AlignStats()
    for utt, mat in feats.items():
        graph = graphs.get(utt)
        if graph is None:
            stats.failed.append(utt)
            continue
        seed = kaldi_string_hash(utt)
        ok, path = kaldifst.equal_align(graph, int(mat.shape[0]), seed)
        tids: list[int] = []
        if ok:
            ok, tids, _, _ = kaldifst.get_linear_symbol_sequence(path)
        if not ok or len(tids) != mat.shape[0]:
            log.warning(
                "align-equal-compiled: no path of %d frames for utterance '%s' (too short?)",
                mat.shape[0],
                utt,
            )
            stats.failed.append(utt)
            continue
        alis[utt] = np.asarray(tids, dtype=np.int32)
        stats.num_done += 1
        stats.num_frames += int(mat.shape[0])
    return alis, stats


def boost_silence(
    am: khg.AmDiagGmm, trans_model: khg.TransitionModel, phones: Iterable[int], boost: float
) -> khg.AmDiagGmm:
    """``gmm-boost-silence``: a copy of ``am`` whose silence pdfs' weights are scaled."""
    out = pickle.loads(pickle.dumps(am))
    if boost == 1.0:
        return out
    _, pdfs = khg.get_pdfs_for_phones(trans_model, sorted(set(phones)))
    for pdf in pdfs:
        gmm = out.get_pdf(pdf)
        gmm.set_weights(np.asarray(gmm.weights, dtype=np.float32) * np.float32(boost))
        gmm.compute_gconsts()
    log.info("boosted the weights of %d silence pdfs by %g", len(pdfs), boost)
    return out


def graph_with_probs(
    graph: kaldifst.StdVectorFst, trans_model: khg.TransitionModel, opts: AlignOptions
) -> kaldifst.StdVectorFst:
    """A copy of a training graph with the model's transition probs added (as at align time)."""
    out = kaldifst.StdVectorFst(graph)
    khg.add_transition_probs(trans_model, [], opts.transition_scale, opts.self_loop_scale, out)
    return out


def align_utterances(
    trans_model: khg.TransitionModel,
    am: khg.AmDiagGmm,
    graphs: Mapping[str, kaldifst.StdVectorFst],
    feats: Mapping[str, np.ndarray],
    opts: AlignOptions,
    silence_phones: Iterable[int] = (),
) -> tuple[dict[str, np.ndarray], AlignStats]:
    """``gmm-align-compiled``: Viterbi alignment; retried with the retry beam, else skipped.

    A failing utterance is named in the log and counted in the returned stats, never raised.
    """
    model = boost_silence(am, trans_model, silence_phones, opts.boost_silence)
    config = khg.AlignConfig(beam=opts.beam, retry_beam=opts.retry_beam, careful=opts.careful)
    alis: dict[str, np.ndarray] = {}
    stats = AlignStats()
    for utt, mat in feats.items():
        graph = graphs.get(utt)
        if graph is None:
            log.warning("no training graph for utterance '%s'", utt)
            stats.failed.append(utt)
            continue
        if mat.shape[0] == 0:
            log.warning("utterance '%s' has no frames", utt)
            stats.failed.append(utt)
            continue
        fst = graph_with_probs(graph, trans_model, opts)
        decodable = khg.DecodableAmDiagGmmScaled(model, trans_model, mat, opts.acoustic_scale)
        done, err, retried, like, frames, ali, _words = khg.align_utterance_wrapper(
            config, utt, opts.acoustic_scale, fst, decodable, 0, 0, 0, 0.0, 0
        )
        stats.num_retried += retried
        if err or not done or len(ali) != mat.shape[0]:
            log.warning(
                "alignment failed for utterance '%s' (%d frames, beam %g, retry-beam %g)",
                utt,
                mat.shape[0],
                opts.beam,
                opts.retry_beam,
            )
            stats.failed.append(utt)
            continue
        alis[utt] = np.asarray(ali, dtype=np.int32)
        stats.num_done += 1
        stats.tot_like += like
        stats.num_frames += frames
    return alis, stats


# --------------------------------------------------------------------------- accumulation


@dataclass
class AccStats:
    """gmm-acc-stats-ali's report."""

    tot_like: float = 0.0
    num_frames: int = 0
    num_done: int = 0
    num_no_ali: int = 0

    def like_per_frame(self) -> float:
        return self.tot_like / self.num_frames if self.num_frames else float("nan")


def new_accs(am: khg.AmDiagGmm) -> khg.AccumAmDiagGmm:
    acc = khg.AccumAmDiagGmm()
    acc.init(am, GMM_ALL)
    return acc


def accumulate(
    trans_model: khg.TransitionModel,
    am: khg.AmDiagGmm,
    feats: Mapping[str, np.ndarray],
    alis: Mapping[str, np.ndarray],
    acc: khg.AccumAmDiagGmm | None = None,
    trans_counts: np.ndarray | None = None,
) -> tuple[khg.AccumAmDiagGmm, np.ndarray, AccStats]:
    """``gmm-acc-stats-ali``: GMM stats (AccumAmDiagGmm) and transition-id counts.

    Utterances without an alignment, or whose alignment length differs from the number of
    frames, are skipped with a warning. Pass ``acc``/``trans_counts`` to add to them.
    """
    if acc is None:
        acc = new_accs(am)
    num_tids = trans_model.num_transition_ids
    if trans_counts is None:
        trans_counts = np.zeros(num_tids + 1, dtype=np.float64)
    tid2pdf = np.asarray(trans_model.id2pdf_id, dtype=np.int32)
    stats = AccStats()
    for utt, mat in feats.items():
        ali = alis.get(utt)
        if ali is None:
            stats.num_no_ali += 1
            continue
        if len(ali) != mat.shape[0]:
            log.warning(
                "utterance '%s': alignment has %d frames, features %d; skipped",
                utt,
                len(ali),
                mat.shape[0],
            )
            stats.num_no_ali += 1
            continue
        if ali.min() < 1 or ali.max() > num_tids:
            raise TrainingError(f"utterance '{utt}': transition-id out of range 1..{num_tids}")
        pdfs = tid2pdf[ali]
        mat32 = np.ascontiguousarray(mat, dtype=np.float32)
        like = 0.0
        for t in range(mat32.shape[0]):
            like += acc.accumulate_for_gmm(am, mat32[t], int(pdfs[t]), 1.0)
        trans_counts += np.bincount(ali, minlength=num_tids + 1)
        stats.tot_like += like
        stats.num_frames += int(mat.shape[0])
        stats.num_done += 1
    return acc, trans_counts, stats


# --------------------------------------------------------------------------- update


@dataclass
class UpdateStats:
    """gmm-est's report."""

    gmm_objf_impr: float
    gmm_count: float
    trans_objf_impr: float
    trans_count: float
    num_gauss: int
    pdf_occs: np.ndarray

    def summary(self) -> str:
        def per(x: float, n: float) -> str:
            return f"{x / n:.6g}" if n else "nan"

        return (
            f"Transition model update: Overall {per(self.trans_objf_impr, self.trans_count)} "
            f"log-like improvement per frame over {self.trans_count:.0f} frames.\n"
            f"GMM update: Overall {per(self.gmm_objf_impr, self.gmm_count)} objective function "
            f"improvement per frame over {self.gmm_count:.0f} frames\n"
            f"Number of Gaussians: {self.num_gauss}"
        )


def pdf_occupancies(acc: khg.AccumAmDiagGmm) -> np.ndarray:
    """Per-pdf occupation counts (what ``gmm-est --write-occs`` writes)."""
    return np.array(
        [float(np.sum(acc.get_acc(i).occupancy)) for i in range(acc.num_accs)], dtype=np.float64
    )


def update(
    trans_model: khg.TransitionModel,
    am: khg.AmDiagGmm,
    acc: khg.AccumAmDiagGmm,
    trans_counts: np.ndarray,
    opts: GmmEstOptions,
) -> UpdateStats:
    """``gmm-est``: transition + GMM ML update in place, then mixing up to ``opts.mixup``."""
    t_impr = t_count = 0.0
    if opts.update_transitions:
        tcfg = khg.MleTransitionUpdateConfig(
            floor=opts.transition_floor, mincount=opts.transition_mincount
        )
        t_impr, t_count = trans_model.mle_update(np.asarray(trans_counts, np.float64), tcfg)
    gcfg = khg.MleDiagGmmOptions(
        min_gaussian_weight=opts.min_gaussian_weight,
        min_gaussian_occupancy=opts.min_gaussian_occupancy,
        min_variance=opts.min_variance,
    )
    g_impr, g_count = khg.mle_am_diag_gmm_update(gcfg, acc, GMM_ALL, am)
    occs = pdf_occupancies(acc)
    if opts.mixup > 0:
        split_by_count(
            am, occs, opts.mixup, opts.perturb_factor, opts.power, opts.min_count, opts.seed
        )
    return UpdateStats(g_impr, g_count, t_impr, t_count, am.num_gauss, occs)


def split_targets(occs: np.ndarray, target: int, power: float, min_count: float) -> list[int]:
    """Gaussians per pdf after mixing up to ``target`` in all (Kaldi's gmm-mixup rule).

    One Gaussian per pdf to start; each step gives one more to the pdf with the largest
    occupancy**power per Gaussian, unless that pdf would then have fewer than ``min_count``
    frames per Gaussian (it is then closed); stops at ``target`` or when every pdf is closed.
    """
    score = np.power(np.maximum(np.asarray(occs, np.float64), 0.0), power)
    counts = [1] * len(score)
    heap = [(-float(score[p]) / (1 + 1e-10), p) for p in range(len(score)) if score[p] > 0]
    heapq.heapify(heap)
    total = len(score)
    while total < target and heap:
        _, pdf = heapq.heappop(heap)
        if (counts[pdf] + 1) * min_count >= occs[pdf]:
            continue  # min-count reached: this pdf is not split any more
        counts[pdf] += 1
        total += 1
        heapq.heappush(heap, (-float(score[pdf]) / (counts[pdf] + 1e-10), pdf))
    return counts


def split_by_count(
    am: khg.AmDiagGmm,
    occs: np.ndarray,
    target: int,
    perturb_factor: float,
    power: float,
    min_count: float,
    seed: int,
) -> None:
    """Mix ``am`` up to about ``target`` Gaussians, as Kaldi's gmm-est --mix-up does, in place.

    Each split halves the heaviest Gaussian of a pdf and moves the two copies' means apart by
    +-``perturb_factor`` standard deviations times a normal draw. Written here rather than
    kaldi-hmm-gmm's split_by_count because that one draws from std::random_device, which cannot
    be seeded: here the draws come from numpy seeded with ``seed``, so training is reproducible.
    """
    rng = np.random.default_rng(seed)
    for pdf, want in enumerate(split_targets(occs, target, power, min_count)):
        gmm = am.get_pdf(pdf)
        have = gmm.num_gauss
        if want <= have:
            continue
        # the new Gaussians' rows, appended after the current ones and filled by the splits
        weights = np.concatenate(
            [np.asarray(gmm.weights, np.float32), np.zeros(want - have, np.float32)]
        )
        extra = np.zeros((want - have, gmm.dim), np.float32)
        means_invvars = np.vstack([np.asarray(gmm.means_invvars, np.float32), extra])
        inv_vars = np.vstack([np.asarray(gmm.inv_vars, np.float32), extra])
        for new in range(have, want):
            heaviest = int(np.argmax(weights[:new]))
            weights[heaviest] /= 2
            weights[new] = weights[heaviest]
            shift = (rng.standard_normal(gmm.dim) * np.sqrt(inv_vars[heaviest])).astype(
                np.float32
            ) * np.float32(perturb_factor)
            inv_vars[new] = inv_vars[heaviest]
            means_invvars[new] = means_invvars[heaviest] + shift
            means_invvars[heaviest] = means_invvars[heaviest] - shift
        gmm.copy_from_diag_gmm(make_diag_gmm(weights, means_invvars, inv_vars))


# --------------------------------------------------------------------------- init


def global_diag_gmm(feats: Iterable[np.ndarray]) -> khg.DiagGmm:
    """One Gaussian with the global mean and variance of ``feats`` (gmm-init-mono)."""
    count, dim = 0, None
    sum_x: np.ndarray | None = None
    sum_x2: np.ndarray | None = None
    for mat in feats:
        m = np.asarray(mat, dtype=np.float64)
        if sum_x is None:
            dim = m.shape[1]
            sum_x, sum_x2 = np.zeros(dim), np.zeros(dim)
        sum_x += m.sum(0)
        sum_x2 += (m * m).sum(0)
        count += m.shape[0]
    if not count or sum_x is None or sum_x2 is None or dim is None:
        raise TrainingError("no features to initialise the GMMs from")
    mean = sum_x / count
    var = sum_x2 / count - mean * mean
    floor = 1.0e-3  # gmm-init-mono floors the variance (it would be 0 on a constant dim)
    var = np.maximum(var, floor)
    gmm = khg.DiagGmm(1, dim)
    gmm.set_weights(np.ones(1, dtype=np.float32))
    gmm.set_invvars_and_means(
        (1.0 / var).astype(np.float32)[None, :], mean.astype(np.float32)[None, :]
    )
    gmm.compute_gconsts()
    return gmm


def init_am(proto: khg.DiagGmm, num_pdfs: int) -> khg.AmDiagGmm:
    """An acoustic model with ``num_pdfs`` copies of ``proto``."""
    am = khg.AmDiagGmm()
    am.init(proto, num_pdfs)
    am.compute_gconsts()
    return am


def gauss_increment(total: int, current: int, max_iter_inc: int) -> int:
    """train_mono.sh's ``incgauss=$[($totgauss-$numgauss)/$max_iter_inc]`` (bash division)."""
    diff = total - current
    return int(math.trunc(diff / max_iter_inc)) if max_iter_inc > 0 else 0
