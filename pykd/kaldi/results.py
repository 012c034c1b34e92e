"""RESULTS.md tables: WERs of GMM and network systems, tuned on one set and tested on another.

Protocol: the LM weight / word insertion penalty (``LMWT_WIP``) is tuned on the tune set (dev):
its WER is sclite's at dev's best setting (``decode_dev/scoring_kaldi/best_wer``). The test set
(eval) is scored at *dev's* setting: sclite's report ``scoring_kaldi/sclite/hyp_lmwt<L>_wip<P>.sys``
of the eval decode dir, written here from ``scoring_kaldi/penalty_<P>/<L>.txt`` and
``scoring_kaldi/test_filt.txt`` (with the non-scored words dropped, as :mod:`pykd.kaldi.score`
does) when scoring did not already write it. Eval's own best setting (what Kaldi's ``best_wer``
reports, an oracle) is shown in a separate column for comparison.

* ``pykd results-table [--gmm DIR ...] [--nnet DIR ...] [--tune-set dev] [--test-set eval]
  [--kd-pair TEACHER STUDENT_CE STUDENT_KD] [--title TEXT] > RESULTS.md``

GMM rows show the tied states (pdfs) and Gaussians of ``final.mdl``; network rows the model,
size and training of ``final.pt`` (its ``meta``) and the CV frame accuracy of ``summary.json``.
With ``--kd-pair`` a paragraph gives the gain of KD over CE training of the same student and the
share of the teacher-student gap it closes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pykd.io.atomic import atomic_write_text
from pykd.kaldi.score import (
    DEFAULT_NON_SCORED,
    ScoreError,
    filter_words,
    read_text,
    run_sclite,
    sclite_counts,
    write_trn,
)

log = logging.getLogger(__name__)

_BEST_RE = re.compile(r"wer_(\d+)_([0-9.]+)$")
_WER_FILE_RE = re.compile(r"%WER\s+[0-9.]+\s+\[\s*(\d+)\s*/\s*(\d+)")


@dataclass(frozen=True)
class Setting:
    """An LM weight and word insertion penalty (the penalty as spelt in the file names)."""

    lmwt: int
    wip: str

    def __str__(self) -> str:
        return f"{self.lmwt}_{self.wip}"

    @property
    def sclite_name(self) -> str:
        """Base name of sclite's reports for this setting (as :func:`score_dir` names them)."""
        return f"hyp_lmwt{self.lmwt}_wip{self.wip}"


@dataclass(frozen=True)
class SetWer:
    """sclite's WER of one decode dir at one setting."""

    setting: Setting
    shown: str  # the Err column of the .sys report's Sum/Avg line, as sclite prints it
    wer: float  # from the .dtl error / word counts when there, else float(shown)
    errors: int | None = None
    ref_words: int | None = None

    def cell(self) -> str:
        """``8.2 (14_0.5)``."""
        return f"{self.shown} ({self.setting})"


@dataclass(frozen=True)
class SystemWers:
    """WERs of one system: tune set at its best, test set at the tune set's and its own best."""

    tune: SetWer
    test: SetWer
    test_best: SetWer


@dataclass(frozen=True)
class NnetInfo:
    """What the network table shows about a trained network."""

    model: str
    params: int | None
    mflops: float | None
    training: str
    cv_acc: float | None  # fraction in 0..1


def read_best_setting(decode_dir: str | os.PathLike, set_name: str) -> Setting:
    """The setting of ``scoring_kaldi/best_wer`` (last token ``.../wer_<LMWT>_<WIP>``)."""
    best = Path(decode_dir) / "scoring_kaldi" / "best_wer"
    if not best.is_file():
        raise FileNotFoundError(f"{best} missing (decode {set_name} first)")
    fields = best.read_text(encoding="utf-8").split()
    m = _BEST_RE.search(fields[-1]) if fields else None
    if m is None:
        raise ScoreError(f"{best}: expected a line ending in .../wer_<LMWT>_<WIP>")
    return Setting(int(m.group(1)), m.group(2))


def sys_err_column(sys_file: str | os.PathLike) -> str:
    """The Err column of a sclite ``.sys`` report's ``Sum/Avg`` line (awk's ``$(NF-2)``)."""
    for line in Path(sys_file).read_text(encoding="utf-8", errors="replace").splitlines():
        if "Sum/Avg" in line:
            fields = line.split()
            if len(fields) >= 3:
                try:
                    float(fields[-3])
                except ValueError:
                    break
                return fields[-3]
    raise ScoreError(f"{sys_file}: no 'Sum/Avg' line with an Err column")


