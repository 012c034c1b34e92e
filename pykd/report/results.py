"""RESULTS.md tables: WERs of GMM and network systems, tuned on one set and tested on another.

Protocol: the LM weight / word insertion penalty (``LMWT_WIP``) is tuned on the tune set (dev):
its WER is sclite's at dev's best setting (``decode_dev/scoring_kaldi/best_wer``). The test set
(eval) is scored at *dev's* setting: sclite's report ``scoring_kaldi/sclite/hyp_lmwt<L>_wip<P>.sys``
of the eval decode dir, written here from ``scoring_kaldi/penalty_<P>/<L>.txt`` and
``scoring_kaldi/test_filt.txt`` (with the non-scored words dropped, as :mod:`pykd.decode.score`
does) when scoring did not already write it. Eval's own best setting (what Kaldi's ``best_wer``
reports, an oracle) is shown in a separate column for comparison.

* ``pykd results-table [--systems exp/systems.txt] [--gmm DIR ...] [--nnet DIR ...]
  [--tune-set dev] [--test-set eval] [--kd-pair TEACHER STUDENT_CE STUDENT_KD] [--epochs DIR ...]
  [--adapt BASE_DIR [--adapt-methods teacher decode oracle] [--adapt-tag TAG]] [--title TEXT]
  > RESULTS.md``

GMM rows show the tied states (pdfs) and Gaussians of ``final.mdl``; network rows the model,
size and training of ``final.pt`` (its ``meta``; sequence training as criterion, epochs and
initial network) and the CV frame accuracy of ``summary.json``. With ``--kd-pair`` a paragraph
gives the gain of KD over CE training of the same student and the share of the teacher-student
gap it closes. ``--epochs`` tabulates the tune set's WER after each epoch of sequence-trained
networks (``decode_<tune>_ep<N>``; the last epoch may be ``decode_<tune>``), epoch 0 being the
initial network. ``--adapt`` tabulates the speaker adaptation runs of a network
(``adapt_<M>_<set>`` + ``decode_<set>_adapt_<M>``, split protocol ``adapt_<M>_split_<set>`` +
``decode_<set>_half_adapt_<M>``) against its speaker-independent decodes (``decode_<set>``,
``decode_<set>_half``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pykd.decode.score import (
    DEFAULT_NON_SCORED,
    ScoreError,
    filter_words,
    read_text,
    run_sclite,
    sclite_counts,
    write_trn,
)
from pykd.io.atomic import atomic_write_text
from pykd.report.bootstrap import PairedComparison, compare_paired, decode_dir_errors
from pykd.report.seed_plot import plot_kd_seeds
from pykd.report.systems import Systems, read_systems
from pykd.train.options import ADAPT_METHODS, SEQ_CRITERIA

log = logging.getLogger(__name__)

PROTOCOLS = {"same": "same utterances", "split": "split halves"}

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
    (``compute-wer --mode=present``), as :func:`pykd.decode.score.score_dir` does.
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
    sys_dir: str | os.PathLike | None,
    tune_set: str = "dev",
    test_set: str = "eval",
    non_scored: Sequence[str] = DEFAULT_NON_SCORED,
    *,
    tune_dir: str | os.PathLike | None = None,
    test_dir: str | os.PathLike | None = None,
) -> SystemWers:
    """WERs of a tune and a test decode dir under the protocol.

    The dirs default to ``<sys_dir>/decode_<tune_set>`` and ``<sys_dir>/decode_<test_set>``.
    """
    if (tune_dir is None or test_dir is None) and sys_dir is None:
        raise ValueError("system_wers: give sys_dir or both tune_dir and test_dir")
    tune_dir = Path(tune_dir) if tune_dir is not None else Path(sys_dir) / f"decode_{tune_set}"
    test_dir = Path(test_dir) if test_dir is not None else Path(sys_dir) / f"decode_{test_set}"
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


def model_name(path: str | os.PathLike) -> str:
    """``dnn`` for ``exp/dnn/final.pt`` or ``exp/dnn``; ``dnn_smbr/epoch2`` for an epoch file."""
    p = Path(path)
    if p.suffix != ".pt":
        return p.name
    return p.parent.name if p.name == "final.pt" else f"{p.parent.name}/{p.stem}"


def is_sequence_trained(meta: dict[str, Any]) -> bool:
    """Whether ``meta`` is that of a ``train-seq`` checkpoint."""
    loss = str(meta.get("loss", "ce")).split("+")[0]
    return isinstance(meta.get("seq"), dict) or loss in SEQ_CRITERIA


def describe_sequence_training(meta: dict[str, Any], epochs: int | None = None) -> str:
    """``sMBR 2 ep. from hdnn_kd`` / ``sMBR+KD q=0.5 (teacher dnn_smbr) 2 ep. from hdnn_ce,
    gates only`` from a ``train-seq`` checkpoint's ``meta`` (``epochs`` overrides its count)."""
    seq: dict[str, Any] = meta.get("seq") or {}
    loss = str(meta.get("loss", ""))
    crit = str(seq.get("criterion") or loss.split("+")[0])
    text = SEQ_CRITERIA.get(crit, crit.upper())
    boost = float(seq.get("boost") or 0.0)
    if crit == "mmi" and boost:
        text = f"bMMI b={boost:g}"
    if loss.endswith("+kd"):
        text += "+KD"
        if seq.get("kd_q") is not None:
            text += f" q={float(seq['kd_q']):g}"
        temperature = seq.get("kd_temperature")
        if temperature is not None and float(temperature) != 1.0:
            text += f" T={float(temperature):g}"
        if seq.get("teacher"):
            text += f" (teacher {model_name(seq['teacher'])})"
    if epochs is None and seq.get("epochs") is not None:
        epochs = int(seq["epochs"])
    if epochs is not None:
        text += f" {epochs} ep."
    if seq.get("init_model"):
        text += f" from {model_name(seq['init_model'])}"
    if seq.get("params", "all") != "all":
        text += f", {seq['params']} only"
    return text


