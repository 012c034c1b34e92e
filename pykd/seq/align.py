"""Forced alignment with an acoustic network (Kaldi nnet1's ``steps/nnet/align.sh``).

Per utterance: training graph from the transcript (``compile-train-graphs``, as the GMM
aligner), transition probabilities added (transition scale 1.0, self-loop scale 0.1), then a
Viterbi pass over ``acwt * loglikes[:, tid2pdf[1:]]`` (column j = transition-id j+1) with
Kaldi's aligner (``align_utterance_wrapper``: beam, then retry beam). ``loglikes`` = network
log-posteriors minus log-priors (:mod:`pykd.nnet.loglikes`). Output: ``ali.N.gz`` of
transition-ids, like ``align_si.sh``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class NnetAlignOptions:
    """Kaldi nnet1 align.sh's scale options and beams."""

    beam: float = 10.0
    retry_beam: float = 40.0
    acoustic_scale: float = 0.1
    transition_scale: float = 1.0
    self_loop_scale: float = 0.1
    prior_scale: float = 1.0
    careful: bool = False


def align_nnet(
    data_dir: str | os.PathLike,
    lang_dir: str | os.PathLike,
    mdl: str | os.PathLike,
    tree: str | os.PathLike,
    model_path: str | os.PathLike,
    prior_counts: str | os.PathLike | None,
    out_ali: str | os.PathLike,
    opts: NnetAlignOptions | None = None,
    device: str = "cpu",
) -> dict[str, int]:
    """Align every utterance of ``data_dir`` (fbank, cmvn.scp, text) -> ``out_ali`` (ali.N.gz).

    Utterances without a transcript, whose graph cannot be compiled, or that do not align
    even at the retry beam are skipped, named in the log and counted. Returns counts
    (``done``, ``failed``, ``frames``) and writes nothing when no utterance aligned.
    """
    import kaldi_hmm_gmm as khg  # noqa: PLC0415 (heavy imports only when used)

    from pykd.data.priors import log_priors, read_counts  # noqa: PLC0415
    from pykd.frontend.features import iter_network_inputs  # noqa: PLC0415
    from pykd.frontend.model import load_acoustic_model, module_forward  # noqa: PLC0415
    from pykd.frontend.spec import InputSpec  # noqa: PLC0415
    from pykd.gmm import em  # noqa: PLC0415
    from pykd.io.datadir import read_table  # noqa: PLC0415
    from pykd.kaldi import model_io  # noqa: PLC0415
    from pykd.nnet.loglikes import loglikes_from_logits  # noqa: PLC0415
    from pykd.nnet.validate import check_network_pdfs  # noqa: PLC0415

    opts = opts or NnetAlignOptions()
    data = Path(data_dir)
    tm = model_io.read_transition_model(mdl)
    ctx_dep = model_io.read_tree(tree)
    model, meta = load_acoustic_model(model_path, device=device)
    check_network_pdfs(meta, model_path, tm.num_pdfs, mdl)
    lp = log_priors(read_counts(prior_counts)) if prior_counts else None
    spec = InputSpec.from_meta(meta)
    forward = module_forward(model, device)
    tid2pdf = model_io.tid_to_pdf(tm)
    texts = read_table(data / "text", allow_empty_value=True)
    compiler = em.GraphCompiler.load(lang_dir, ctx_dep, tm)
    align_opts = em.AlignOptions(
        beam=opts.beam,
        retry_beam=opts.retry_beam,
        careful=opts.careful,
        transition_scale=opts.transition_scale,
        self_loop_scale=opts.self_loop_scale,
        acoustic_scale=opts.acoustic_scale,
    )
    config = khg.AlignConfig(beam=opts.beam, retry_beam=opts.retry_beam, careful=opts.careful)
    alis: dict[str, np.ndarray] = {}
    failed: list[str] = []
    frames = 0
    tot_like = 0.0
    t0 = time.time()
    for utt, inputs in iter_network_inputs(data, spec):
        text = texts.get(utt)
        if text is None:
            log.warning("utterance %s: no transcript, skipped", utt)
            failed.append(utt)
            continue
        try:
            graph = compiler.compile(utt, text.split())
        except (KeyError, ValueError, RuntimeError) as err:
            log.warning("utterance %s: no training graph (%s), skipped", utt, err)
            failed.append(utt)
            continue
        ll = loglikes_from_logits(forward(inputs), lp, opts.prior_scale)
        mat = np.ascontiguousarray(opts.acoustic_scale * ll[:, tid2pdf[1:]], dtype=np.float32)
        fst = em.graph_with_probs(graph, tm, align_opts)
        done, err, _retried, like, n, ali, _words = khg.align_utterance_wrapper(
            config, utt, opts.acoustic_scale, fst, khg.DecodableCtc(mat), 0, 0, 0, 0.0, 0
        )
        if err or not done or len(ali) != ll.shape[0]:
            log.warning(
                "utterance %s: alignment failed (%d frames, beam %g, retry-beam %g)",
                utt, ll.shape[0], opts.beam, opts.retry_beam,
            )  # fmt: skip
            failed.append(utt)
            continue
        alis[utt] = np.asarray(ali, dtype=np.int32)
        frames += int(n)
        tot_like += float(like)
    if not alis:
        raise RuntimeError(f"{data}: no utterance could be aligned")
    model_io.write_alignments(out_ali, alis)
    log.info(
        "Done %d, errors on %d; log-like per frame %.4f over %d frames (%.1f s)%s",
        len(alis), len(failed), tot_like / max(frames, 1), frames, time.time() - t0,
        f"; failed: {' '.join(failed[:20])}" if failed else "",
    )  # fmt: skip
    return {"done": len(alis), "failed": len(failed), "frames": frames}