def write_sclite_report(
    decode_dir: str | os.PathLike, setting: Setting, non_scored: Sequence[str]
) -> Path:
    """Score ``penalty_<P>/<L>.txt`` against ``test_filt.txt`` with sclite; returns the .sys.

    Ref and hyp drop ``non_scored`` words, and the ref keeps only utterances with a hypothesis
    (``compute-wer --mode=present``), as :func:`pykd.kaldi.score.score_dir` does.
    """
    sdir = Path(decode_dir) / "scoring_kaldi"
    ref_txt = sdir / "test_filt.txt"
    hyp_txt = sdir / f"penalty_{setting.wip}" / f"{setting.lmwt}.txt"
    if not ref_txt.is_file():
        raise FileNotFoundError(f"{ref_txt} missing (score {decode_dir} first)")
    if not hyp_txt.is_file():
        raise FileNotFoundError(
            f"{hyp_txt} missing (score {decode_dir} with LMWT {setting.lmwt} and WIP "
            f"{setting.wip} in the grid)"
        )
    skip = set(non_scored)
    hyps = {u: filter_words(w, skip) for u, w in read_text(hyp_txt).items()}
    refs = {u: filter_words(w, skip) for u, w in read_text(ref_txt).items() if u in hyps}
    extra = sorted(set(hyps) - set(refs))
    if extra:
        log.warning("%s: %d utterances not in %s (e.g. %s)", hyp_txt, len(extra), ref_txt, extra[0])
        hyps = {u: w for u, w in hyps.items() if u in refs}
    cdir = sdir / "sclite"
    cdir.mkdir(parents=True, exist_ok=True)
    ref_content = "".join(f"{' '.join(w)} ({u})\n" for u, w in refs.items())
    ref_trn = cdir / "ref.trn"
    if ref_trn.is_file() and ref_trn.read_text(encoding="utf-8") != ref_content:
        # another setting's hypotheses cover other utterances: keep that report's reference
        ref_trn = cdir / f"{setting.sclite_name}.ref.trn"
    if not ref_trn.is_file():
        atomic_write_text(ref_trn, ref_content)
    hyp_trn = cdir / f"{setting.sclite_name}.trn"
    write_trn(hyp_trn, hyps)
    log.info("sclite: %s at %s", decode_dir, setting)
    return run_sclite(ref_trn, hyp_trn, cdir, setting.sclite_name)


def sclite_wer(
    decode_dir: str | os.PathLike,
    setting: Setting,
    non_scored: Sequence[str] = DEFAULT_NON_SCORED,
) -> SetWer:
    """sclite's WER of ``decode_dir`` at ``setting``, running sclite when its report is missing."""
    cdir = Path(decode_dir) / "scoring_kaldi" / "sclite"
    sys_file = cdir / f"{setting.sclite_name}.sys"
    if not sys_file.is_file():
        sys_file = write_sclite_report(decode_dir, setting, non_scored)
    shown = sys_err_column(sys_file)
    dtl = cdir / f"{setting.sclite_name}.dtl"
    counts = sclite_counts(dtl) if dtl.is_file() else {}
    errors, words = counts.get("err"), counts.get("ref_words")
    if errors is None or not words:
        return SetWer(setting, shown, float(shown))
    result = SetWer(setting, shown, 100.0 * errors / words, int(errors), int(words))
    _check_wer_file(Path(decode_dir) / f"wer_{setting}", result)
    return result


def _check_wer_file(wer_file: Path, result: SetWer) -> None:
    """Warn when compute-wer's ``wer_<L>_<P>`` disagrees with sclite's counts."""
    if not wer_file.is_file():
        return
    m = _WER_FILE_RE.search(wer_file.read_text(encoding="utf-8", errors="replace"))
    if m and (int(m.group(1)), int(m.group(2))) != (result.errors, result.ref_words):
        log.warning(
            "%s: %s / %s errors, sclite %s / %s",
            wer_file,
            m.group(1),
            m.group(2),
            result.errors,
            result.ref_words,
        )


def system_wers(
    sys_dir: str | os.PathLike,
    tune_set: str = "dev",
    test_set: str = "eval",
    non_scored: Sequence[str] = DEFAULT_NON_SCORED,
) -> SystemWers:
    """WERs of ``<sys_dir>/decode_<tune_set>`` and ``decode_<test_set>`` under the protocol."""
    tune_dir = Path(sys_dir) / f"decode_{tune_set}"
    test_dir = Path(sys_dir) / f"decode_{test_set}"
    tune_setting = read_best_setting(tune_dir, tune_set)
    test_setting = read_best_setting(test_dir, test_set)
    return SystemWers(
        tune=sclite_wer(tune_dir, tune_setting, non_scored),
        test=sclite_wer(test_dir, tune_setting, non_scored),
        test_best=sclite_wer(test_dir, test_setting, non_scored),
    )