def describe_training(meta: dict[str, Any], epochs: int | None = None) -> str:
    """``CE``, ``KD p=0.5 T=2 (teacher dnn)`` or a sequence training, from ``meta``."""
    if is_sequence_trained(meta):
        return describe_sequence_training(meta, epochs)
    if meta.get("loss", "ce") != "kd":
        return str(meta.get("loss", "ce")).upper()
    text = "KD"
    if meta.get("kd_p") is not None:
        text += f" p={float(meta['kd_p']):g}"
    if meta.get("kd_temperature") is not None:
        text += f" T={float(meta['kd_temperature']):g}"
    teacher = meta.get("teacher")
    if teacher:
        text += f" (teacher {model_name(teacher)})"
    if meta.get("untranscribed_utts"):
        text += f" + {int(meta['untranscribed_utts'])} utts without alignment"
    return text


def load_network(sys_dir: str | os.PathLike, allow_epoch: bool = False) -> dict[str, Any]:
    """The checkpoint ``<sys_dir>/final.pt`` (``{"model", "meta", "summary"}``).

    With ``allow_epoch``, the latest ``epoch<N>.pt`` when there is no final.pt (a sequence
    training still running).
    """
    final = Path(sys_dir) / "final.pt"
    if not final.is_file() and allow_epoch:
        epochs = sorted(
            (int(m.group(1)), f)
            for f in Path(sys_dir).glob("epoch*.pt")
            if (m := re.fullmatch(r"epoch(\d+)\.pt", f.name))
        )
        if epochs:
            final = epochs[-1][1]
    if not final.is_file():
        raise FileNotFoundError(f"{final} missing (train {sys_dir} first)")
    from pykd.train.checkpoint import load_checkpoint  # noqa: PLC0415 (torch: only for networks)

    ckpt = load_checkpoint(final)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("meta"), dict):
        raise ScoreError(f"{final}: not a train-nnet checkpoint (no 'meta')")
    return ckpt


def _seq_epochs(ckpt: dict[str, Any]) -> int | None:
    """Epochs a train-seq checkpoint holds: its summary's count, else the epoch file's, else
    the configured count."""
    summary = ckpt.get("summary") or {}
    if "criterion" in summary and summary.get("epochs") is not None:
        return int(summary["epochs"])  # final.pt
    if summary.get("epoch") is not None:
        return int(summary["epoch"])  # epoch<N>.pt
    epochs = (ckpt["meta"].get("seq") or {}).get("epochs")
    return None if epochs is None else int(epochs)


def nnet_info(sys_dir: str | os.PathLike) -> NnetInfo:
    """Model, size and training of ``<sys_dir>/final.pt``; CV accuracy from ``summary.json``."""
    ckpt = load_network(sys_dir)
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
        training=describe_training(meta, _seq_epochs(ckpt) if is_sequence_trained(meta) else None),
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


# extra audio of a KD student -> (title's tail, how the text names the KD student, the
# student's label in the seed plot)
KD_EXTRA: dict[str | None, tuple[str, str, str]] = {
    None: ("", "KD student", "KD"),
    "untrans": (
        " from transcribed + untranscribed audio",
        "KD student (trained on the transcribed and the untranscribed audio, every frame's "
        "targets the teacher's posteriors)",
        "KD + untranscribed",
    ),
    "sp": (
        " from the transcribed audio + its speed-perturbed copies",
        "KD student (trained on the transcribed audio and on copies of it played faster and "
        "slower, every frame's targets the teacher's posteriors)",
        "KD + speed-perturbed copies",
    ),
}


