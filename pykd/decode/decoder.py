"""Lattice decoding through an HCLG graph: builtin ``latgen-faster-mapped`` / ``gmm-latgen-faster``.

Per utterance (log-likelihoods ``T x num_pdfs``, natural log, unscaled):

1. ``mat = acwt * loglike`` (frames x pdfs; each graph arc reads its transition-id's pdf).
2. Only with ``check_best_path`` (off by default): Kaldi's own ``LatticeFasterDecoder``
   (``kaldi_hmm_gmm``, with beam and max-active, on ``mat[:, tid2pdf[1:]]``: column j =
   transition-id j+1) gives the 1-best path exactly as latgen-faster does; it exposes no
   lattice.
3. Our lattice search (compiled, :mod:`pykd.decode.latdet`): frame-synchronous beam search with
   max-active / min-active pruning that keeps every token link within the beam, the raw
   state-level lattice; its best path is the 1-best (one search per utterance). When it reaches
   no final state (or, with step 2, its best path is worse than step 2's), it is re-run with a
   wider beam (``beam * k``, k = 2, 4).
4. Our lattice determinisation, compiled (:mod:`pykd.decode.latdet`): prune at
   ``lattice_beam``, determinise on words in Kaldi's CompactLattice semiring (per word sequence
   the best path, transition-ids as arc strings), prune again, then undo the acoustic scale
   (stored costs are unscaled, as Kaldi's).
"""

from __future__ import annotations

import logging
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import kaldi_hmm_gmm as khg
import kaldifst
import numpy as np

from pykd.decode.latdet import DecodingGraph, DeterminizeLimitError, RawLattice, SearchStatus
from pykd.io.atomic import atomic_write_text
from pykd.kaldi.lattice_io import (
    INF,
    CompactLattice,
    Lattice,
    write_lattices,
)

log = logging.getLogger(__name__)


class DecodeError(ValueError):
    """Bad decoder input (message names the file / utterance)."""


class DimensionError(DecodeError):
    """Log-likelihood columns do not match the model's pdfs (fatal for a whole job)."""


@dataclass
class DecodeOptions:
    """Kaldi's latgen options (same defaults as steps/decode.sh passes)."""

    beam: float = 13.0
    lattice_beam: float = 6.0
    max_active: int = 7000
    min_active: int = 200
    acoustic_scale: float = 0.083333
    allow_partial: bool = True
    determinize_lattice: bool = True
    max_beam_widenings: int = 2
    # Also run kaldi-hmm-gmm's LatticeFasterDecoder (max-active) for the 1-best and widen our
    # lattice search when it misses that path: a second search per utterance (25-40% of the
    # decoding time), a cross-check only. Off (default): the lattice's best path is the 1-best,
    # and a search that reaches no final state is re-run at a wider beam before a partial
    # lattice is accepted. Our search prunes as Kaldi's does (max-active / min-active cutoffs
    # and the adaptive beam), so it finds Kaldi's best path on its own, also on kaldi-ref's
    # mismatched unseen voice (tests/test_kaldi_decode.py).
    check_best_path: bool = False
    # Bound on determinisation work (closure steps) per frame; Kaldi's determinize-lattice-pruned
    # bounds memory with --max-mem. Past it the lattice beam is halved and determinisation retried.
    det_max_work_per_frame: float = 500.0
    det_min_work: int = 50_000


@dataclass
class DecodeResult:
    """One decoded utterance."""

    utt: str
    num_frames: int
    words: list[int] = field(default_factory=list)
    alignment: list[int] = field(default_factory=list)
    likelihood: float = 0.0  # -(graph + scaled acoustic) of the best path
    lattice: CompactLattice | Lattice | None = None
    beam_used: float = 0.0