def gmm_sizes(sys_dir: str | os.PathLike) -> tuple[int, int]:
    """(tied states, Gaussians) of ``<sys_dir>/final.mdl``."""
    from pykd.kaldi.model_io import model_info, read_model  # noqa: PLC0415 (kaldi_hmm_gmm)

    mdl = Path(sys_dir) / "final.mdl"
    if not mdl.is_file():
        raise FileNotFoundError(f"{mdl} missing (train {sys_dir} first)")
    info = model_info(*read_model(mdl))
    return int(info["pdfs"]), int(info["gaussians"])


def describe_model(model_config: dict[str, Any]) -> str:
    """``DNN 5x1024 relu`` / ``HDNN 10x128 sigmoid`` from ``meta["model_config"]``."""
    mtype = str(model_config.get("type", "?"))
    arch = model_config.get(mtype) or {}
    text = f"{mtype.upper()} {arch.get('num_layers', '?')}x{arch.get('hidden_dim', '?')}"
    if arch.get("activation"):
        text += f" {arch['activation']}"
    if mtype == "hdnn" and arch.get("carry", "independent") != "independent":
        text += f", carry {arch['carry']}"
    if arch.get("dropout"):
        text += f", dropout {arch['dropout']:g}"
    return text


def describe_training(meta: dict[str, Any]) -> str:
    """``CE``, or ``KD p=0.5 T=2 (teacher dnn)`` from a checkpoint's ``meta``."""
    if meta.get("loss", "ce") != "kd":
        return str(meta.get("loss", "ce")).upper()
    text = "KD"
    if meta.get("kd_p") is not None:
        text += f" p={float(meta['kd_p']):g}"
    if meta.get("kd_temperature") is not None:
        text += f" T={float(meta['kd_temperature']):g}"
    teacher = meta.get("teacher")
    if teacher:
        path = Path(teacher)
        text += f" (teacher {path.parent.name if path.suffix == '.pt' else path.name})"
    return text


def nnet_info(sys_dir: str | os.PathLike) -> NnetInfo:
    """Model, size and training of ``<sys_dir>/final.pt``; CV accuracy from ``summary.json``."""
    final = Path(sys_dir) / "final.pt"
    if not final.is_file():
        raise FileNotFoundError(f"{final} missing (train {sys_dir} first)")
    import torch  # noqa: PLC0415 (only when there are networks)

    ckpt = torch.load(final, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("meta"), dict):
        raise ScoreError(f"{final}: not a train-nnet checkpoint (no 'meta')")
    meta: dict[str, Any] = ckpt["meta"]
    summary_json = Path(sys_dir) / "summary.json"
    if summary_json.is_file():
        summary = json.loads(summary_json.read_text(encoding="utf-8"))
    else:
        summary = ckpt.get("summary") or {}
    cv_acc = summary.get("cv_acc", summary.get("cv_frame_accuracy"))
    params = meta.get("params", summary.get("params"))
    mflops = meta.get("mflops_per_frame")
    return NnetInfo(
        model=describe_model(meta.get("model_config") or {}),
        params=None if params is None else int(params),
        mflops=None if mflops is None else float(mflops),
        training=describe_training(meta),
        cv_acc=None if cv_acc is None else float(cv_acc),
    )


def gap_share(wer_ce: float, wer_kd: float, wer_teacher: float) -> float | None:
    """Share (%) of the teacher-student gap closed by KD; None when there is no gap (<= 0)."""
    gap = wer_ce - wer_teacher
    if gap <= 0:
        return None
    return 100.0 * (wer_ce - wer_kd) / gap


def kd_summary(
    teacher: SystemWers,
    student_ce: SystemWers,
    student_kd: SystemWers,
    names: tuple[str, str, str],
    tune_set: str = "dev",
    test_set: str = "eval",
) -> str:
    """The KD paragraph: gain of KD over CE (absolute, relative) and the gap share closed."""
    t_name, ce_name, kd_name = names
    lines = [
        f"**Knowledge distillation**: teacher `{t_name}`, student trained with CE `{ce_name}` "
        f"and with KD `{kd_name}` (WERs from sclite's error counts; {test_set} at "
        f"{tune_set}'s setting):",
        "",
    ]
    for label, attr in ((tune_set, "tune"), (test_set, "test")):
        w_t, w_ce, w_kd = (getattr(s, attr).wer for s in (teacher, student_ce, student_kd))
        gain = w_ce - w_kd
        rel = f"{100.0 * gain / w_ce:.1f}%" if w_ce > 0 else "n/a"
        share = gap_share(w_ce, w_kd, w_t)
        share_text = f"{share:.1f}%" if share is not None else "n/a"
        lines.append(
            f"- {label}: KD gain {gain:.2f} absolute ({rel} relative; CE {w_ce:.2f} -> KD "
            f"{w_kd:.2f}), closing {share_text} of the teacher-student gap (teacher {w_t:.2f})"
        )
    return "\n".join(lines) + "\n"


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _header(cells: Sequence[str]) -> list[str]:
    return [_row(cells), "|" + "---|" * len(cells)]