def kd_paired_comparisons(
    ce_dir: str | os.PathLike,
    ce: SystemWers,
    kd_dir: str | os.PathLike,
    kd: SystemWers,
    tune_set: str = "dev",
    test_set: str = "eval",
    non_scored: Sequence[str] = DEFAULT_NON_SCORED,
) -> tuple[PairedComparison, PairedComparison]:
    """The KD student against the CE student on the same bootstrap draws
    (:mod:`pykd.report.bootstrap`: KD - CE, its 95% interval, the probability that KD makes
    fewer errors), on the tune set and on the test set, each system at its own tune-set setting
    (the protocol of the WERs)."""
    found = []
    for name, attr in ((tune_set, "tune"), (test_set, "test")):
        a, b = (
            decode_dir_errors(Path(d) / f"decode_{name}", w.setting.lmwt, w.setting.wip, non_scored)
            for d, w in ((ce_dir, getattr(ce, attr)), (kd_dir, getattr(kd, attr)))
        )
        found.append(compare_paired(a, b))
    return found[0], found[1]


def kd_seed_table(
    seeds: Mapping[str, tuple[SystemWers, SystemWers, SystemWers]],
    tune_set: str = "dev",
    test_set: str = "eval",
    extra: str | None = None,
    improvement: Mapping[str, tuple[PairedComparison, PairedComparison]] | None = None,
) -> list[str]:
    """KD against CE over seeds: one row per seed (teacher, CE and KD student WERs, the paired
    KD - CE difference, the share of the teacher-student gap closed and, with ``improvement``,
    the paired bootstrap probability that KD is better, :func:`kd_paired_comparisons`),
    mean +- standard deviation over the seeds, and the binomial 95% interval of one WER on each
    set. ``extra``: the KD student also learnt from audio the teacher labelled, ``untrans``
    (untranscribed speech) or ``sp`` (speed-perturbed copies of the training audio); the title
    and the text say which."""
    sets = ((tune_set, "tune"), (test_set, "test"))
    heads = ["seed"]
    for name, _ in sets:
        heads += [f"teacher {name}", f"CE {name}", f"KD {name}", f"KD - CE {name}",
                  f"gap closed {name}"]  # fmt: skip
        if improvement is not None:
            heads.append(f"P(KD better) {name}")
    if extra not in KD_EXTRA:
        raise ValueError(f"extra must be one of {sorted(KD_EXTRA, key=str)}, got {extra!r}")
    title_tail, kd_text, _ = KD_EXTRA[extra]
    title = "Knowledge distillation" + title_tail
    out = [f"## {title} over {len(seeds)} seeds", ""]
    out += [
        f"Teacher, CE student and {kd_text} trained with each seed ({test_set} at "
        f"{tune_set}'s setting). KD - CE < 0: KD is better; gap closed: (CE - KD) / "
        "(CE - teacher).",
        "",
        *_header(heads),
    ]
    cols: dict[str, list[float]] = {}
    for seed, systems in seeds.items():
        cells = [seed]
        for name, attr in sets:
            w_t, w_ce, w_kd = (getattr(s, attr).wer for s in systems)
            share = gap_share(w_ce, w_kd, w_t)
            for key, value in (("t", w_t), ("ce", w_ce), ("kd", w_kd), ("d", w_kd - w_ce)):
                cols.setdefault(f"{name}{key}", []).append(value)
            cells += [f"{w_t:.2f}", f"{w_ce:.2f}", f"{w_kd:.2f}", f"{w_kd - w_ce:+.2f}",
                      "n/a" if share is None else f"{share:.0f}%"]  # fmt: skip
            if improvement is not None:
                prob = improvement[seed][0 if attr == "tune" else 1].probability_of_improvement
                cols.setdefault(f"{name}p", []).append(prob)
                cells.append(f"{prob:.2f}")
        out.append(_row(cells))
    mean = ["mean +- sd"]
    for name, _ in sets:
        for key in ("t", "ce", "kd", "d"):
            values = np.array(cols[f"{name}{key}"])
            sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            sign = "+" if key == "d" else ""
            mean.append(f"{values.mean():{sign}.2f} +- {sd:.2f}")
        share = gap_share(*(float(np.mean(cols[f"{name}{k}"])) for k in ("ce", "kd", "t")))
        mean.append("n/a" if share is None else f"{share:.0f}% (of the means)")
        if improvement is not None:
            mean.append("")
    out += [_row(mean), ""]
    for name, attr in sets:
        diffs = np.array(cols[f"{name}d"])
        first = next(iter(seeds.values()))[1]
        words = getattr(first, attr).ref_words
        interval = ""
        if words:
            p = float(np.mean(cols[f"{name}ce"])) / 100.0
            half = 196.0 * float(np.sqrt(p * (1.0 - p) / words))
            interval = (
                f"; one WER near {100 * p:.1f}% over its {words} words is known to +-{half:.2f} "
                "(95%, binomial, words taken as independent)"
            )
        paired = ""
        if improvement is not None:
            sure = int((np.array(cols[f"{name}p"]) >= 0.95).sum())
            paired = (
                f"; in {sure} of them with a paired bootstrap probability >= 0.95 (Bisani & "
                "Ney, over utterances: the share of resampled test sets on which KD makes "
                "fewer errors)"
            )
        out.append(
            f"- {name}: KD beats CE in {int((diffs < 0).sum())} of {len(diffs)} seeds"
            f"{paired}{interval}"
        )
    return out