# ----------------------------------------------------------------------------- graph
def fst_type_of(path: str | os.PathLike) -> str:
    """The FST type in an OpenFst binary header (``vector``, ``const``, ...)."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    if len(head) < 8 or struct.unpack("<i", head[:4])[0] != 2125659606:
        raise DecodeError(f"{path}: not an OpenFst binary FST")
    (n,) = struct.unpack("<i", head[4:8])
    return head[8 : 8 + n].decode(errors="replace")


def load_graph(path: str | os.PathLike) -> kaldifst.StdVectorFst:
    """Read HCLG.fst; a Kaldi ConstFst is converted with Debian's ``fstconvert`` first."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"decoding graph not found: {path}")
    kind = fst_type_of(path)
    if kind == "vector":
        return kaldifst.StdVectorFst.read(str(path))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "HCLG.vector.fst"
        try:
            subprocess.run(
                ["fstconvert", "--fst_type=vector", str(path), str(out)],
                check=True,
                capture_output=True,
            )
        except FileNotFoundError as err:
            raise DecodeError(
                f"{path} is a '{kind}' FST; converting it needs fstconvert (libfst-tools)"
            ) from err
        except subprocess.CalledProcessError as err:
            raise DecodeError(f"fstconvert failed on {path}: {err.stderr.decode()}") from err
        return kaldifst.StdVectorFst.read(str(out))


