"""LM tests against kaldi-ref/lm: IRSTLM training, ARPA scoring, G.fst, format_lm, CLI/scripts."""

from __future__ import annotations

import filecmp
import gzip
import math
import re
import subprocess
from pathlib import Path

import kaldifst
import pytest

from pykd.cli import main as pykd_main
from pykd.lm.arpa import ArpaError, evaluate, log10_to_cost, read_arpa, read_sentences
from pykd.lm.arpa import score_sentence as arpa_score
from pykd.lm.gfst import (
    arpa_to_gfst,
    check_gfst,
    format_lm,
    read_symbols,
    sentence_cost,
)
from pykd.lm.irstlm import irstlm_eval, train_lm


@pytest.fixture(scope="module")
def ref(kaldi_ref: Path) -> dict[str, Path]:
    lm = kaldi_ref / "lm"
    return {
        "arpa": lm / "lm40.arpa",
        "text": lm / "text40.txt",
        "text_se": lm / "text40.se.txt",
        "G": lm / "G.fst",
        "words": kaldi_ref / "lang" / "lang" / "words.txt",
        "lang": kaldi_ref / "lang" / "lang",
        "lexicon": kaldi_ref / "lang" / "dict" / "lexicon.txt",
    }


@pytest.fixture(scope="module")
def our_g(ref: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> kaldifst.StdVectorFst:
    out = tmp_path_factory.mktemp("g") / "G.fst"
    arpa_to_gfst(ref["arpa"], ref["words"], out)
    return kaldifst.StdVectorFst.read(str(out))


def _sentences(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.split()]


# --- IRSTLM training ---------------------------------------------------------------------------


def test_irstlm_reproduces_kaldi_ref_arpa(ref: dict[str, Path], tmp_path: Path) -> None:
    """Plain text, add-start-end'ed text and .gz output all give lm40.arpa byte for byte."""
    train_lm(ref["text"], tmp_path / "a.arpa", words_txt=ref["words"])
    assert (tmp_path / "a.arpa").read_bytes() == ref["arpa"].read_bytes()
    train_lm(ref["text_se"], tmp_path / "b.arpa.gz")
    with gzip.open(tmp_path / "b.arpa.gz", "rb") as handle:
        assert handle.read() == ref["arpa"].read_bytes()
    assert (tmp_path / "train_lm.log").stat().st_size > 0
    assert not list(tmp_path.glob(".train_lm.*")), "temp dir left behind"


def test_kaldi_text_and_oov_mapping(ref: dict[str, Path], tmp_path: Path) -> None:
    lines = (ref["text"]).read_text().splitlines()[:60]
    lines[0] = "zebra " + lines[0] + " quagga"
    text = tmp_path / "text"
    text.write_text("".join(f"utt{i:03d} {s}\n" for i, s in enumerate(lines)) + "utt999\n")
    stats = train_lm(text, tmp_path / "lm.arpa", words_txt=ref["words"], kaldi_text=True, order=2)
    assert stats.sentences == 60 and stats.empty == 1 and stats.mapped_to_unk == 2
    lm = read_arpa(tmp_path / "lm.arpa")
    assert lm.order == 2
    assert lm.words() <= set(read_symbols(ref["words"]))
    assert not any(w.startswith("utt") for w in lm.vocab)


def test_pruning(ref: dict[str, Path], tmp_path: Path) -> None:
    train_lm(ref["text"], tmp_path / "p.arpa", prune_threshold="1e-3")
    full, pruned = read_arpa(ref["arpa"]), read_arpa(tmp_path / "p.arpa")
    assert pruned.counts[1] == full.counts[1]
    assert pruned.counts[3] < full.counts[3] and pruned.counts[2] <= full.counts[2]
    with pytest.raises(ValueError, match="prune threshold"):
        train_lm(ref["text"], tmp_path / "q.arpa", prune_threshold="abc")


def test_irstlm_error_surfaces_with_log(ref: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="(?s)build-lm.sh failed.*wrong smoothing setting"):
        train_lm(ref["text"], tmp_path / "bad.arpa", smoothing="bogus")
    assert not (tmp_path / "bad.arpa").exists()
    assert not list(tmp_path.glob(".train_lm.*"))


# --- ARPA reader and perplexity ----------------------------------------------------------------


def test_arpa_reader_handles_irstlm_quirks(ref: dict[str, Path], tmp_path: Path) -> None:
    lm = read_arpa(ref["arpa"])
    assert lm.order == 3 and lm.counts == {1: 43, 2: 102, 3: 155}
    assert ("<s>", "<s>") in lm.ngrams[2] and ("<s>", "<s>", "<s>") in lm.ngrams[3]
    assert lm.ngrams[1][("</s>",)] == (-0.95304, -3.0)
    assert lm.ngrams[1][("<unk>",)] == (-1.62277, 0.0)
    assert lm.logprob("could", ("<s>", "you")) == (lm.ngrams[3][("<s>", "you", "could")][0], 3)
    # a missing trigram backs off: bo(u v) + P(w | v)
    u, v, w = next(
        (a, b, c)
        for (a, b) in lm.ngrams[2]
        for (c,) in lm.ngrams[1]
        if (a, b, c) not in lm.ngrams[3] and (b, c) in lm.ngrams[2] and a != "<s>"
    )
    want = lm.ngrams[2][(u, v)][1] + lm.ngrams[2][(v, w)][0]
    assert lm.logprob(w, (u, v)) == (pytest.approx(want), 2)
    bad = tmp_path / "bad.arpa"
    bad.write_text(re.sub(r"ngram\s+2=\s*102", "ngram 2=103", ref["arpa"].read_text()))
    with pytest.raises(ArpaError, match="103 2-grams"):
        read_arpa(bad)


def test_perplexity_matches_irstlm(ref: dict[str, Path], tmp_path: Path) -> None:
    """Held-out perplexity: ours vs compile-lm --eval, with and without IRSTLM's OOV penalty."""
    lines = ref["text"].read_text().splitlines()
    (tmp_path / "train.txt").write_text("\n".join(lines[:150]) + "\n")
    dev = tmp_path / "dev.txt"
    dev.write_text("\n".join(lines[150:]) + "\nthe zebra should discuss the budget\n")
    train_lm(tmp_path / "train.txt", tmp_path / "lm.arpa.gz")
    lm = read_arpa(tmp_path / "lm.arpa.gz")
    res = evaluate(lm, read_sentences(dev))
    assert res.sentences == 51 and res.skipped == 0
    irst = irstlm_eval(tmp_path / "lm.arpa.gz", dev)
    assert irst["Nw"] == res.words + res.sentences and irst["Noov"] == res.oov
    assert res.perplexity_irstlm(len(lm.vocab)) == pytest.approx(irst["PP"], rel=1e-3)
    no_penalty = irstlm_eval(tmp_path / "lm.arpa.gz", dev, dub=len(lm.vocab) + 1)
    assert res.perplexity == pytest.approx(no_penalty["PP"], rel=1e-3)
    # ppl1 leaves out </s>; here </s> is well predicted, so ppl1 is the larger one
    assert res.perplexity_no_eos > res.perplexity > 1.0
    assert res.oov_rate == pytest.approx(res.oov / res.words)


# --- G.fst ---------------------------------------------------------------------------------------


def test_gfst_matches_kaldi_arpa2fst(
    ref: dict[str, Path], our_g: kaldifst.StdVectorFst, tmp_path: Path
) -> None:
    kaldi_g = kaldifst.StdVectorFst.read(str(ref["G"]))
    n_arcs = sum(our_g.num_arcs(s) for s in range(our_g.num_states))
    assert (our_g.num_states, n_arcs, our_g.start) == (128, 406, 1)
    ours = sorted(line.split() for line in our_g.to_str().splitlines())
    theirs = sorted(line.split() for line in kaldi_g.to_str().splitlines())
    assert [x[:-1] for x in ours] == [x[:-1] for x in theirs]  # same states, arcs, labels
    assert max(abs(float(a[-1]) - float(b[-1])) for a, b in zip(ours, theirs, strict=True)) < 1e-4

    raw = arpa_to_gfst(ref["arpa"], ref["words"], tmp_path / "raw.fst", remove_redundant=False)
    assert raw.num_states == 136
    lm = read_arpa(ref["arpa"])
    sym = read_symbols(ref["words"])
    for words in _sentences(ref["text"]):
        ids = [sym[w] for w in words]
        want = sentence_cost(kaldi_g, ids)
        assert math.isfinite(want)
        assert sentence_cost(our_g, ids) == pytest.approx(want, abs=1e-4), words
        assert sentence_cost(raw, ids) == pytest.approx(want, abs=1e-4), words
        assert log10_to_cost(sum(arpa_score(lm, words))) == pytest.approx(want, abs=1e-4), words
    assert sentence_cost(our_g, [sym["you"], sym["you"], sym["<s>"]]) == math.inf


def test_missing_word_is_named(ref: dict[str, Path], tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("".join(ln for ln in ref["words"].open() if not ln.startswith("budget ")))
    with pytest.raises(ValueError, match="budget"):
        arpa_to_gfst(ref["arpa"], words, tmp_path / "G.fst")
    assert not (tmp_path / "G.fst").exists()


def test_format_lm_makes_complete_lang_dir(ref: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "lang_test"
    for _ in range(2):  # re-running replaces the output cleanly
        format_lm(ref["lang"], ref["arpa"], ref["lexicon"], out)
    src_files = sorted(p.relative_to(ref["lang"]) for p in ref["lang"].rglob("*") if p.is_file())
    out_files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert out_files == sorted([*src_files, Path("G.fst")])
    _, mismatch, errors = filecmp.cmpfiles(ref["lang"], out, [str(f) for f in src_files], False)
    assert not mismatch and not errors
    g = kaldifst.StdVectorFst.read(str(out / "G.fst"))
    check_gfst(g, out / "words.txt")
    assert g.num_states == 128
    assert not list(tmp_path.glob(".lang_test.*"))
    with pytest.raises(FileNotFoundError, match="not a lang dir"):
        format_lm(tmp_path, ref["arpa"], ref["lexicon"], tmp_path / "x")


# --- CLI and scripts -----------------------------------------------------------------------------


def test_cli_lm_eval(ref: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert pykd_main(["lm-eval", str(ref["arpa"]), str(ref["text"]), "--irstlm"]) == 0
    out = capsys.readouterr().out
    assert "sentences=200 words=1868" in out and "ppl=" in out and "IRSTLM compile-lm" in out


def test_scripts_train_and_format(ref: dict[str, Path], repo_root: Path, tmp_path: Path) -> None:
    text = tmp_path / "text"
    lines = ref["text"].read_text().splitlines()
    text.write_text("".join(f"u{i:03d} {s}\n" for i, s in enumerate(lines)))
    script = (
        f". ./path.sh && steps_kd/train_lm.sh --words {ref['words']} --dev-text {text} "
        f"{text} {tmp_path}/lm && utils/format_lm.sh {ref['lang']} {tmp_path}/lm/lm.arpa.gz "
        f"{ref['lexicon']} {tmp_path}/lang_test"
    )
    proc = subprocess.run(
        ["bash", "-c", script], cwd=repo_root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    with gzip.open(tmp_path / "lm" / "lm.arpa.gz", "rb") as handle:
        assert handle.read() == ref["arpa"].read_bytes()
    assert "ppl=" in (tmp_path / "lm" / "perplexity.txt").read_text()
    assert (tmp_path / "lm" / "log" / "train_lm.log").is_file()
    assert kaldifst.StdVectorFst.read(str(tmp_path / "lang_test" / "G.fst")).num_states == 128
    bad = subprocess.run(
        ["bash", "-c", f". ./path.sh && utils/format_lm.sh {ref['lang']} {tmp_path}/none x y"],
        cwd=repo_root,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "no such file" in bad.stderr


def test_tiny_text_falls_back_from_kneser_ney(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Three sentences: no bigram is seen exactly twice, so KN discounts are undefined (log 0).
    text = tmp_path / "text"
    text.write_text(
        "right let's start the meeting we have a lot to cover today\nokay\nso we're the x m l\n"
    )
    arpa = tmp_path / "lm.arpa"
    train_lm(text, arpa, order=3)
    assert "falling back to witten-bell" in caplog.text
    lm = read_arpa(arpa)
    assert lm.order == 3 and "meeting" in lm.vocab