def is_scored(decode_dir: str | os.PathLike) -> bool:
    """Whether ``decode_dir`` has been scored (``scoring_kaldi/best_wer``)."""
    return (Path(decode_dir) / "scoring_kaldi" / "best_wer").is_file()


def best_wer(
    decode_dir: str | os.PathLike, set_name: str, non_scored: Sequence[str] = DEFAULT_NON_SCORED
) -> SetWer:
    """sclite's WER of ``decode_dir`` at its own best setting."""
    return sclite_wer(decode_dir, read_best_setting(decode_dir, set_name), non_scored)


# ----- sequence training per epoch -----


def epoch_decode_dirs(
    sys_dir: str | os.PathLike, tune_set: str, last_epoch: int | None
) -> tuple[int, dict[int, Path]]:
    """(number of epochs, scored tune-set decode dir per epoch) of a sequence-trained network.

    Epoch N is ``decode_<tune>_ep<N>``; the last epoch (``final.pt``) may be ``decode_<tune>``
    instead. The number of epochs is the largest of ``last_epoch`` and the ``_ep<N>`` dirs.
    """
    sys_dir = Path(sys_dir)
    pattern = re.compile(rf"decode_{re.escape(tune_set)}_ep(\d+)")
    present: dict[int, Path] = {}
    for d in sys_dir.glob(f"decode_{tune_set}_ep*"):
        m = pattern.fullmatch(d.name)
        if m and d.is_dir():
            present[int(m.group(1))] = d
    n_epochs = max([last_epoch or 0, *present])
    scored = {n: d for n, d in present.items() if is_scored(d)}
    final = sys_dir / f"decode_{tune_set}"
    if last_epoch and last_epoch not in scored and is_scored(final):
        scored[last_epoch] = final
    return n_epochs, scored


def init_decode_dir(
    sys_dir: str | os.PathLike, init_model: str | os.PathLike, tune_set: str
) -> Path | None:
    """The scored tune-set decode dir of the network a sequence training started from.

    ``<init-dir>/decode_<tune>`` (``decode_<tune>_ep<K>`` when it started from ``epoch<K>.pt``),
    the init dir as recorded or, failing that, the same-named sibling of ``sys_dir``.
    """
    path = Path(init_model)
    init_dir = path.parent if path.suffix == ".pt" else path
    m = re.fullmatch(r"epoch(\d+)", path.stem) if path.suffix == ".pt" else None
    name = f"decode_{tune_set}_ep{m.group(1)}" if m else f"decode_{tune_set}"
    for d in (init_dir, Path(sys_dir).parent / init_dir.name):
        if is_scored(d / name):
            return d / name
    return None


@dataclass(frozen=True)
class EpochRow:
    """Tune-set WERs of one sequence-trained network: initial network, then each epoch."""

    name: str
    training: str
    n_epochs: int
    init: SetWer | None
    epochs: dict[int, SetWer]
    change: str  # "<tune> / <test>" WER change of final.pt against the initial network


def epoch_row(
    sys_dir: str | os.PathLike,
    tune_set: str = "dev",
    non_scored: Sequence[str] = DEFAULT_NON_SCORED,
    test_set: str = "eval",
) -> EpochRow:
    """The per-epoch WERs of the sequence-trained network in ``sys_dir``, and the change of its
    tune / test WER (``decode_<set>``, test at the tune set's setting) against the initial
    network's."""
    ckpt = load_network(sys_dir, allow_epoch=True)
    meta: dict[str, Any] = ckpt["meta"]
    if not is_sequence_trained(meta):
        raise ValueError(
            f"{sys_dir}: not a sequence-trained network (loss {meta.get('loss', 'ce')!r}); "
            "--epochs is for train-seq dirs"
        )
    last = _seq_epochs(ckpt)
    n_epochs, dirs = epoch_decode_dirs(sys_dir, tune_set, last)
    init_model = (meta.get("seq") or {}).get("init_model")
    init_dir = init_decode_dir(sys_dir, init_model, tune_set) if init_model else None
    final = pair_wers(*(Path(sys_dir) / f"decode_{s}" for s in (tune_set, test_set)),
                      tune_set, test_set, non_scored)  # fmt: skip
    before: tuple[SetWer | None, SetWer | None] = (None, None)
    if init_dir is not None:
        test_dir = init_dir.with_name(
            init_dir.name.replace(f"decode_{tune_set}", f"decode_{test_set}", 1)
        )
        before = pair_wers(init_dir, test_dir, tune_set, test_set, non_scored)
    return EpochRow(
        name=Path(sys_dir).name,
        training=describe_sequence_training(meta, last),
        n_epochs=n_epochs,
        init=None if init_dir is None else best_wer(init_dir, tune_set, non_scored),
        epochs={n: best_wer(d, tune_set, non_scored) for n, d in sorted(dirs.items())},
        change=f"{signed_change(final[0], before[0])} / {signed_change(final[1], before[1])}",
    )