# ----------------------------------------------------------------------------- GMM likelihoods
class GmmScorer:
    """Per-pdf log-likelihoods of a Kaldi ``AmDiagGmm`` for a whole feature matrix (numpy)."""

    def __init__(self, am: khg.AmDiagGmm) -> None:
        gcs, mis, ivs, owner = [], [], [], []
        for p in range(am.num_pdfs):
            g = am.get_pdf(p)
            gcs.append(np.asarray(g.gconsts, dtype=np.float64))
            mis.append(np.asarray(g.means_invvars, dtype=np.float64))
            ivs.append(np.asarray(g.inv_vars, dtype=np.float64))
            owner.append(len(gcs[-1]))
        self.dim = am.dim
        self.num_pdfs = am.num_pdfs
        self.gconsts = np.concatenate(gcs)
        # [x, x^2] @ W gives x.mu/var - 0.5 x^2/var per Gaussian
        self.weights = np.concatenate([np.concatenate(mis).T, -0.5 * np.concatenate(ivs).T], 0)
        self.offsets = np.concatenate([[0], np.cumsum(owner)[:-1]]).astype(np.int64)

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        feats = np.asarray(feats, dtype=np.float64)
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise DecodeError(f"feature dim {feats.shape[-1]} != model dim {self.dim}")
        out = np.empty((feats.shape[0], self.num_pdfs), dtype=np.float32)
        counts = np.diff(np.append(self.offsets, len(self.gconsts)))
        step = max(1, 4_000_000 // max(1, len(self.gconsts)))  # bound the T x Gaussians block
        for t0 in range(0, feats.shape[0], step):
            x = feats[t0 : t0 + step]
            comp = np.concatenate([x, x * x], 1) @ self.weights + self.gconsts
            mx = np.maximum.reduceat(comp, self.offsets, axis=1)
            s = np.add.reduceat(np.exp(comp - np.repeat(mx, counts, axis=1)), self.offsets, axis=1)
            out[t0 : t0 + step] = mx + np.log(s)
        return out


# ----------------------------------------------------------------------------- lattice algorithms
def _topo_order(num_states: int, succ: list[list[int]], start: int) -> list[int]:
    """Topological order of the states reachable from ``start`` (error on a cycle)."""
    seen = [False] * num_states
    stack = [start]
    seen[start] = True
    reach = []
    while stack:
        s = stack.pop()
        reach.append(s)
        for d in succ[s]:
            if not seen[d]:
                seen[d] = True
                stack.append(d)
    indeg = dict.fromkeys(reach, 0)
    for s in reach:
        for d in succ[s]:
            indeg[d] += 1
    queue = [s for s in reach if indeg[s] == 0]
    order = []
    while queue:
        s = queue.pop()
        order.append(s)
        for d in succ[s]:
            indeg[d] -= 1
            if indeg[d] == 0:
                queue.append(d)
    if len(order) != len(reach):
        raise DecodeError("lattice has a cycle")
    return order


def _arc_cost(lat: Lattice | CompactLattice, arc: tuple) -> float:
    return arc[3] + arc[4] if isinstance(lat, Lattice) else arc[2] + arc[3]


def prune_lattice(lat: Lattice | CompactLattice, beam: float) -> Lattice | CompactLattice:
    """Keep arcs/finals on a path within ``beam`` of the best (cost = graph + acoustic as stored);
    the result is connected and its states numbered in topological order (start = 0)."""
    n = lat.num_states
    if n == 0:
        return lat
    order = _topo_order(n, [[a[0] for a in arcs] for arcs in lat.arcs], lat.start)
    alpha = [INF] * n
    alpha[lat.start] = 0.0
    for s in order:
        if alpha[s] == INF:
            continue
        for arc in lat.arcs[s]:
            c = alpha[s] + _arc_cost(lat, arc)
            if c < alpha[arc[0]]:
                alpha[arc[0]] = c
    beta = [INF] * n
    for s in reversed(order):
        b = lat.finals[s][0] + lat.finals[s][1] if s in lat.finals else INF
        for arc in lat.arcs[s]:
            b = min(b, _arc_cost(lat, arc) + beta[arc[0]])
        beta[s] = b
    best = beta[lat.start]
    if best == INF:
        return type(lat)()  # no successful path
    limit = best + beam
    keep = [alpha[s] + beta[s] <= limit for s in range(n)]
    new_id = {}
    for s in order:
        if keep[s]:
            new_id[s] = len(new_id)
    out = type(lat)(start=0, arcs=[[] for _ in new_id])
    for s, ns in new_id.items():
        for arc in lat.arcs[s]:
            d = arc[0]
            if keep[d] and alpha[s] + _arc_cost(lat, arc) + beta[d] <= limit:
                out.arcs[ns].append((new_id[d],) + tuple(arc[1:]))
        if s in lat.finals:
            fw = lat.finals[s]
            if alpha[s] + fw[0] + fw[1] <= limit:
                out.finals[ns] = fw
    return out


def scale_acoustic(lat: CompactLattice | Lattice, factor: float) -> None:
    """Multiply acoustic costs by ``factor`` in place (``1/acwt`` undoes the decoding scale)."""
    comp = isinstance(lat, CompactLattice)
    for s, arcs in enumerate(lat.arcs):
        if comp:
            lat.arcs[s] = [(d, w, g, a * factor, t) for d, w, g, a, t in arcs]
        else:
            lat.arcs[s] = [(d, i, o, g, a * factor) for d, i, o, g, a in arcs]
    for s, fw in list(lat.finals.items()):
        lat.finals[s] = (fw[0], fw[1] * factor) + tuple(fw[2:])


def best_path(
    clat: CompactLattice,
    lm_scale: float = 1.0,
    acoustic_scale: float = 1.0,
    word_ins_penalty: float = 0.0,
) -> tuple[list[int], list[int], float, float] | None:
    """``lattice-best-path``: (words, transition-ids, graph cost, acoustic cost) or None.

    Path cost = lm_scale * graph + acoustic_scale * acoustic + penalty * num_words (the penalty
    is added to the graph cost as ``lattice-add-penalty`` does; returned costs exclude it).
    """
    n = clat.num_states
    if n == 0:
        return None
    order = _topo_order(n, [[a[0] for a in arcs] for arcs in clat.arcs], clat.start)
    cost = [INF] * n
    back: list[tuple[int, int] | None] = [None] * n
    cost[clat.start] = 0.0
    for s in order:
        if cost[s] == INF:
            continue
        for i, (d, w, g, a, _t) in enumerate(clat.arcs[s]):
            c = cost[s] + lm_scale * (g + (word_ins_penalty if w else 0.0)) + acoustic_scale * a
            if c < cost[d]:
                cost[d] = c
                back[d] = (s, i)
    best, best_s = INF, -1
    for s, (g, a, _t) in clat.finals.items():
        c = cost[s] + lm_scale * g + acoustic_scale * a
        if c < best:
            best, best_s = c, s
    if best_s < 0:
        return None
    words: list[int] = []
    tids: list[int] = list(clat.finals[best_s][2])
    g_tot, a_tot = clat.finals[best_s][0], clat.finals[best_s][1]
    s = best_s
    while back[s] is not None:
        p, i = back[s]
        _d, w, g, a, t = clat.arcs[p][i]
        if w:
            words.append(w)
        tids[:0] = t
        g_tot += g
        a_tot += a
        s = p
    words.reverse()
    return words, tids, g_tot, a_tot


def lattice_depth(clat: CompactLattice, num_frames: int) -> tuple[float, float]:
    """(arcs per frame, Kaldi lattice-depth = transition-ids on all arcs per frame)."""
    if num_frames <= 0:
        return 0.0, 0.0
    narcs = clat.num_arcs()
    ntids = sum(len(a[4]) for arcs in clat.arcs for a in arcs)
    ntids += sum(len(f[2]) for f in clat.finals.values())
    return narcs / num_frames, ntids / num_frames


# ----------------------------------------------------------------------------- decoder
@dataclass
class RawSearch:
    """The raw state-level lattice of one search (held by the compiled library)."""

    lattice: RawLattice
    best_cost: float
    complete: bool  # reached a final state (else a partial lattice, with allow-partial)

    def python_lattice(self) -> Lattice:
        return self.lattice.to_lattice()


class LatticeDecoder:
    """Decode log-likelihood matrices over pdfs into lattices with one HCLG graph."""

    def __init__(
        self,
        graph: kaldifst.StdVectorFst,
        trans_model: khg.TransitionModel,
        opts: DecodeOptions | None = None,
    ) -> None:
        self.graph = graph
        self.trans_model = trans_model
        self.opts = opts or DecodeOptions()
        self.tid2pdf = np.asarray(
            [-1]
            + [
                trans_model.transition_id_to_pdf(t)
                for t in range(1, trans_model.num_transition_ids + 1)
            ],
            dtype=np.int64,
        )
        self.num_pdfs = int(trans_model.num_pdfs)
        self._search_graph: DecodingGraph | None = None  # made on the first search
        o = self.opts
        self._faster_cfg = khg.LatticeFasterDecoderConfig(
            beam=o.beam,
            max_active=o.max_active,
            min_active=o.min_active,
            lattice_beam=o.lattice_beam,
        )

    def _faster_best(self, utt: str, mat: np.ndarray) -> tuple[bool, list[int], list[int], float]:
        dec = khg.LatticeFasterDecoder(self.graph, self._faster_cfg)
        ok, ali, words, like = khg.decode_utterance_lattice_faster(
            dec, khg.DecodableCtc(mat), self.trans_model, utt, self.opts.allow_partial
        )
        return ok, list(ali), list(words), float(like)

    def _raw_lattice(self, mat: np.ndarray, beam: float) -> RawSearch | None:
        """One lattice search (compiled: beam, max-active, min-active) at ``beam`` of ``mat``
        (frames x pdfs, scaled)."""
        if self._search_graph is None:
            self._search_graph = DecodingGraph.from_fst(self.graph)
            self._search_graph.set_columns(self.tid2pdf)  # the search reads pdf columns
        o = self.opts
        raw, status = self._search_graph.search(
            mat, beam, o.max_active, o.min_active, o.lattice_beam
        )
        if raw is None:
            return None  # every token pruned
        if status == SearchStatus.PARTIAL and not o.allow_partial:
            return None  # no final state reached (Kaldi: "not producing output")
        return RawSearch(raw, raw.best_cost(), status != SearchStatus.PARTIAL)

    def decode(self, utt: str, loglikes: np.ndarray) -> DecodeResult:
        """Decode one utterance; ``loglikes`` is ``T x num_pdfs`` (natural log, unscaled)."""
        o = self.opts
        loglikes = np.asarray(loglikes)
        if loglikes.ndim != 2 or loglikes.shape[1] != self.num_pdfs:
            raise DimensionError(
                f"utterance {utt}: log-likelihood matrix has {loglikes.shape[-1]} columns, "
                f"the model has {self.num_pdfs} pdfs"
            )
        res = DecodeResult(utt=utt, num_frames=int(loglikes.shape[0]))
        if res.num_frames == 0:
            raise DecodeError(f"utterance {utt}: empty log-likelihood matrix")
        if not np.all(np.isfinite(loglikes)):
            raise DecodeError(f"utterance {utt}: log-likelihoods contain NaN or inf")
        mat = np.ascontiguousarray(o.acoustic_scale * loglikes, np.float32)  # frames x pdfs
        if o.check_best_path or not o.determinize_lattice:
            ok, ali, words, like = self._faster_best(utt, mat[:, self.tid2pdf[1:]])
            if not ok:
                raise DecodeError(
                    f"utterance {utt}: no lattice: decoding reached no final state "
                    f"(allow-partial={str(o.allow_partial).lower()}) or no token survived"
                )
            res.alignment, res.words, res.likelihood = ali, words, like
            target = -like
        else:
            target = INF  # no reference: the first lattice search that yields a lattice wins
        tol = 1e-3 + 1e-5 * abs(target) if math.isfinite(target) else 0.0  # float32 sums
        lat: RawSearch | None = None
        best = INF
        for attempt in range(o.max_beam_widenings + 1):
            beam = o.beam * (2**attempt)
            cand = self._raw_lattice(mat, beam)
            # a complete search beats a partial one; then the lower cost wins
            if cand is not None and (
                lat is None or (cand.complete, -cand.best_cost) > (lat.complete, -best)
            ):
                lat, best, res.beam_used = cand, cand.best_cost, beam
            if lat is not None and lat.complete and best <= target + tol:
                break
            log.debug("utterance %s: lattice search at beam %g missed the best path", utt, beam)
        if lat is None:
            raise DecodeError(
                f"utterance {utt}: no lattice: decoding reached no final state even at beam "
                f"{o.beam * 2**o.max_beam_widenings:g} (allow-partial="
                f"{str(o.allow_partial).lower()})"
            )
        if math.isfinite(target) and best > target + tol:
            log.warning(
                "utterance %s: lattice best cost %.3f is worse than the 1-best %.3f even at "
                "beam %g",
                utt,
                best,
                target,
                res.beam_used,
            )
        if o.determinize_lattice:
            res.lattice = self._determinize(utt, lat.lattice, res.num_frames)
            if not o.check_best_path:
                self._fill_best_from_lattice(utt, res)
        else:
            pruned = prune_lattice(lat.python_lattice(), o.lattice_beam)
            scale_acoustic(pruned, 1.0 / o.acoustic_scale)
            res.lattice = pruned
        return res

    def _fill_best_from_lattice(self, utt: str, res: DecodeResult) -> None:
        """1-best words, alignment and likelihood from the determinised lattice (whose best path
        is the search's best path: pruning and determinisation keep it)."""
        assert isinstance(res.lattice, CompactLattice)
        bp = best_path(res.lattice, 1.0, self.opts.acoustic_scale)
        if bp is None:
            raise DecodeError(f"utterance {utt}: the lattice has no successful path")
        words, tids, g, a = bp
        res.words, res.alignment = words, tids
        res.likelihood = -(g + self.opts.acoustic_scale * a)

    def _determinize(self, utt: str, lat: RawLattice, num_frames: int) -> CompactLattice:
        """Prune at lattice-beam and determinise; on a state blow-up halve the beam and retry."""
        o = self.opts
        max_work = max(o.det_min_work, int(o.det_max_work_per_frame * num_frames))
        beam = o.lattice_beam
        while True:
            try:
                return lat.determinize(beam, max_work, 1.0 / o.acoustic_scale)
            except DeterminizeLimitError:
                if beam < 0.01:
                    raise DecodeError(
                        f"utterance {utt}: lattice determinisation exceeds {max_work} steps "
                        "even at lattice beam 0"
                    ) from None
                beam = beam / 2 if beam > 0.02 else 0.0
                log.warning(
                    "utterance %s: lattice determinisation exceeded %d steps; "
                    "lattice beam reduced to %g",
                    utt,
                    max_work,
                    beam,
                )


def decode_all(
    decoder: LatticeDecoder, items: Iterable[tuple[str, np.ndarray]]
) -> Iterator[tuple[DecodeResult | None, str]]:
    """Decode many utterances; a failing one yields ``(None, utt)`` after logging it."""
    for utt, ll in items:
        try:
            yield decoder.decode(utt, ll), utt
        except DimensionError:
            raise
        except DecodeError as err:
            log.warning("%s", err)
            yield None, utt


@dataclass
class DecodeSummary:
    """Totals of one decoding job (what latgen's log ends with)."""

    done: int = 0
    failed: list[str] = field(default_factory=list)
    frames: int = 0
    like: float = 0.0
    lattice_arcs: int = 0
    lattice_tids: int = 0
    seconds: float = 0.0

    def log_lines(self) -> list[str]:
        lines = [f"Done {self.done} utterances, failed for {len(self.failed)}"]
        if self.failed:
            lines.append("No lattice for: " + " ".join(self.failed))
        if self.frames:
            rtf = self.seconds / (self.frames / 100.0)
            lines.append(
                f"Overall log-likelihood per frame is {self.like / self.frames:.6g} over "
                f"{self.frames} frames; real-time factor {rtf:.4g} (100 frames/s)"
            )
            lines.append(
                f"Lattice density: {self.lattice_arcs / self.frames:.4g} arcs per frame, "
                f"depth {self.lattice_tids / self.frames:.4g} (lattice-depth)"
            )
        return lines


def run_decoding(
    decoder: LatticeDecoder,
    items: Iterable[tuple[str, np.ndarray]],
    lattice_wspecifier: str,
    words_wspecifier: str | None = None,
    ali_wspecifier: str | None = None,
    id2word: dict[int, str] | None = None,
) -> DecodeSummary:
    """Decode all items, write lattices (and 1-best words / alignments as text int arks)."""
    summary = DecodeSummary()
    lats: list[tuple[str, CompactLattice | Lattice]] = []
    words_out: list[str] = []
    ali_out: list[str] = []
    t0 = time.time()
    for res, utt in decode_all(decoder, items):
        if res is None:
            summary.failed.append(utt)
            continue
        assert res.lattice is not None
        if res.lattice.num_states == 0:
            log.warning("utterance %s: empty lattice after pruning", utt)
            summary.failed.append(utt)
            continue
        lats.append((utt, res.lattice))
        text = " ".join(id2word.get(w, str(w)) for w in res.words) if id2word else ""
        log.info("%s %s", utt, text or " ".join(map(str, res.words)))
        log.debug(
            "Log-like per frame for utterance %s is %.6g over %d frames (lattice beam %g)",
            utt,
            res.likelihood / res.num_frames,
            res.num_frames,
            res.beam_used,
        )
        summary.done += 1
        summary.frames += res.num_frames
        summary.like += res.likelihood
        if isinstance(res.lattice, CompactLattice):
            summary.lattice_arcs += res.lattice.num_arcs()
            summary.lattice_tids += int(round(lattice_depth(res.lattice, 1)[1]))
        else:
            summary.lattice_arcs += res.lattice.num_arcs()
            summary.lattice_tids += res.lattice.num_arcs()
        words_out.append(utt + " " + "".join(f"{w} " for w in res.words) + "\n")
        ali_out.append(utt + " " + "".join(f"{t} " for t in res.alignment) + "\n")
    summary.seconds = time.time() - t0
    write_lattices(lattice_wspecifier, lats)
    for spec, lines in ((words_wspecifier, words_out), (ali_wspecifier, ali_out)):
        if spec:
            _write_text_ark(spec, lines)
    for line in summary.log_lines():
        log.info("%s", line)
    return summary


def _write_text_ark(spec: str, lines: list[str]) -> None:
    head, sep, rest = spec.partition(":")
    path = rest if sep and head.split(",")[0] == "ark" else spec
    if path == "-":
        sys.stdout.write("".join(lines))
    else:
        atomic_write_text(path, "".join(lines))
