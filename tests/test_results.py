"""pykd results-table: WERs tuned on dev, eval scored at dev's setting, KD gain arithmetic."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from pykd.cli import main
from pykd.decode.score import compute_wer, filter_words, find_sclite, read_text, sclite_counts
from pykd.report.results import (
    Setting,
    describe_training,
    gap_share,
    init_decode_dir,
    results_table,
    signed_change,
    sys_err_column,
)
from pykd.report.systems import SystemsFileError, read_systems

needs_sclite = pytest.mark.skipif(find_sclite() is None, reason="sclite (sctk) not installed")

# 7 utterances x 7 words: WERs such as 9 / 49 = 18.37% are not round numbers.
N_UTTS, N_WORDS = 7, 7
REFS = {f"spk1_utt{i}": [f"word{(i * 3 + j) % 11}" for j in range(N_WORDS)] for i in range(N_UTTS)}
REF_WORDS = N_UTTS * N_WORDS
GRID = ("10_0.0", "10_0.5", "11_0.0", "11_0.5")


def hyp_with_errors(n_errors: int) -> dict[str, list[str]]:
    """Hypotheses with exactly ``n_errors`` substitutions (words never in a reference), plus a
    non-scored ``!SIL`` per utterance that scoring must drop."""
    hyps = {u: list(w) for u, w in REFS.items()}
    utts = list(hyps)
    for k in range(n_errors):
        utt, pos = utts[k % N_UTTS], k // N_UTTS
        hyps[utt][pos] = f"junk{k}"
    return {u: ["!SIL", *w] for u, w in hyps.items()}


def text_line(utt: str, words: list[str]) -> str:
    return utt + " " + "".join(w + " " for w in words) + "\n"


def make_decode(decode_dir: Path, errors: dict[str, int]) -> None:
    """A scored decode dir as ``pykd score-kaldi`` leaves it (without the sclite reports)."""
    sdir = decode_dir / "scoring_kaldi"
    sdir.mkdir(parents=True)
    (sdir / "test_filt.txt").write_text("".join(text_line(u, w) for u, w in REFS.items()))
    results = []
    for setting, n in errors.items():
        lmwt, wip = setting.split("_")
        hyps = hyp_with_errors(n)
        (sdir / f"penalty_{wip}").mkdir(exist_ok=True)
        hyp_txt = sdir / f"penalty_{wip}" / f"{lmwt}.txt"
        hyp_txt.write_text("".join(text_line(u, w) for u, w in hyps.items()))
        stats = compute_wer(REFS, {u: filter_words(w, {"!SIL"}) for u, w in hyps.items()})
        assert stats.errors == n
        header = f"# compute-wer --text --mode=present ark:{sdir}/test_filt.txt ark,p:{hyp_txt}\n"
        (decode_dir / f"wer_{setting}").write_text(header + stats.report())
        results.append((stats, setting))
    stats, best = min(results, key=lambda r: r[0].errors)
    (sdir / "best_wer").write_text(f"{stats.wer_line()} {decode_dir}/wer_{best}\n")


def make_dev(decode_dir: Path, dev_errors: int) -> None:
    """A tune-set decode dir whose best is 10_0.5 with ``dev_errors``."""
    make_decode(
        decode_dir,
        {"10_0.0": dev_errors + 2, "10_0.5": dev_errors, "11_0.0": dev_errors + 1, "11_0.5": 30},
    )


def make_pair(tune_dir: Path, test_dir: Path, dev_errors: int, eval_errors: int) -> None:
    """dev's best is 10_0.5 (``dev_errors``); eval has ``eval_errors`` there, but its own best
    is 11_0.0 with one error fewer."""
    make_dev(tune_dir, dev_errors)
    make_decode(
        test_dir,
        {"10_0.0": eval_errors + 2, "10_0.5": eval_errors, "11_0.0": eval_errors - 1, "11_0.5": 30},
    )


def make_system(sys_dir: Path, dev_errors: int, eval_errors: int) -> None:
    """``decode_dev`` and ``decode_eval`` as :func:`make_pair` makes them."""
    make_pair(sys_dir / "decode_dev", sys_dir / "decode_eval", dev_errors, eval_errors)


def wer_text(n_errors: int) -> str:
    """WER (%) as sclite prints it (one decimal), computed from the edit counts."""
    return f"{100.0 * n_errors / REF_WORDS:.1f}"


def change(new_errors: int, old_errors: int) -> str:
    """Absolute WER change as the tables print it (two decimals, signed)."""
    diff = round(100.0 * (new_errors - old_errors) / REF_WORDS, 2)
    return f"{diff + 0.0:+.2f}"


def table_rows(text: str, name: str) -> list[str]:
    rows = [ln for ln in text.splitlines() if ln.startswith(f"| {name} |")]
    assert len(rows) == 1, text
    return [c.strip() for c in rows[0].strip("|").split("|")]


@needs_sclite
def test_gmm_table_scores_eval_at_devs_setting(
    tmp_path: Path, kaldi_ref: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pykd.kaldi.model_io import model_info, read_model

    sys_dir = tmp_path / "exp" / "tri1"
    sys_dir.mkdir(parents=True)
    shutil.copy(kaldi_ref / "gmm" / "tri1" / "final.mdl", sys_dir / "final.mdl")
    make_system(sys_dir, dev_errors=4, eval_errors=9)

    assert main(["results-table", "--gmm", str(sys_dir), "--title", "Results"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Results\n")
    cells = table_rows(out, "tri1")
    info = model_info(*read_model(sys_dir / "final.mdl"))
    assert cells[1:3] == [str(info["pdfs"]), str(info["gaussians"])]
    # dev at its best 10_0.5: 4 errors; eval at dev's 10_0.5: 9 errors (not eval's best 11_0.0)
    assert cells[3] == f"{wer_text(4)} (10_0.5)" == "8.2 (10_0.5)"
    assert cells[4] == f"{wer_text(9)} (10_0.5)" == "18.4 (10_0.5)"
    assert cells[5] == f"[{wer_text(8)} (11_0.0)]" == "[16.3 (11_0.0)]"

    # sclite ran on the dev-setting hypotheses of eval; !SIL was dropped (no insertions)
    cdir = sys_dir / "decode_eval" / "scoring_kaldi" / "sclite"
    sys_file = cdir / f"{Setting(10, '0.5').sclite_name}.sys"
    assert sys_err_column(sys_file) == "18.4"
    counts = sclite_counts(cdir / "hyp_lmwt10_wip0.5.dtl")
    assert (counts["err"], counts["ins"], counts["ref_words"]) == (9, 0, REF_WORDS)
    ref_trn = (cdir / "ref.trn").read_text().splitlines()
    assert ref_trn[0] == f"{' '.join(REFS['spk1_utt0'])} (spk1_utt0)"

    # a second run reads the reports already there
    mtime = sys_file.stat().st_mtime_ns
    again = results_table(gmm=[sys_dir])
    assert table_rows(again, "tri1") == cells and sys_file.stat().st_mtime_ns == mtime


def section_rows(text: str, heading: str) -> list[list[str]]:
    """Cells of the table rows under ``## heading`` (header and rule excluded)."""
    lines = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    rows = [ln for ln in lines if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in rows[1:]]