# ----- speaker adaptation -----


def adapt_dirs(
    base: str | os.PathLike, method: str, protocol: str, set_name: str, tag: str | None = None
) -> tuple[Path, Path]:
    """(adaptation output dir, decode dir) of one method, protocol and set.

    same: ``adapt_<M>_<set>``, ``decode_<set>_adapt_<M>``; split: ``adapt_<M>_split_<set>``,
    ``decode_<set>_half_adapt_<M>``; with a tag, ``<M>`` is ``<method>_<tag>``.
    """
    base, m = Path(base), f"{method}_{tag}" if tag else method
    if protocol == "same":
        return base / f"adapt_{m}_{set_name}", base / f"decode_{set_name}_adapt_{m}"
    if protocol == "split":
        return base / f"adapt_{m}_split_{set_name}", base / f"decode_{set_name}_half_adapt_{m}"
    raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")


def si_decode_dir(base: str | os.PathLike, protocol: str, set_name: str) -> Path:
    """The speaker-independent decode dir a protocol compares with."""
    return Path(base) / (f"decode_{set_name}" if protocol == "same" else f"decode_{set_name}_half")


@dataclass(frozen=True)
class AdaptSummary:
    """Cost and coverage of one ``adapt-speakers`` run."""

    params: int | None  # adapted parameters per speaker
    mean_seconds: float | None  # per adapted speaker
    num_adapted: int
    num_speakers: int
    skipped: tuple[str, ...]


def read_adapt_summary(adapt_dir: str | os.PathLike) -> AdaptSummary | None:
    """``summary.json`` of an adaptation dir (else its ``adapt_stats.tsv``); None if neither."""
    adapt_dir = Path(adapt_dir)
    summary_json, stats_tsv = adapt_dir / "summary.json", adapt_dir / "adapt_stats.tsv"
    if summary_json.is_file():
        s = json.loads(summary_json.read_text(encoding="utf-8"))
        skipped = tuple(s.get("skipped_speakers") or ())
        n_adapted = int(s.get("num_adapted", 0))
        params, secs = s.get("adapted_params_per_speaker"), s.get("mean_seconds_per_speaker")
        return AdaptSummary(
            params=None if params is None else int(params),
            mean_seconds=None if secs is None or not n_adapted else float(secs),
            num_adapted=n_adapted,
            num_speakers=int(s.get("num_speakers", n_adapted + int(s.get("num_skipped", 0)))),
            skipped=skipped,
        )
    if not stats_tsv.is_file():
        return None
    lines = stats_tsv.read_text(encoding="utf-8").splitlines()
    rows = [dict(zip(lines[0].split("\t"), ln.split("\t"), strict=False)) for ln in lines[1:]]
    done = [r for r in rows if r.get("status") == "adapted"]
    return AdaptSummary(
        params=int(done[0]["adapted_params"]) if done else None,
        mean_seconds=sum(float(r["seconds"]) for r in done) / len(done) if done else None,
        num_adapted=len(done),
        num_speakers=len(rows),
        skipped=tuple(sorted(r["speaker"] for r in rows if r.get("status") != "adapted")),
    )


def adapt_cost_cells(summaries: Sequence[AdaptSummary]) -> list[str]:
    """Parameters per speaker, mean seconds per speaker, ``7/8, skipped: X`` over the runs."""
    if not summaries:
        return ["-", "-", "-"]
    params = sorted({s.params for s in summaries if s.params is not None})
    timed = [s for s in summaries if s.mean_seconds is not None and s.num_adapted]
    n_timed = sum(s.num_adapted for s in timed)
    seconds = (
        sum(s.mean_seconds * s.num_adapted for s in timed) / n_timed  # type: ignore[operator]
        if n_timed
        else None
    )
    skipped = sorted({spk for s in summaries for spk in s.skipped})
    speakers = f"{sum(s.num_adapted for s in summaries)}/{sum(s.num_speakers for s in summaries)}"
    if skipped:
        more = f" (+{len(skipped) - 5} more)" if len(skipped) > 5 else ""
        speakers += f", skipped: {' '.join(skipped[:5])}{more}"
    return [
        " / ".join(f"{p:,}" for p in params) or "?",
        "?" if seconds is None else f"{seconds:.2f}",
        speakers,
    ]


def pair_wers(
    tune_dir: Path,
    test_dir: Path,
    tune_set: str,
    test_set: str,
    non_scored: Sequence[str] = DEFAULT_NON_SCORED,
) -> tuple[SetWer | None, SetWer | None]:
    """(tune WER at its best, test WER at the tune set's setting); None where not decoded."""
    if not is_scored(tune_dir):
        return None, None
    if not is_scored(test_dir):
        return best_wer(tune_dir, tune_set, non_scored), None
    w = system_wers(None, tune_set, test_set, non_scored, tune_dir=tune_dir, test_dir=test_dir)
    return w.tune, w.test


