"""``pykd make-loglikes`` and ``pykd validate-loglikes`` (used by steps_kd/make_loglikes.sh),
``pykd teacher-posts`` (steps_kd/make_teacher_posts.sh)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

from pykd.cli_args import add_torch_args
from pykd.deploy.options import DEFAULT_ONLINE_PER, ONLINE_PER
from pykd.train.options import KdOptions

log = logging.getLogger(__name__)


def _make_loglikes_exported(args: argparse.Namespace) -> int:
    from pykd.deploy.loglikes import write_exported_loglikes  # noqa: PLC0415

    if args.model is not None:
        raise ValueError(f"give the checkpoint ({args.model}) or --exported, not both")
    if args.prior_counts or args.spk_params or args.cmvn != "auto":
        raise ValueError(
            "--exported: the file holds its priors and CMVN; --prior-counts, --spk-params and "
            "--cmvn do not apply"
        )
    write_exported_loglikes(
        args.exported, args.data_dir, args.out_ark, args.out_scp, args.chunk_frames,
        max(args.num_threads, 1), args.online_cmvn_per,
    )  # fmt: skip
    return 0


def _make_loglikes(args: argparse.Namespace) -> int:
    if args.exported:
        return _make_loglikes_exported(args)
    if args.model is None:
        raise ValueError("give a checkpoint (e.g. exp/dnn/final.pt) or --exported FILE.onnx")
    if args.chunk_frames:
        raise ValueError("--chunk-frames needs --exported (an exported model)")
    from pykd.data.priors import PriorCountsError, read_log_priors  # noqa: PLC0415
    from pykd.frontend.features import iter_network_inputs  # noqa: PLC0415
    from pykd.frontend.model import ModelForward, load_acoustic_model, module_forward  # noqa: PLC0415
    from pykd.frontend.spec import InputSpec  # noqa: PLC0415
    from pykd.nnet.loglikes import write_loglikes  # noqa: PLC0415
    from pykd.nnet.validate import LoglikesError  # noqa: PLC0415
    from pykd.train.distributed import setup_torch  # noqa: PLC0415

    device = setup_torch(args.num_threads, args.device)
    model, meta = load_acoustic_model(args.model, device=device)
    spec = InputSpec.from_meta(meta)
    if args.cmvn != "auto":
        spec = dataclasses.replace(spec, cmvn=args.cmvn)
    priors = None
    if args.prior_counts:
        try:
            priors = read_log_priors(args.prior_counts, meta["num_pdfs"])
        except PriorCountsError as err:
            raise LoglikesError(str(err)) from err
    elif args.prior_scale != 0:
        log.warning("no --prior-counts: writing log-posteriors (no prior division)")
    forward_for_utt = None
    spk_models = None
    if args.spk_params:
        from pykd.frontend.model import SpeakerModels, file_sha256  # noqa: PLC0415
        from pykd.io.datadir import read_table  # noqa: PLC0415

        utt2spk_path = Path(args.data_dir) / "utt2spk"
        utt2spk = read_table(utt2spk_path) if utt2spk_path.is_file() else {}
        spk_models = SpeakerModels(model, file_sha256(args.model), args.spk_params, utt2spk)
        spk_forward = module_forward(spk_models.model, device)

        def forward_for_utt(utt: str) -> ModelForward:
            spk_models.model_for(utt)  # sets the working model's tensors for utt's speaker
            return spk_forward

    start = time.time()
    frames = write_loglikes(
        module_forward(model, device),
        iter_network_inputs(args.data_dir, spec),
        priors,
        args.prior_scale,
        args.out_ark,
        args.out_scp,
        forward_for_utt=forward_for_utt,
    )
    if spk_models is not None:
        log.info(
            "per-speaker parameters from %s: %d speakers adapted, %d on the base model%s",
            args.spk_params, len(spk_models.adapted_speakers), len(spk_models.base_speakers),
            f" ({' '.join(sorted(spk_models.base_speakers))})" if spk_models.base_speakers else "",
        )  # fmt: skip
    total = sum(frames.values())
    secs = time.time() - start
    log.info(
        "%d utterances, %d frames in %.1f s (%.0f frames/s) on %s; %s",
        len(frames), total, secs, total / max(secs, 1e-9), device, spec.describe(),
    )  # fmt: skip
    return 0


def _validate_loglikes(args: argparse.Namespace) -> int:
    # torch is imported only for a checkpoint's pdf count: it is 1.2 of the 1.6 s this command
    # takes otherwise, and every network decode runs it once per set
    from pykd.nnet.validate import num_pdfs_of_model, validate_loglikes  # noqa: PLC0415

    given = [x is not None for x in (args.num_pdfs, args.model, args.checkpoint, args.exported)]
    if sum(given) != 1:
        raise ValueError("give exactly one of --num-pdfs, --model, --checkpoint and --exported")
    if args.num_pdfs is not None:
        num_pdfs = args.num_pdfs
    elif args.model is not None:
        num_pdfs = num_pdfs_of_model(args.model)
    elif args.exported is not None:
        from pykd.deploy.runtime import ExportedModel  # noqa: PLC0415

        num_pdfs = ExportedModel(args.exported).info.num_pdfs
    else:
        from pykd.frontend.model import checkpoint_num_pdfs  # noqa: PLC0415

        num_pdfs = checkpoint_num_pdfs(args.checkpoint)
    frames = args.utt2num_frames
    utts = None
    if args.data_dir:
        data = Path(args.data_dir)
        if frames is None:  # frame counts when the data dir has them (decoding needs neither)
            frames = next(
                (f for f in (data / "utt2num_frames", data / "feats.scp") if f.is_file()), None
            )
        utt2spk = data / "utt2spk"
        if utt2spk.is_file():
            utts = [ln.split()[0] for ln in utt2spk.read_text().splitlines() if ln.strip()]
    rep = validate_loglikes(args.scp, num_pdfs, frames, utts)
    log.info(
        "%s: OK, %d utterances, %d frames, %d pdfs", args.scp, rep.num_utts, rep.num_frames,
        num_pdfs,
    )  # fmt: skip
    return 0


def _teacher_posts(args: argparse.Namespace) -> int:
    from pykd.nnet.teacher_posts import LoglikesOutput, write_teacher_posts  # noqa: PLC0415
    from pykd.train.distributed import setup_torch  # noqa: PLC0415

    loglikes = None
    if args.loglikes_dir:
        from pykd.data.priors import read_log_priors  # noqa: PLC0415
        from pykd.frontend.model import checkpoint_num_pdfs  # noqa: PLC0415

        priors = None
        if args.prior_scale != 0:
            if not args.prior_counts:
                raise ValueError("--loglikes-dir needs --prior-counts (or --prior-scale 0)")
            priors = read_log_priors(args.prior_counts, checkpoint_num_pdfs(args.teacher))
        loglikes = LoglikesOutput(Path(args.loglikes_dir), priors, args.prior_scale)
    elif args.prior_counts:
        raise ValueError("--prior-counts is for --loglikes-dir")
    device = setup_torch(args.num_threads, args.device)
    teachers = [args.teacher, *args.ensemble_with]
    write_teacher_posts(teachers, args.data_dir, args.out_dir, args.top_k, device, loglikes)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``make-loglikes``, ``validate-loglikes`` and ``teacher-posts``."""
    top_k = KdOptions().top_k
    p = subparsers.add_parser(
        "teacher-posts",
        help="a teacher's top-k posteriors over a data dir, cached for KD (Kaldi Posterior table)",
        description="Writes <out-dir>/post.ark + post.scp (copy-post reads them) and info.json "
        "(top-k, kept probability mass, bytes per frame).",
    )
    p.add_argument(
        "--top-k", type=int, default=top_k, help=f"pdfs kept per frame (default {top_k})",
    )  # fmt: skip
    p.add_argument(
        "--loglikes-dir",
        help="also write the teacher's log-likelihoods of the same forward pass to "
        "<dir>/loglikes.ark + loglikes.scp (as pykd make-loglikes would)",
    )
    p.add_argument("--prior-counts", help="with --loglikes-dir: pdf counts, e.g. prior.counts")
    p.add_argument(
        "--prior-scale", type=float, default=1.0,
        help="with --loglikes-dir: scale on the log-prior (default %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--ensemble-with", action="append", default=[], metavar="CHECKPOINT",
        help="another teacher (repeatable): the targets are the mean of all the teachers' "
        "posteriors (same input and pdfs, e.g. the recipe's teachers of other seeds)",
    )  # fmt: skip
    add_torch_args(p, num_threads=1)
    p.add_argument("teacher", help="teacher checkpoint, e.g. exp/dnn/final.pt")
    p.add_argument("data_dir", help="data dir with feats.scp (+ cmvn.scp, utt2spk)")
    p.add_argument("out_dir")
    p.set_defaults(func=_teacher_posts)

    p = subparsers.add_parser(
        "make-loglikes",
        help="network log-likelihoods over pdfs (log-softmax minus scaled log-prior) as ark+scp",
    )
    p.add_argument("--prior-counts", help="pdf counts (analyze-counts format), e.g. prior.counts")
    p.add_argument("--prior-scale", type=float, default=1.0, help="scale on the log-prior")
    p.add_argument(
        "--cmvn", default="auto", choices=("auto", "mean", "meanvar", "none"),
        help="per-speaker CMVN (auto: what the checkpoint's input section says)",
    )  # fmt: skip
    add_torch_args(p, num_threads=1)
    p.add_argument(
        "--spk-params",
        help="dir of `pykd adapt-speakers` (spk/<speaker>.pt): per-speaker parameters over the "
        "model; a speaker without a file gets the base model (with a warning)",
    )
    p.add_argument(
        "--exported",
        help="an exported model (pykd export-model: model.onnx / model.int8.onnx) instead of a "
        "checkpoint: run by onnxruntime from the raw features (its own CMVN and priors)",
    )
    p.add_argument(
        "--chunk-frames", type=int, default=0,
        help="with --exported: feed each utterance this many frames at a time, as a streaming "
        "front end would (0: whole utterances)",
    )  # fmt: skip
    p.add_argument(
        "--online-cmvn-per", default=DEFAULT_ONLINE_PER, choices=ONLINE_PER,
        help="with --exported and online CMVN: carry the stats over a speaker's utterances "
        "(speaker) or start each utterance from the file's prior (default %(default)s)",
    )  # fmt: skip
    p.add_argument("model", nargs="?", help="checkpoint, e.g. exp/dnn/final.pt")
    p.add_argument("data_dir", help="data dir with feats.scp (+ cmvn.scp, utt2spk)")
    p.add_argument("out_ark")
    p.add_argument("out_scp")
    p.set_defaults(func=_make_loglikes)

    p = subparsers.add_parser(
        "validate-loglikes", help="check log-likelihoods before decoding (dim, NaN, frames, utts)"
    )
    p.add_argument("--num-pdfs", type=int, help="expected number of columns")
    p.add_argument("--model", help="Kaldi final.mdl giving the number of pdfs")
    p.add_argument("--checkpoint", help="network checkpoint (final.pt) giving the number of pdfs")
    p.add_argument("--exported", help="exported model (model.onnx) giving the number of pdfs")
    p.add_argument("--data-dir", help="utterances that must be present; frame counts")
    p.add_argument("--utt2num-frames", help="'utt frames' file or a feats.scp (frame counts)")
    p.add_argument("scp")
    p.set_defaults(func=_validate_loglikes)