def write_network(sys_dir: Path, model_config: dict, cv_acc: float, **kd: object) -> int:
    """final.pt + summary.json as train-nnet / Trainer write them; returns the parameters."""
    pytest.importorskip("torch")
    from pykd.models import build_model, count_parameters, mflops_per_frame, model_config_from_dict
    from pykd.train.checkpoint import save_checkpoint

    input_dim, n_pdfs = 40, 12
    model = build_model(model_config_from_dict(model_config), input_dim, n_pdfs)
    params = count_parameters(model)
    meta = {
        "model_config": model_config_from_dict(model_config).to_dict(),
        "num_pdfs": n_pdfs,
        "input_dim": input_dim,
        "input": {"splice": 5, "cmvn": "mean"},
        "params": params,
        "mflops_per_frame": mflops_per_frame(model, input_dim),
        "train_utts": 10,
        "cv_utts": 2,
        "loss": "ce",
    }
    if kd:
        meta.update(loss="kd", **kd)
    summary = {"status": "finished", "epochs": 3, "best_epoch": 2, "cv_loss": 1.5}
    summary.update(cv_acc=cv_acc, params=params, history=[])
    sys_dir.mkdir(parents=True, exist_ok=True)
    # the checkpoint's summary differs: summary.json, when there, is what the table reads
    final = {"model": model.state_dict(), "meta": meta, "summary": {**summary, "cv_acc": 0.01}}
    save_checkpoint(sys_dir / "final.pt", final)
    (sys_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return params


@needs_sclite
def test_network_table_and_kd_gain(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    dnn = {"type": "dnn", "dnn": {"num_layers": 2, "hidden_dim": 32, "activation": "relu"}}
    hdnn = {"type": "hdnn", "hdnn": {"num_layers": 3, "hidden_dim": 16}}
    write_network(exp / "dnn", dnn, cv_acc=0.61234)
    (exp / "dnn" / "summary.json").unlink()  # falls back to final.pt's summary
    ce_params = write_network(exp / "hdnn_ce", hdnn, cv_acc=0.5)
    write_network(
        exp / "hdnn_kd",
        hdnn,
        cv_acc=0.55571,
        teacher=str(exp / "dnn" / "final.pt"),
        kd_p=0.5,
        kd_temperature=2.0,
    )
    # (dev errors at dev's best, eval errors at dev's setting)
    make_system(exp / "dnn", 3, 6)
    make_system(exp / "hdnn_ce", 8, 4)
    make_system(exp / "hdnn_kd", 5, 3)
    systems = [str(exp / s) for s in ("dnn", "hdnn_ce", "hdnn_kd")]

    text = results_table(nnet=systems, kd_pair=systems)
    assert "## Network systems" in text and "## GMM systems" not in text
    dnn_cells = table_rows(text, "dnn")
    assert (dnn_cells[1], dnn_cells[4], dnn_cells[5]) == ("DNN 2x32 relu", "CE", "1.00%")
    kd_cells = table_rows(text, "hdnn_kd")
    assert kd_cells[1] == "HDNN 3x16 sigmoid"
    assert kd_cells[2] == f"{ce_params:,}"
    assert float(kd_cells[3]) > 0
    assert kd_cells[4] == "KD p=0.5 T=2 (teacher dnn)"
    assert kd_cells[5] == "55.57%"
    assert kd_cells[6:] == ["10.2 (10_0.5)", "6.1 (10_0.5)", "[4.1 (11_0.0)]"]
    assert table_rows(text, "hdnn_ce")[4:6] == ["CE", "50.00%"]

    # dev: CE 8, KD 5, teacher 3 errors of 49 words
    gain = 100.0 * (8 - 5) / REF_WORDS
    assert f"- dev: KD gain {gain:.2f} absolute (37.5% relative;" in text
    assert f"CE {100 * 8 / REF_WORDS:.2f} -> KD {100 * 5 / REF_WORDS:.2f}" in text
    assert "closing 60.0% of the teacher-student gap" in text  # (8 - 5) / (8 - 3)
    # eval at dev's setting: CE 4, KD 3, teacher 6: the teacher is worse, so no gap to close
    assert f"- eval: KD gain {100.0 / REF_WORDS:.2f} absolute (25.0% relative;" in text
    assert "closing n/a of the teacher-student gap" in text


def declared_results(
    tmp_path: Path, declare: list[str], capsys: pytest.CaptureFixture, *options: str
) -> str:
    """The results table of the systems that ``declare`` (recipe_lib.sh ``declare_system``
    lines, run in ``tmp_path``) wrote to ``tmp_path/exp/systems.txt``; ``options`` go to
    results-table."""
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(["bash", "-c", f". {repo}/local/recipe_lib.sh && " + " && ".join(declare)],
                   cwd=tmp_path, check=True)  # fmt: skip
    systems = str(tmp_path / "exp" / "systems.txt")
    assert main(["results-table", "--systems", systems, *options]) == 0
    return capsys.readouterr().out


@needs_sclite
def test_kd_over_seeds_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Three seeds declared with kd-seed: per-seed rows, paired KD - CE, mean +- sd, the count
    of seeds where KD wins, the paired bootstrap probability that KD is better, and the binomial
    interval of one WER."""
    exp = tmp_path / "exp"
    # (teacher, CE, KD) dev errors per seed; eval = dev + 1
    errors = {"1": (3, 9, 6), "2": (4, 8, 8), "3": (2, 10, 5)}
    declare = []
    for seed, errs in errors.items():
        dirs = [exp / f"seed{seed}" / n for n in ("dnn", "hdnn_ce", "hdnn_kd")]
        for d, n in zip(dirs, errs, strict=True):
            make_system(d, n, n + 1)
        declare.append(f"declare_system kd-seed {seed} {' '.join(map(str, dirs))}")
    text = declared_results(tmp_path, declare, capsys)
    assert "## Knowledge distillation over 3 seeds" in text

    def w(n: int) -> float:
        return 100.0 * n / REF_WORDS

    row = table_rows(text, "1")
    assert row[1:6] == [f"{w(3):.2f}", f"{w(9):.2f}", f"{w(6):.2f}", f"{w(6) - w(9):+.2f}", "50%"]
    assert table_rows(text, "2")[4:6] == ["+0.00", "0%"]
    # P(KD better) on dev: seed 1's KD student errs less on 3 of the 7 utterances and never
    # more (1 - (4/7)^7), seed 2's errs on the same words as its CE twin, seed 3's less on 5
    assert [table_rows(text, s)[6] for s in "123"] == [
        f"{1 - (4 / 7) ** 7:.2f}",
        "0.00",
        f"{1 - (2 / 7) ** 7:.2f}",
    ]
    assert "in 2 of them with a paired bootstrap probability >= 0.95" in text
    diffs = np.array([w(6) - w(9), 0.0, w(5) - w(10)])
    mean = table_rows(text, "mean +- sd")
    assert mean[4] == f"{diffs.mean():+.2f} +- {diffs.std(ddof=1):.2f}"
    ce = np.array([w(9), w(8), w(10)])
    assert mean[2] == f"{ce.mean():.2f} +- {ce.std(ddof=1):.2f}"
    assert "- dev: KD beats CE in 2 of 3 seeds" in text
    half = 196.0 * np.sqrt(ce.mean() / 100 * (1 - ce.mean() / 100) / REF_WORDS)
    assert f"over its {REF_WORDS} words is known to +-{half:.2f}" in text
    assert "untranscribed" not in text  # no kd-untrans-seed lines: no second table
    assert "paired bootstrap 95% interval" not in text  # no --seed-plot: no picture


@needs_sclite
def test_kd_untranscribed_over_seeds_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """kd-untrans-seed and kd-sp-seed lines make their own tables over seeds, after the kd-seed
    one, each with its KD student that also learnt from audio the teacher labelled."""
    exp = tmp_path / "exp"
    declare = []
    errors = {"1": (3, 9, 8, 5, 7), "2": (4, 8, 8, 6, 9)}
    for seed, (t, ce, kd, kd_u, kd_sp) in errors.items():
        names = ("dnn", "hdnn_ce", "hdnn_kd", "hdnn_kd_u", "hdnn_kd_sp")
        dirs = {n: exp / f"seed{seed}" / n for n in names}
        for n, d in zip((t, ce, kd, kd_u, kd_sp), dirs.values(), strict=True):
            make_system(d, n, n)
        base = f"{dirs['dnn']} {dirs['hdnn_ce']}"
        declare.append(f"declare_system kd-seed {seed} {base} {dirs['hdnn_kd']}")
        declare.append(f"declare_system kd-untrans-seed {seed} {base} {dirs['hdnn_kd_u']}")
        declare.append(f"declare_system kd-sp-seed {seed} {base} {dirs['hdnn_kd_sp']}")
    plot = tmp_path / "exp" / "kd_seeds.png"
    text = declared_results(tmp_path, declare, capsys, "--seed-plot", str(plot))
    plain = text.index("## Knowledge distillation over 2 seeds")
    untrans = text.index("## Knowledge distillation from transcribed + untranscribed audio over 2")
    sp = text.index("## Knowledge distillation from the transcribed audio + its speed-perturbed")
    assert plain < untrans < sp
    w = 100.0 / REF_WORDS
    assert table_rows(text[untrans:sp], "1")[3:6] == [f"{5 * w:.2f}", f"{-4 * w:+.2f}", "67%"]
    assert table_rows(text[plain:untrans], "1")[3:6] == [f"{8 * w:.2f}", f"{-w:+.2f}", "17%"]
    assert table_rows(text[sp:], "2")[3:6] == [f"{9 * w:.2f}", f"{w:+.2f}", "-25%"]
    assert "- dev: KD beats CE in 2 of 2 seeds" in text[untrans:sp]
    assert "- dev: KD beats CE in 1 of 2 seeds" in text[plain:untrans]
    assert "- dev: KD beats CE in 1 of 2 seeds" in text[sp:]
    assert "copies of it played faster and slower" in text[sp:]
    # the picture of the three tables' paired differences, named under them
    assert f"KD - CE per seed with its paired bootstrap 95% interval, dev and eval (one series " \
           f"per table above): `{plot}`." in text  # fmt: skip
    height, width, _ = matplotlib.image.imread(plot).shape
    assert (width, height) == (800, 320)  # two panels of 5 x 4 inches at 80 dpi


def test_gap_share() -> None:
    assert gap_share(20.0, 14.0, 8.0) == pytest.approx(50.0)
    assert gap_share(20.0, 22.0, 10.0) == pytest.approx(-20.0)  # KD worse than CE
    assert gap_share(8.0, 6.0, 8.0) is None
    assert gap_share(8.0, 6.0, 10.0) is None


def test_missing_best_wer_is_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sys_dir = tmp_path / "exp" / "tri1"
    make_decode(sys_dir / "decode_eval", dict.fromkeys(GRID, 1))
    with caplog.at_level(logging.ERROR):
        assert main(["results-table", "--gmm", str(sys_dir)]) == 1
    assert f"{sys_dir / 'final.mdl'} missing" in caplog.text
    with pytest.raises(FileNotFoundError) as err:
        results_table(nnet=[], kd_pair=[sys_dir, sys_dir, sys_dir])
    best = sys_dir / "decode_dev" / "scoring_kaldi" / "best_wer"
    assert str(err.value) == f"{best} missing (decode dev first)"


@needs_sclite
def test_missing_dev_setting_hypotheses_are_named(tmp_path: Path) -> None:
    sys_dir = tmp_path / "exp" / "hdnn"
    make_system(sys_dir, 4, 9)
    hyp = sys_dir / "decode_eval" / "scoring_kaldi" / "penalty_0.5" / "10.txt"
    hyp.unlink()
    with pytest.raises(FileNotFoundError, match=f"{hyp} missing"):
        results_table(kd_pair=[sys_dir] * 3)
    assert read_text(sys_dir / "decode_dev" / "scoring_kaldi" / "test_filt.txt") == REFS


HDNN = {"type": "hdnn", "hdnn": {"num_layers": 2, "hidden_dim": 8}}


def write_seq_network(sys_dir: Path, epochs: int, kd: bool = False, **seq: object) -> None:
    """final.pt + summary.json as train-seq writes them (no cv_acc); ``seq``: meta["seq"]."""
    pytest.importorskip("torch")
    from pykd.models import build_model, count_parameters, model_config_from_dict
    from pykd.train.checkpoint import save_checkpoint

    model = build_model(model_config_from_dict(HDNN), 40, 12)
    criterion = str(seq.get("criterion", "smbr"))
    meta = {
        "model_config": model_config_from_dict(HDNN).to_dict(),
        "num_pdfs": 12,
        "input_dim": 40,
        "input": {"splice": 5, "cmvn": "mean"},
        "params": count_parameters(model),
        "loss": criterion + ("+kd" if kd else ""),
        "init_loss": "kd",
        "seq": {"criterion": criterion, "epochs": epochs, "params": "all", "kd_q": 0.0, **seq},
    }
    summary = {"status": "finished", "criterion": criterion, "epochs": epochs, "history": []}
    sys_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        sys_dir / "final.pt", {"model": model.state_dict(), "meta": meta, "summary": summary}
    )
    (sys_dir / "summary.json").write_text(json.dumps(summary) + "\n")


def test_describe_sequence_training() -> None:
    seq = {"criterion": "mmi", "init_model": "exp/dnn/final.pt", "epochs": 4, "boost": 0.1}
    assert describe_training({"loss": "mmi", "seq": seq}) == "bMMI b=0.1 4 ep. from dnn"
    assert describe_training({"loss": "mmi", "seq": seq}, epochs=2) == "bMMI b=0.1 2 ep. from dnn"
    seq = {
        "criterion": "mpfe",
        "init_model": "exp/hdnn_smbr/epoch2.pt",
        "epochs": 1,
        "params": "gates",
        "kd_q": 0.25,
        "teacher": "exp/dnn_smbr/final.pt",
        "kd_temperature": 2.0,
    }
    assert describe_training({"loss": "mpfe+kd", "seq": seq}) == (
        "MPFE+KD q=0.25 T=2 (teacher dnn_smbr) 1 ep. from hdnn_smbr/epoch2, gates only"
    )
    assert describe_training({"loss": "smbr"}) == "sMBR"  # no details recorded


@needs_sclite
def test_network_table_sequence_training(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    write_seq_network(exp / "hdnn_smbr", 2, init_model=str(exp / "hdnn_kd" / "final.pt"))
    write_seq_network(
        exp / "hdnn_smbr_kd",
        3,
        kd=True,
        init_model="exp/hdnn_ce/final.pt",
        params="gates",
        kd_q=0.5,
        kd_temperature=1.0,
        teacher="exp/dnn_smbr/final.pt",
    )
    make_system(exp / "hdnn_smbr", 4, 9)
    make_system(exp / "hdnn_smbr_kd", 5, 3)
    text = results_table(nnet=[exp / "hdnn_smbr", exp / "hdnn_smbr_kd"])
    cells = table_rows(text, "hdnn_smbr")
    assert cells[1] == "HDNN 2x8 sigmoid"
    assert cells[4:6] == ["sMBR 2 ep. from hdnn_kd", "-"]
    assert cells[6:] == ["8.2 (10_0.5)", "18.4 (10_0.5)", "[16.3 (11_0.0)]"]
    cells = table_rows(text, "hdnn_smbr_kd")
    assert cells[4:6] == ["sMBR+KD q=0.5 (teacher dnn_smbr) 3 ep. from hdnn_ce, gates only", "-"]


@needs_sclite
def test_epoch_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = tmp_path / "exp"
    monkeypatch.chdir(tmp_path)  # the recorded init_model paths are relative to the recipe
    make_dev(exp / "hdnn_kd" / "decode_dev", 8)  # initial network of hdnn_smbr
    write_seq_network(exp / "hdnn_smbr", 3, init_model="exp/hdnn_kd/final.pt")
    make_dev(exp / "hdnn_smbr" / "decode_dev_ep1", 7)
    make_dev(exp / "hdnn_smbr" / "decode_dev_ep2", 6)
    make_dev(exp / "hdnn_smbr" / "decode_dev", 5)  # final.pt = epoch 3
    # recorded elsewhere: found as the sibling exp/dnn, which was not decoded
    write_seq_network(exp / "dnn_smbr", 2, init_model="/elsewhere/exp/dnn/final.pt")
    (exp / "dnn").mkdir()
    make_dev(exp / "dnn_smbr" / "decode_dev_ep1", 3)
    (exp / "dnn_smbr" / "decode_dev_ep4").mkdir()  # not scored yet: a 4th column, "-"

    assert main(["results-table", "--epochs", "exp/hdnn_smbr", "exp/dnn_smbr"]) == 0
    out = capsys.readouterr().out
    header = (
        "| system | training | epoch 0 (initial) | epoch 1 | epoch 2 | epoch 3 | epoch 4 "
        "| change (dev / eval) |"
    )
    assert header in out.splitlines()
    rows = section_rows(out, "Sequence training: dev WER per epoch")
    assert rows == [
        [
            "hdnn_smbr",
            "sMBR 3 ep. from hdnn_kd",
            f"{wer_text(8)} (10_0.5)",
            f"{wer_text(7)} (10_0.5)",
            f"{wer_text(6)} (10_0.5)",
            f"{wer_text(5)} (10_0.5)",
            "-",
            f"{change(5, 8)} / -",  # no eval decodes: dev only
        ],
        ["dnn_smbr", "sMBR 2 ep. from dnn", "-", f"{wer_text(3)} (10_0.5)", "-", "-", "-", "- / -"],
    ]
    # With eval decodes of both, eval is compared at each one's dev setting (10_0.5).
    for d in ("hdnn_kd", "hdnn_smbr"):
        shutil.rmtree(exp / d / "decode_dev")
    make_pair(exp / "hdnn_kd" / "decode_dev", exp / "hdnn_kd" / "decode_eval", 8, 9)
    make_pair(exp / "hdnn_smbr" / "decode_dev", exp / "hdnn_smbr" / "decode_eval", 5, 4)
    assert main(["results-table", "--epochs", "exp/hdnn_smbr"]) == 0
    rows = section_rows(capsys.readouterr().out, "Sequence training: dev WER per epoch")
    assert rows[0][-1] == f"{change(5, 8)} / {change(4, 9)}"
    # an epoch file as the initial network: its per-epoch decode
    make_dev(exp / "hdnn_smbr" / "decode_dev_ep3", 5)
    assert init_decode_dir(exp / "x", "exp/hdnn_smbr/epoch3.pt", "dev") == Path(
        "exp/hdnn_smbr/decode_dev_ep3"
    )
    write_network(exp / "hdnn_ce", HDNN, cv_acc=0.5)
    with pytest.raises(ValueError, match="not a sequence-trained network"):
        results_table(epochs=[exp / "hdnn_ce"])


def adapt_summary(adapt_dir: Path, speakers: int, seconds: float, skipped: list[str]) -> None:
    """summary.json of ``pykd adapt-speakers`` (the keys the table reads, and a few more)."""
    adapt_dir.mkdir(parents=True)
    summary = {
        "method": "teacher",
        "protocol": "same",
        "num_speakers": speakers,
        "num_adapted": speakers - len(skipped),
        "num_skipped": len(skipped),
        "skipped_speakers": skipped,
        "adapted_params_per_speaker": 33024,
        "mean_seconds_per_speaker": seconds,
    }
    (adapt_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


@needs_sclite
def test_adaptation_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "exp" / "hdnn_kd"
    make_system(base, 8, 10)  # SI, same protocol
    make_pair(base / "decode_dev_half", base / "decode_eval_half", 6, 7)  # SI, split
    # teacher, same: 4 + 3 of 4 + 4 speakers adapted, 2.0 s and 4.0 s each
    adapt_summary(base / "adapt_teacher_dev", 4, 2.0, [])
    adapt_summary(base / "adapt_teacher_eval", 4, 4.0, ["spk9"])
    make_pair(base / "decode_dev_adapt_teacher", base / "decode_eval_adapt_teacher", 5, 9)
    # oracle, split: dev's run has only adapt_stats.tsv; eval's decode is missing
    stats = base / "adapt_oracle_split_dev"
    stats.mkdir()
    (stats / "adapt_stats.tsv").write_text(
        "speaker\tframes\tadapted_params\tloss_before\tloss_after\tseconds\tstatus\n"
        "spk1\t900\t33024\t2.0\t1.5\t1.000\tadapted\n"
        "spk2\t100\t0\t-\t-\t0.000\tskipped-too-little-data\n"
    )
    adapt_summary(base / "adapt_oracle_split_eval", 2, 3.0, [])
    make_dev(base / "decode_dev_half_adapt_oracle", 6)
    # decode: nothing at all, so no row

    assert main(["results-table", "--adapt", str(base)]) == 0
    out = capsys.readouterr().out
    header = (
        "| method | protocol | adapted parameters per speaker | adaptation time per speaker (s) "
        "| speakers adapted | dev WER | eval WER (dev's setting) | change vs SI (dev / eval) |"
    )
    assert "## Speaker adaptation of hdnn_kd" in out and header in out.splitlines()
    rows = section_rows(out, "Speaker adaptation of hdnn_kd")
    d_dev, d_eval = 100.0 * (5 - 8) / REF_WORDS, 100.0 * (9 - 10) / REF_WORDS
    assert rows == [
        ["SI", "same utterances", "-", "-", "-", "16.3 (10_0.5)", "20.4 (10_0.5)", "-"],
        [
            "teacher",
            "same utterances",
            "33,024",
            f"{(4 * 2.0 + 3 * 4.0) / 7:.2f}",  # mean over the 7 adapted speakers
            "7/8, skipped: spk9",
            "10.2 (10_0.5)",
            "18.4 (10_0.5)",
            f"{d_dev:+.2f} / {d_eval:+.2f}",
        ],
        ["SI", "split halves", "-", "-", "-", "12.2 (10_0.5)", "14.3 (10_0.5)", "-"],
        [
            "oracle",
            "split halves",
            "33,024",
            f"{(1 * 1.0 + 2 * 3.0) / 3:.2f}",
            "3/4, skipped: spk2",
            "12.2 (10_0.5)",
            "-",
            "+0.00 / -",
        ],
    ]
    assert rows[1][-1] == "-6.12 / -2.04"

    # only the methods asked for; the split protocol then has nothing, so no SI row for it
    text = results_table(adapt=base, adapt_methods=["teacher"])
    assert [r[:2] for r in section_rows(text, "Speaker adaptation of hdnn_kd")] == [
        ["SI", "same utterances"],
        ["teacher", "same utterances"],
    ]
    # a tagged run: adapt_<method>_<tag>_...; adapted but not decoded yet
    adapt_summary(base / "adapt_decode_kl_split_eval", 2, 1.5, [])
    text = results_table(adapt=base, adapt_tag="kl")
    assert section_rows(text, "Speaker adaptation of hdnn_kd (kl)") == [
        ["SI", "split halves", "-", "-", "-", "12.2 (10_0.5)", "14.3 (10_0.5)", "-"],
        ["decode", "split halves", "33,024", "1.50", "2/2", "-", "-", "- / -"],
    ]


def test_signed_change() -> None:
    from pykd.report.results import SetWer

    def w(x: float) -> SetWer:
        return SetWer(Setting(10, "0.5"), f"{x:.1f}", x)

    assert signed_change(w(8.0), w(8.43)) == "-0.43"
    assert signed_change(w(9.214), w(9.0)) == "+0.21"
    assert signed_change(w(9.001), w(9.0)) == "+0.00"
    assert signed_change(w(8.999), w(9.0)) == "+0.00"
    assert signed_change(None, w(9.0)) == signed_change(w(9.0), None) == "-"


def test_adaptation_table_needs_results(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base = tmp_path / "exp" / "hdnn_kd"
    make_system(base, 8, 10)  # SI decodes alone are no adaptation results
    with pytest.raises(FileNotFoundError, match="no speaker adaptation results") as err:
        results_table(adapt=base)
    assert str(base / "adapt_teacher_dev") in str(err.value)
    (base / "adapt_teacher_kl_dev").mkdir()  # another tag's run
    with caplog.at_level(logging.ERROR):
        assert main(["results-table", "--adapt", str(base), "--adapt-tag", "other"]) == 1
    assert f"{base}: no speaker adaptation results for methods teacher decode oracle" in caplog.text


def test_declared_systems_make_the_same_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The recipe declares its finished systems (local/recipe_lib.sh declare_system ->
    exp/systems.txt); `results-table --systems` gives the tables the explicit options give."""
    exp = tmp_path / "exp"
    hdnn = {"type": "hdnn", "hdnn": {"num_layers": 3, "hidden_dim": 16}}
    for i, name in enumerate(("dnn", "hdnn_ce", "hdnn_kd")):
        write_network(exp / name, hdnn, cv_acc=0.5)
        make_system(exp / name, 3 + i, 4)
    systems = [str(exp / s) for s in ("dnn", "hdnn_ce", "hdnn_kd")]
    repo = Path(__file__).resolve().parents[1]
    declare = [f"declare_system nnet {s}" for s in systems]
    declare += [f"declare_system kd-pair {' '.join(systems)}", f"declare_system nnet {systems[0]}"]
    subprocess.run(
        ["bash", "-c", f". {repo}/local/recipe_lib.sh && " + " && ".join(declare)],
        cwd=tmp_path, check=True,
    )  # fmt: skip
    lines = (exp / "systems.txt").read_text().splitlines()
    # declared again: replaced in place, so the rows keep the stages' order
    assert lines == [f"nnet {s}" for s in systems] + [f"kd-pair {' '.join(systems)}"]
    assert main(["results-table", "--systems", str(exp / "systems.txt")]) == 0
    assert capsys.readouterr().out == results_table(nnet=systems, kd_pair=systems)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("gmm", "'gmm' takes one directory"),
        ("kd-pair exp/a exp/b", "'kd-pair' takes TEACHER STUDENT_CE STUDENT_KD"),
        ("adapt exp/a psychic", "'adapt' takes a directory and methods of teacher decode oracle"),
        ("lstm exp/a", "unknown system kind 'lstm'"),
    ],
)
def test_bad_systems_file_line_is_named(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "systems.txt"
    path.write_text(f"# finished systems\ngmm exp/mono\n{line}\n")
    with pytest.raises(SystemsFileError, match=f"{path}:3: {error}"):
        read_systems(path)


@needs_sclite
def test_deploy_table(tmp_path: Path) -> None:
    """Deployed-models rows: the export's size and cost, each file's WERs (eval at dev's
    setting), the change against the checkpoint's decodes, speed from footprint.json."""
    base = tmp_path / "exp/hdnn_kd"
    make_system(base, 20, 30)
    export = base / "export"
    make_pair(export / "decode_dev_fp32", export / "decode_eval_fp32", 22, 30)
    make_pair(export / "decode_dev_int8", export / "decode_eval_int8", 23, 28)
    files = {"fp32": {"path": "x/model.onnx", "bytes": 1024 * 1316},
             "int8": {"path": "x/model.int8.onnx", "bytes": 1024 * 438}}  # fmt: skip
    model = {"cmvn": "mean", "cmvn_source": "online", "num_params": 298968,
             "mflops_per_frame": 1.1837}  # fmt: skip
    (export / "export.json").write_text(json.dumps({"model": model, "files": files}))
    (export / "footprint.json").write_text(
        json.dumps(
            {"int8": {"frames_per_second": 81234.0, "times_real_time": 812.34, "peak_rss_mb": 71.2}}
        )  # fmt: skip
    )
    (tmp_path / "systems.txt").write_text(f"deploy {export}\n")
    text = results_table(deploy=read_systems(tmp_path / "systems.txt").deploy)
    rows = section_rows(text, "Deployed models (one ONNX file each, onnxruntime, streaming "
                        "log-likelihoods)")  # fmt: skip
    assert [r[:7] for r in rows] == [
        ["hdnn_kd/export", "model.onnx", "fp32", "mean (online)", "298,968", "1316", "1.18"],
        ["hdnn_kd/export", "model.int8.onnx", "int8", "mean (online)", "298,968", "438", "1.18"],
    ]
    assert rows[0][7:10] == ["-", "-", "-"] and rows[1][7:10] == ["81,234", "812", "71"]
    assert rows[0][10].startswith(wer_text(22)) and rows[1][11].startswith(wer_text(28))
    assert rows[0][12] == f"{change(22, 20)} / {change(30, 30)}"
    assert rows[1][12] == f"{change(23, 20)} / {change(28, 30)}"
    shutil.rmtree(export / "decode_eval_int8")
    rows = section_rows(results_table(deploy=[export]), "Deployed models (one ONNX file each, "
                        "onnxruntime, streaming log-likelihoods)")  # fmt: skip
    assert rows[1][11] == "-" and rows[1][12].endswith("/ -")


@needs_sclite
def test_kd_lever_ablation_script(tmp_path: Path) -> None:
    """bench/kd_levers.py: one row per lever with paired KD - CE over the seeds that have the
    lever's student decoded (a seed without it is left out and named)."""
    recipe = tmp_path / "recipe"
    # (teacher, CE, KD, KD_T2) dev errors per seed dir; eval = dev
    seeds = {
        "exp": (3, 9, 8, 5),
        "exp/seeds/seed2": (4, 8, 8, 6),
        "exp/seeds/seed3": (3, 9, 7, None),
    }
    for d, errs in seeds.items():
        for name, n in zip(("dnn", "hdnn_ce", "hdnn_kd", "hdnn_kd_T2"), errs, strict=True):
            if n is not None:
                make_system(recipe / d / name, n, n)
    cv_acc = {  # (CE, KD) per seed dir
        "exp": (0.55, 0.56),
        "exp/seeds/seed2": (0.56, 0.565),
        "exp/seeds/seed3": (0.57, 0.565),
    }
    for d, accs in cv_acc.items():
        for name, acc in zip(("hdnn_ce", "hdnn_kd"), accs, strict=True):
            (recipe / d / name / "summary.json").write_text(json.dumps({"cv_acc": acc}))
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(repo / "bench/kd_levers.py"), "--lever", "recipe", str(recipe),
         "hdnn_kd", "--lever", "T = 2", str(recipe), "hdnn_kd_T2"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    w = 100.0 / REF_WORDS
    recipe_row = table_rows(out, "recipe")
    assert recipe_row[1] == "3"
    diffs = np.array([-1.0, 0.0, -2.0]) * w
    assert recipe_row[5] == (
        f"{diffs.mean():+.2f} +- {diffs.std(ddof=1):.2f} / {diffs.mean():+.2f} +- "
        f"{diffs.std(ddof=1):.2f}"
    )
    assert recipe_row[6] == "2 / 2"
    # paired bootstrap: KD errs less on 1 (seed 1) and 2 (seed 3) of the 7 utterances, never
    # more: P = 1 - (6/7)^7 and 1 - (5/7)^7, both short of 0.95
    assert recipe_row[7] == "0 / 0"
    acc_diff = np.array([1.0, 0.5, -0.5])  # KD - CE CV frame accuracy, points
    assert recipe_row[8] == f"+{acc_diff.mean():.2f} +- {acc_diff.std(ddof=1):.2f} points (2 / 3)"
    t2 = table_rows(out, "T = 2")
    assert t2[1] == "2" and t2[6] == "2 / 2"
    assert t2[7] == "1 / 1"  # seed 1: less on 4 utterances (P = 1 - (3/7)^7); seed 2: on 2
    assert t2[8] == "-"  # the fixtures have no summary.json: no CV frame accuracy
    assert t2[9] == "60% / 60%"  # means: teacher 3.5, CE 8.5, KD 5.5 -> 3 / 5 of the gap
    assert f"P(KD better) {1 - (3 / 7) ** 7:.2f} / {1 - (3 / 7) ** 7:.2f}" in out
    assert "seed 3: exp/seeds/seed3/hdnn_kd_T2 not decoded, left out" in out


@needs_sclite
def test_seq_kd_q_script(tmp_path: Path) -> None:
    """bench/seq_kd_q.py: per-seed WERs of the sMBR student and the q sweep, q chosen on the mean
    dev WER, the paired sMBR+KD - sMBR difference per seed and the verdict; a seed missing a
    system is left out and named."""
    recipe = tmp_path / "recipe"
    names = ("hdnn_kd", "hdnn_smbr", "hdnn_smbr_kd_q0.2", "hdnn_smbr_kd_q0.8")
    seeds = {  # (dev, eval) errors of each system, per seed dir
        "exp": ((9, 9), (8, 8), (7, 9), (8, 6)),
        "exp/seeds/seed2": ((9, 9), (8, 7), (6, 8), (9, 6)),
        "exp/seeds/seed3": ((9, 9), (8, 8), (8, 8), None),
    }
    for d, errs in seeds.items():
        for name, e in zip(names, errs, strict=True):
            if e is not None:
                make_system(recipe / d / name, *e)
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(repo / "bench/seq_kd_q.py"), str(recipe), "--qs", "0.2 0.8"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    w = 100.0 / REF_WORDS
    assert table_rows(out, "1")[3] == f"{7 * w:.2f} / {9 * w:.2f}"
    assert [ln.split("|")[1].strip() for ln in out.splitlines() if ln.startswith("| ")][1:] == [
        "1",
        "2",
        "mean +- sd",
    ]  # seed 3 left out
    assert "seed 3 (exp/seeds/seed3): hdnn_smbr_kd_q0.8 not decoded, left out" in out
    assert "**q = 0.2**" in out  # mean dev 6.5 errors against 8.5 for q = 0.8
    # q = 0.2 - sMBR: seed 1 -1 / +1, seed 2 -2 / +1 errors: better on dev only
    assert f"{-1 * w:+.2f} / {1 * w:+.2f}, {-2 * w:+.2f} / {1 * w:+.2f}" in out
    assert "better in 2 / 0 of 2 seeds: smbr+KD does not beat smbr alone on both sets" in out