def signed_change(new: SetWer | None, old: SetWer | None) -> str:
    """``-0.43``: absolute WER change (from the error counts), or ``-`` when one is missing."""
    if new is None or old is None:
        return "-"
    diff = round(new.wer - old.wer, 2)
    return f"{diff + 0.0:+.2f}"  # + 0.0: no "-0.00"


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _header(cells: Sequence[str]) -> list[str]:
    return [_row(cells), "|" + "---|" * len(cells)]


def _wer_cells(w: SystemWers) -> list[str]:
    return [w.tune.cell(), w.test.cell(), f"[{w.test_best.cell()}]"]


def _cell(w: SetWer | None) -> str:
    return "-" if w is None else w.cell()


def epoch_table(
    sys_dirs: Sequence[str | os.PathLike],
    tune_set: str = "dev",
    non_scored: Sequence[str] = DEFAULT_NON_SCORED,
    test_set: str = "eval",
) -> list[str]:
    """Lines of the per-epoch table of sequence-trained networks."""
    rows = [epoch_row(d, tune_set, non_scored, test_set) for d in sys_dirs]
    n_max = max(r.n_epochs for r in rows)
    out = [f"## Sequence training: {tune_set} WER per epoch", ""]
    out.append(
        f"Epoch 0 is the network training started from; each cell is sclite's {tune_set} WER "
        "at that decode's best LMWT_WIP (in parentheses), - where not decoded. The last column "
        f"is the absolute WER change of the final network against the initial one on {tune_set} "
        f"and {test_set} ({test_set} at {tune_set}'s setting, from sclite's error counts)."
    )
    out.append("")
    epoch_cols = [f"epoch {n}" for n in range(1, n_max + 1)]
    change_col = f"change ({tune_set} / {test_set})"
    out += _header(["system", "training", "epoch 0 (initial)", *epoch_cols, change_col])
    for r in rows:
        cells = [_cell(r.epochs.get(n)) for n in range(1, n_max + 1)]
        out.append(_row([r.name, r.training, _cell(r.init), *cells, r.change]))
    return out


def adapt_table(
    base: str | os.PathLike,
    methods: Sequence[str] = ADAPT_METHODS,
    tag: str | None = None,
    tune_set: str = "dev",
    test_set: str = "eval",
    non_scored: Sequence[str] = DEFAULT_NON_SCORED,
) -> list[str]:
    """Lines of the speaker adaptation table of the network in ``base``.

    One SI row per protocol with adaptation results, then one row per method whose adaptation
    or decode dirs exist; raises FileNotFoundError when none does.
    """
    base = Path(base)
    body: list[str] = []
    for protocol, label in PROTOCOLS.items():
        method_rows: list[list[str]] = []
        si_dirs = [si_decode_dir(base, protocol, s) for s in (tune_set, test_set)]
        si: tuple[SetWer | None, SetWer | None] | None = None
        for method in methods:
            (ad_tune, dec_tune), (ad_test, dec_test) = (
                adapt_dirs(base, method, protocol, s, tag) for s in (tune_set, test_set)
            )
            if not any(d.exists() for d in (ad_tune, dec_tune, ad_test, dec_test)):
                continue
            if si is None:
                si = pair_wers(*si_dirs, tune_set, test_set, non_scored)
            summaries = [x for x in map(read_adapt_summary, (ad_tune, ad_test)) if x is not None]
            tune, test = pair_wers(dec_tune, dec_test, tune_set, test_set, non_scored)
            change = f"{signed_change(tune, si[0])} / {signed_change(test, si[1])}"
            method_rows.append(
                [method, label, *adapt_cost_cells(summaries), _cell(tune), _cell(test), change]
            )
        if si is not None:
            body.append(_row(["SI", label, "-", "-", "-", _cell(si[0]), _cell(si[1]), "-"]))
            body += [_row(cells) for cells in method_rows]
    if not body:
        example = adapt_dirs(base, methods[0] if methods else "teacher", "same", tune_set, tag)
        raise FileNotFoundError(
            f"{base}: no speaker adaptation results for methods {' '.join(methods)} "
            f"(looked for e.g. {example[0]} and {example[1]}, and their split-protocol dirs)"
        )
    out = [f"## Speaker adaptation of {base.name}" + (f" ({tag})" if tag else ""), ""]
    out.append(
        f"SI: the speaker-independent network. same utterances: adapted and decoded on all of a "
        f"speaker's utterances; split halves: adapted on the first half of each speaker's "
        f"utterances, decoded (SI too) on the rest. {tune_set} WER at its best LMWT_WIP, "
        f"{test_set} at {tune_set}'s; parameters, time and speakers over the runs on both sets; "
        "change vs SI: absolute WER difference to the SI row of the same protocol (negative: "
        "better)."
    )
    out.append("")
    out += _header(
        [
            "method",
            "protocol",
            "adapted parameters per speaker",
            "adaptation time per speaker (s)",
            "speakers adapted",
            f"{tune_set} WER",
            f"{test_set} WER ({tune_set}'s setting)",
            f"change vs SI ({tune_set} / {test_set})",
        ]
    )
    return out + body


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's object, or None when the file is missing."""
    return json.loads(path.read_text()) if path.is_file() else None


