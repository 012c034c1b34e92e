"""``pykd`` sub-commands for features: compute-feats, compute-cmvn-stats, apply-cmvn,
feat-to-len, feat-to-dim (Kaldi's featbin programs, with Kaldi's file formats)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pykd.features.ark import (
    DEFAULT_COMPRESSION_METHOD,
    ArkScpWriter,
    read_matrices,
    split_rspecifier,
    write_text_table,
)
from pykd.features.cmvn import apply_cmvn, compute_cmvn_stats, read_spk2utt, write_cmvn
from pykd.features.compute import compute_to_ark
from pykd.features.kaldi_conf import KINDS, load_config
from pykd.io.atomic import atomic_write_text
from pykd.io.datadir import read_table

log = logging.getLogger(__name__)


def resolve_source(source: str, segments: str | None) -> tuple[Path, Path | None]:
    """A data dir (wav.scp [+ segments]) or a wav.scp (``scp:`` prefix allowed) -> paths."""
    path = Path(split_rspecifier(source)[1] if ":" in source else source)
    if path.is_dir():
        wav_scp = path / "wav.scp"
        if not wav_scp.is_file():
            raise FileNotFoundError(f"data directory {path} has no wav.scp")
        seg = Path(segments) if segments else path / "segments"
        return wav_scp, (seg if seg.is_file() or segments else None)
    if not path.is_file():
        raise FileNotFoundError(f"no data directory or wav.scp at {source}")
    return path, Path(segments) if segments else None


def cmd_compute_feats(args: argparse.Namespace) -> int:
    cfg = load_config(args.kind, args.config)
    wav_scp, segments = resolve_source(args.source, args.segments)
    if segments is not None and not segments.is_file():
        raise FileNotFoundError(f"segments file not found: {segments}")
    method = args.compression_method if args.compress else None
    compute_to_ark(
        cfg,
        wav_scp,
        args.ark,
        args.scp,
        segments=segments,
        compression_method=method,
        utt2num_frames=args.utt2num_frames,
    )
    return 0


def cmd_compute_cmvn_stats(args: argparse.Namespace) -> int:
    spk2utt = read_spk2utt(args.spk2utt) if args.spk2utt else None
    result = compute_cmvn_stats(read_matrices(args.feats), spk2utt)
    if not result.stats:
        raise RuntimeError(f"no CMVN stats accumulated from {args.feats}")
    write_cmvn(result, args.cmvn_ark, args.cmvn_scp)
    log.info(
        "Done accumulating CMVN stats for %d utterances (%d %s); %d had errors.",
        result.num_utts_done,
        len(result.stats),
        "speakers" if spk2utt else "utterances",
        result.num_errors,
    )
    return 0


def cmd_apply_cmvn(args: argparse.Namespace) -> int:
    stats = dict(read_matrices(args.cmvn))
    utt2spk = read_table(args.utt2spk) if args.utt2spk else None
    done = errors = 0
    with ArkScpWriter(args.out_ark, args.out_scp) as writer:
        for utt, mat in read_matrices(args.feats):
            key = utt2spk.get(utt, "") if utt2spk is not None else utt
            if key not in stats:
                log.warning("no CMVN stats for utterance '%s' (key '%s'); skipped", utt, key)
                errors += 1
                continue
            writer.write(utt, apply_cmvn(mat, stats[key], norm_vars=args.norm_vars))
            done += 1
    if done == 0:
        raise RuntimeError(f"apply-cmvn: no utterance normalised ({errors} without stats)")
    log.info("Applied CMVN to %d utterances, errors on %d", done, errors)
    return 0


def cmd_feat_to_len(args: argparse.Namespace) -> int:
    lens = [(utt, mat.shape[0]) for utt, mat in read_matrices(args.feats)]
    if args.out is None:
        print(sum(n for _, n in lens))
    else:
        write_text_table(args.out, lens)
    return 0


def cmd_feat_to_dim(args: argparse.Namespace) -> int:
    for _, mat in read_matrices(args.feats):
        dim = mat.shape[1] if mat.ndim == 2 else mat.shape[0]
        if args.out == "-":
            print(dim)
        else:
            atomic_write_text(args.out, f"{dim}\n")
        return 0
    raise RuntimeError(f"no features in {args.feats}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the feature sub-commands to the ``pykd`` parser."""
    p = subparsers.add_parser(
        "compute-feats",
        help="fbank/MFCC features of a data dir or wav.scp (compute-fbank-feats/-mfcc-feats)",
        description="Compute Kaldi fbank/MFCC features; writes a binary ark + scp atomically. "
        "Unreadable recordings/segments are skipped with a warning; fails if none succeeded.",
    )
    p.add_argument("--kind", choices=KINDS, required=True, help="feature type")
    p.add_argument("--config", help="Kaldi option file (e.g. conf/fbank.conf); default: Kaldi's")
    p.add_argument("--compress", action="store_true", help="Kaldi-compress the matrices")
    p.add_argument(
        "--compression-method",
        type=int,
        default=DEFAULT_COMPRESSION_METHOD,
        help="Kaldi compression method with --compress (default 1: automatic, as copy-feats)",
    )
    p.add_argument("--segments", help="segments file (default: <data-dir>/segments if present)")
    p.add_argument("--utt2num-frames", help="also write 'utt num-frames' lines here")
    p.add_argument("source", help="data dir (wav.scp [+ segments]) or wav.scp ('scp:' allowed)")
    p.add_argument("ark", help="output archive path")
    p.add_argument("scp", help="output script path (points at the ark)")
    p.set_defaults(func=cmd_compute_feats)

    p = subparsers.add_parser(
        "compute-cmvn-stats",
        help="CMVN stats per speaker (--spk2utt) or per utterance (compute-cmvn-stats)",
    )
    p.add_argument("--spk2utt", help="spk2utt file ('ark:' prefix allowed); default per-utt")
    p.add_argument("feats", help="features: feats.scp, scp:FILE or ark:FILE")
    p.add_argument("cmvn_ark", help="output stats archive")
    p.add_argument("cmvn_scp", nargs="?", help="output stats script")
    p.set_defaults(func=cmd_compute_cmvn_stats)

    p = subparsers.add_parser("apply-cmvn", help="apply CMVN stats to features (apply-cmvn)")
    p.add_argument("--norm-vars", action="store_true", help="normalise variances too")
    p.add_argument("--utt2spk", help="map utterances to stats keys (per-speaker stats)")
    p.add_argument("cmvn", help="stats: cmvn.scp, scp:FILE or ark:FILE")
    p.add_argument("feats", help="features: feats.scp, scp:FILE or ark:FILE")
    p.add_argument("out_ark", help="output archive")
    p.add_argument("out_scp", nargs="?", help="output script")
    p.set_defaults(func=cmd_apply_cmvn)

    p = subparsers.add_parser("feat-to-len", help="frame counts (Kaldi feat-to-len)")
    p.add_argument("feats", help="feats.scp, scp:FILE or ark:FILE")
    p.add_argument(
        "out",
        nargs="?",
        help="write 'utt frames' lines here ('-': stdout); "
        "without it print the total number of frames",
    )
    p.set_defaults(func=cmd_feat_to_len)

    p = subparsers.add_parser("feat-to-dim", help="feature dimension (Kaldi feat-to-dim)")
    p.add_argument("feats", help="feats.scp, scp:FILE or ark:FILE")
    p.add_argument("out", nargs="?", default="-", help="output file (default '-': stdout)")
    p.set_defaults(func=cmd_feat_to_dim)