def _wer_cells(w: SystemWers) -> list[str]:
    return [w.tune.cell(), w.test.cell(), f"[{w.test_best.cell()}]"]


def results_table(
    gmm: Sequence[str | os.PathLike] = (),
    nnet: Sequence[str | os.PathLike] = (),
    tune_set: str = "dev",
    test_set: str = "eval",
    kd_pair: Sequence[str | os.PathLike] | None = None,
    title: str | None = None,
    non_scored: Sequence[str] = DEFAULT_NON_SCORED,
) -> str:
    """The Markdown text: GMM table, network table, KD paragraph (each when asked for)."""
    if not gmm and not nnet and not kd_pair:
        raise ValueError("nothing to tabulate: give --gmm, --nnet or --kd-pair systems")
    if kd_pair is not None and len(kd_pair) != 3:
        raise ValueError(f"--kd-pair takes TEACHER STUDENT_CE STUDENT_KD, got {list(kd_pair)}")
    cache: dict[Path, SystemWers] = {}

    def wers(sys_dir: str | os.PathLike) -> SystemWers:
        key = Path(sys_dir).resolve()
        if key not in cache:
            cache[key] = system_wers(sys_dir, tune_set, test_set, non_scored)
        return cache[key]

    wer_heads = [f"{tune_set} WER", f"{test_set} WER ({tune_set}'s setting)", f"{test_set} best"]
    out: list[str] = []
    if title:
        out += [f"# {title}", ""]
    if gmm:
        out += ["## GMM systems", ""]
        out += _header(["system", "tied states (pdfs)", "Gaussians", *wer_heads])
        for sys_dir in gmm:
            pdfs, gauss = gmm_sizes(sys_dir)
            out.append(_row([Path(sys_dir).name, pdfs, gauss, *_wer_cells(wers(sys_dir))]))
        out.append("")
    if nnet:
        out += ["## Network systems", ""]
        heads = ["system", "model", "parameters", "MFLOPs/frame", "training", "CV frame acc."]
        out += _header([*heads, *wer_heads])
        for sys_dir in nnet:
            info = nnet_info(sys_dir)
            cells = [
                Path(sys_dir).name,
                info.model,
                "?" if info.params is None else f"{info.params:,}",
                "?" if info.mflops is None else f"{info.mflops:.2f}",
                info.training,
                "?" if info.cv_acc is None else f"{100 * info.cv_acc:.2f}%",
            ]
            out.append(_row([*cells, *_wer_cells(wers(sys_dir))]))
        out.append("")
    if kd_pair:
        t, ce, kd = (wers(d) for d in kd_pair)
        names = (Path(kd_pair[0]).name, Path(kd_pair[1]).name, Path(kd_pair[2]).name)
        out.append(kd_summary(t, ce, kd, names, tune_set, test_set))
    return "\n".join(out).rstrip("\n") + "\n"


def _run(args: argparse.Namespace) -> int:
    non_scored = (
        tuple(args.non_scored_words.split())
        if args.non_scored_words is not None
        else DEFAULT_NON_SCORED
    )
    text = results_table(
        gmm=args.gmm or (),
        nnet=args.nnet or (),
        tune_set=args.tune_set,
        test_set=args.test_set,
        kd_pair=args.kd_pair,
        title=args.title,
        non_scored=non_scored,
    )
    print(text, end="")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``results-table``."""
    p = subparsers.add_parser(
        "results-table",
        help="Markdown WER tables of GMM and network systems (LMWT/WIP tuned on the tune set)",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--gmm", nargs="+", action="extend", metavar="DIR", help="GMM system dirs")
    p.add_argument("--nnet", nargs="+", action="extend", metavar="DIR", help="network dirs")
    p.add_argument("--tune-set", default="dev", help="set the LMWT/WIP is tuned on (default dev)")
    p.add_argument("--test-set", default="eval", help="set scored at the tune set's setting")
    p.add_argument(
        "--kd-pair",
        nargs=3,
        metavar=("TEACHER", "STUDENT_CE", "STUDENT_KD"),
        help="system dirs for the KD gain / teacher-student gap paragraph",
    )
    p.add_argument("--title", default=None, help="a '# TITLE' heading first")
    p.add_argument(
        "--non-scored-words",
        default=None,
        help="space-separated words dropped from ref and hyp when sclite is run here "
        "(default: as score-kaldi)",
    )
    p.set_defaults(func=_run)