def deploy_table(
    export_dirs: Sequence[str | os.PathLike],
    tune_set: str = "dev",
    test_set: str = "eval",
    non_scored: Sequence[str] = DEFAULT_NON_SCORED,
) -> list[str]:
    """The exported models (``pykd export-model`` dirs; their network is the parent dir): size,
    cost, WERs of their decodes (``decode_<set>_<fp32|int8>``) against the checkpoint's, and the
    speed / memory figures of ``bench/bench_footprint.py`` when it left ``footprint.json``."""
    out = ["## Deployed models (one ONNX file each, onnxruntime, streaming log-likelihoods)", ""]
    out += _header(
        ["system", "file", "weights", "CMVN", "parameters", "file KB", "MFLOPs/frame",
         "1-thread frames/s", "x real time", "peak RSS MB", f"{tune_set} WER",
         f"{test_set} WER ({tune_set}'s setting)",
         f"change vs checkpoint ({tune_set} / {test_set})"]
    )  # fmt: skip
    for d in map(Path, export_dirs):
        summary = read_json(d / "export.json")
        if summary is None:
            raise FileNotFoundError(f"{d}/export.json is missing (pykd export-model writes it)")
        speed = read_json(d / "footprint.json") or {}
        model = summary["model"]
        base = d.parent
        ck_tune, ck_test = pair_wers(
            base / f"decode_{tune_set}", base / f"decode_{test_set}", tune_set, test_set, non_scored
        )
        for kind, info in summary["files"].items():
            tune, test = pair_wers(
                d / f"decode_{tune_set}_{kind}", d / f"decode_{test_set}_{kind}", tune_set,
                test_set, non_scored,
            )  # fmt: skip
            fig = speed.get(kind, {})
            fps, rt = fig.get("frames_per_second"), fig.get("times_real_time")
            out.append(_row([
                f"{base.name}/{d.name}", Path(info["path"]).name, kind,
                f"{model['cmvn']} ({model['cmvn_source']})", f"{model['num_params']:,}",
                f"{info['bytes'] / 1024:.0f}", f"{model['mflops_per_frame']:.2f}",
                "-" if fps is None else f"{fps:,.0f}",
                "-" if rt is None else f"{rt:,.0f}",
                "-" if "peak_rss_mb" not in fig else f"{fig['peak_rss_mb']:.0f}",
                _cell(tune), _cell(test),
                f"{signed_change(tune, ck_tune)} / {signed_change(test, ck_test)}",
            ]))  # fmt: skip
    out += [
        "",
        "Decoded from log-likelihoods that the exported file itself makes from raw fbank (its "
        "online CMVN, fed chunk by chunk: local/run_deploy.sh); the checkpoint rows above use "
        "per-speaker CMVN. Speed and memory: one thread, bench/bench_footprint.py.",
    ]
    return out


def results_table(
    gmm: Sequence[str | os.PathLike] = (),
    nnet: Sequence[str | os.PathLike] = (),
    tune_set: str = "dev",
    test_set: str = "eval",
    kd_pair: Sequence[str | os.PathLike] | None = None,
    title: str | None = None,
    non_scored: Sequence[str] = DEFAULT_NON_SCORED,
    epochs: Sequence[str | os.PathLike] = (),
    adapt: str | os.PathLike | None = None,
    adapt_methods: Sequence[str] = ADAPT_METHODS,
    adapt_tag: str | None = None,
    kd_seeds: Mapping[str, Sequence[str | os.PathLike]] | None = None,
    deploy: Sequence[str | os.PathLike] = (),
    kd_untrans_seeds: Mapping[str, Sequence[str | os.PathLike]] | None = None,
    kd_sp_seeds: Mapping[str, Sequence[str | os.PathLike]] | None = None,
    seed_plot: str | os.PathLike | None = None,
) -> str:
    """The Markdown text: GMM table, network table, KD paragraph, KD over seeds (two or more;
    also with untranscribed audio, with speed-perturbed copies; with ``seed_plot``, their paired
    KD - CE differences drawn to that PNG), per-epoch table of sequence training, adaptation
    table (each when asked for)."""
    if not (gmm or nnet or kd_pair or epochs or adapt is not None or kd_seeds or deploy
            or kd_untrans_seeds or kd_sp_seeds):  # fmt: skip
        raise ValueError(
            "nothing to tabulate: give --gmm, --nnet, --kd-pair, --epochs or --adapt systems"
        )
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
                "-" if info.cv_acc is None else f"{100 * info.cv_acc:.2f}%",
            ]
            out.append(_row([*cells, *_wer_cells(wers(sys_dir))]))
        out.append("")
    if kd_pair:
        t, ce, kd = (wers(d) for d in kd_pair)
        names = (Path(kd_pair[0]).name, Path(kd_pair[1]).name, Path(kd_pair[2]).name)
        out.append(kd_summary(t, ce, kd, names, tune_set, test_set))
    plotted: dict[str, dict[str, tuple[PairedComparison, PairedComparison]]] = {}
    for seed_dirs, extra in ((kd_seeds, None), (kd_untrans_seeds, "untrans"), (kd_sp_seeds, "sp")):
        if seed_dirs and len(seed_dirs) > 1:
            by_seed = {seed: tuple(wers(d) for d in dirs) for seed, dirs in seed_dirs.items()}
            improvement = {
                seed: kd_paired_comparisons(
                    dirs[1],
                    by_seed[seed][1],
                    dirs[2],
                    by_seed[seed][2],
                    tune_set,
                    test_set,
                    non_scored,
                )
                for seed, dirs in seed_dirs.items()
            }
            plotted[KD_EXTRA[extra][2]] = improvement
            out += [
                *kd_seed_table(
                    by_seed,  # type: ignore[arg-type]
                    tune_set,
                    test_set,
                    extra,
                    improvement,
                ),
                "",
            ]
    if plotted and seed_plot is not None:
        plot_kd_seeds(plotted, seed_plot, (tune_set, test_set))
        out += [
            f"KD - CE per seed with its paired bootstrap 95% interval, {tune_set} and {test_set}"
            f" (one series per table above): `{seed_plot}`.",
            "",
        ]
    if epochs:
        out += [*epoch_table(epochs, tune_set, non_scored, test_set), ""]
    if adapt is not None:
        out += [
            *adapt_table(adapt, adapt_methods, adapt_tag, tune_set, test_set, non_scored),
            "",
        ]
    if deploy:
        out += [*deploy_table(deploy, tune_set, test_set, non_scored), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _run(args: argparse.Namespace) -> int:
    non_scored = (
        tuple(args.non_scored_words.split())
        if args.non_scored_words is not None
        else DEFAULT_NON_SCORED
    )
    systems = Systems(
        gmm=list(args.gmm or ()),
        nnet=list(args.nnet or ()),
        epochs=list(args.epochs or ()),
        kd_pair=args.kd_pair,
        adapt=args.adapt,
        adapt_methods=list(args.adapt_methods),
    )
    if args.systems:
        read_systems(args.systems, into=systems)
    text = results_table(
        gmm=systems.gmm,
        nnet=systems.nnet,
        tune_set=args.tune_set,
        test_set=args.test_set,
        kd_pair=systems.kd_pair,
        title=args.title,
        non_scored=non_scored,
        epochs=systems.epochs,
        adapt=systems.adapt,
        adapt_methods=systems.adapt_methods,
        adapt_tag=args.adapt_tag,
        kd_seeds=systems.kd_seeds,
        deploy=systems.deploy,
        kd_untrans_seeds=systems.kd_untrans_seeds,
        kd_sp_seeds=systems.kd_sp_seeds,
        seed_plot=args.seed_plot,
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
    p.add_argument(
        "--systems",
        metavar="FILE",
        help="the systems a recipe declared (exp/systems.txt: lines 'gmm DIR', 'nnet DIR', "
        "'seq DIR', 'kd-pair T S_CE S_KD', 'adapt DIR [METHOD ...]'), added to the options",
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
    p.add_argument(
        "--epochs",
        nargs="+",
        action="extend",
        metavar="DIR",
        help="sequence-trained network dirs: tune-set WER per epoch (decode_<tune>_ep<N>)",
    )
    p.add_argument(
        "--adapt",
        metavar="BASE_DIR",
        help="network dir with speaker adaptation runs (adapt_<M>_<set>, decode_<set>_adapt_<M>)",
    )
    p.add_argument(
        "--adapt-methods",
        nargs="+",
        choices=ADAPT_METHODS,
        default=list(ADAPT_METHODS),
        metavar="METHOD",
        help=f"adaptation methods looked for (default: {' '.join(ADAPT_METHODS)})",
    )
    p.add_argument(
        "--adapt-tag",
        default=None,
        help="dirs named with <method>_<TAG> in place of <method> (e.g. adapt_teacher_TAG_dev)",
    )
    p.add_argument(
        "--seed-plot",
        metavar="PNG",
        default=None,
        help="draw the KD - CE differences of the tables over seeds, with their paired "
        "bootstrap 95%% intervals, to this PNG (when there are such tables)",
    )
    p.add_argument("--title", default=None, help="a '# TITLE' heading first")
    p.add_argument(
        "--non-scored-words",
        default=None,
        help="space-separated words dropped from ref and hyp when sclite is run here "
        "(default: as score-kaldi)",
    )
    p.set_defaults(func=_run)
