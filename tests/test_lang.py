"""Dictionary and lang preparation: output identical to Kaldi's utils/prepare_lang.sh."""

from __future__ import annotations

import filecmp
import random
import shutil
import subprocess
from pathlib import Path

import kaldifst
import pytest

from pykd.cli import main as pykd_main
from pykd.lang.check_text import check_lang_text
from pykd.lang.dictionary import DictDirError, read_dict_dir
from pykd.lang.fst_sort import _heap_sort, std_sort
from pykd.lang.g2p import CONSONANTS, VOWELS, g2p
from pykd.lang.lexicon_fst import fst_to_text
from pykd.lang.prepare_dict import prepare_dict, read_extra_lexicon, read_word_list
from pykd.lang.prepare_lang import LangOptions, prepare_lang
from pykd.lang.symbols import SymbolTable

needs_flite = pytest.mark.skipif(shutil.which("t2p") is None, reason="flite's t2p not installed")

DICT_FILES = [
    "lexicon.txt",
    "silence_phones.txt",
    "optional_silence.txt",
    "nonsilence_phones.txt",
    "extra_questions.txt",
]


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def built(kaldi_ref: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prepare_lang run on a copy of kaldi-ref's dict dir."""
    root = tmp_path_factory.mktemp("lang")
    shutil.copytree(kaldi_ref / "lang" / "dict", root / "dict")
    assert (
        pykd_main(
            [
                "prepare-lang",
                str(root / "dict"),
                "<unk>",
                str(root / "lang_tmp"),
                str(root / "lang"),
            ]
        )
        == 0
    )
    return root


def test_lang_dir_byte_identical(built: Path, kaldi_ref: Path) -> None:
    ref = kaldi_ref / "lang" / "lang"
    names = _all_files(ref)
    assert names == _all_files(built / "lang")
    for name in names:  # L.fst and L_disambig.fst included
        assert filecmp.cmp(ref / name, built / "lang" / name, shallow=False), name


def test_tmp_dir_and_dict_lexiconp_identical(built: Path, kaldi_ref: Path) -> None:
    ref = kaldi_ref / "lang" / "lang_tmp"
    assert _all_files(ref) == _all_files(built / "lang_tmp")
    for name in _all_files(ref):
        assert (ref / name).read_bytes() == (built / "lang_tmp" / name).read_bytes(), name
    written = kaldi_ref / "lang" / "dict_lexiconp_written_by_prepare_lang.txt"
    assert (built / "dict" / "lexiconp.txt").read_bytes() == written.read_bytes()


@pytest.mark.parametrize("name", ["L", "L_disambig"])
def test_lexicon_fst_text_equals_golden(built: Path, kaldi_ref: Path, name: str) -> None:
    fst = kaldifst.StdVectorFst.read(str(built / "lang" / f"{name}.fst"))
    phones = SymbolTable.read(built / "lang" / "phones.txt")
    words = SymbolTable.read(built / "lang" / "words.txt")
    golden = (kaldi_ref / "lang" / f"{name}.fst.txt").read_text()
    assert fst_to_text(fst, phones, words) == golden  # same states, arcs, arc order, weights
    if shutil.which("fstprint"):  # Debian OpenFst's own printer, when installed
        out = subprocess.run(
            [
                "fstprint",
                f"--isymbols={built / 'lang' / 'phones.txt'}",
                f"--osymbols={built / 'lang' / 'words.txt'}",
                str(built / "lang" / f"{name}.fst"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out == golden


def test_rerun_is_idempotent(built: Path, kaldi_ref: Path) -> None:
    prepare_lang(built / "dict", "<unk>", built / "lang_tmp", built / "lang")  # uses lexiconp now
    for name in _all_files(kaldi_ref / "lang" / "lang"):
        assert (kaldi_ref / "lang" / "lang" / name).read_bytes() == (
            built / "lang" / name
        ).read_bytes(), name


def test_options_give_consistent_lang(kaldi_ref: Path, tmp_path: Path) -> None:
    shutil.copytree(kaldi_ref / "lang" / "dict", tmp_path / "dict")
    opts = LangOptions(
        position_dependent_phones=False,
        share_silence_phones=True,
        sil_prob=0.0,
        num_sil_states=1,
        num_nonsil_states=1,
    )
    lang = prepare_lang(tmp_path / "dict", "<unk>", tmp_path / "tmp", tmp_path / "lang", opts)
    phones = SymbolTable.read(lang / "phones.txt")
    assert "AE1" in phones and "AE1_B" not in phones
    assert not (lang / "phones" / "word_boundary.txt").exists()
    roots = (lang / "phones" / "roots.txt").read_text().splitlines()
    assert roots[0] == "not-shared not-split SIL SPN" and roots[1].startswith("shared split ")
    topo = (lang / "topo").read_text()
    assert topo.count("<State> 1 </State>") == 2
    # Without position marks "in" (IH0 N) etc. become prefixes: more disambiguation symbols.
    disambig = (lang / "phones" / "disambig.txt").read_text().split()
    assert disambig[0] == "#0" and len(disambig) > 2
    fst = kaldifst.StdVectorFst.read(str(lang / "L.fst"))
    assert fst.start == 0 and float(fst.final(0).value) == 0.0  # no-silence lexicon: one loop
    # The phone table can be given: same numbering reused.
    opts2 = LangOptions(phone_symbol_table=lang / "phones.txt", position_dependent_phones=False)
    lang2 = prepare_lang(tmp_path / "dict", "<unk>", tmp_path / "tmp2", tmp_path / "lang2", opts2)
    assert (lang2 / "phones.txt").read_bytes() == (lang / "phones.txt").read_bytes()
    bad = tmp_path / "few_phones.txt"
    bad.write_text("<eps> 0\nSIL 1\n")
    with pytest.raises(ValueError, match="lacks phones"):
        prepare_lang(
            tmp_path / "dict",
            "<unk>",
            tmp_path / "tmp3",
            tmp_path / "lang3",
            LangOptions(phone_symbol_table=bad),
        )


def test_shell_script_matches(kaldi_ref: Path, tmp_path: Path, repo_root: Path) -> None:
    shutil.copytree(kaldi_ref / "lang" / "dict", tmp_path / "dict")
    res = subprocess.run(
        [
            "bash",
            "-c",
            f". ./path.sh && utils_kd/prepare_lang.sh --sil-prob 0.5 {tmp_path}/dict "
            f'"<unk>" {tmp_path}/tmp {tmp_path}/lang',
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    ref = kaldi_ref / "lang" / "lang"
    for name in ("L_disambig.fst", "phones.txt", "words.txt", "phones/align_lexicon.int"):
        assert (ref / name).read_bytes() == (tmp_path / "lang" / name).read_bytes(), name


def test_prepare_dict_reproduces_kaldi_ref_dict(kaldi_ref: Path, tmp_path: Path) -> None:
    ref = kaldi_ref / "lang" / "dict"
    words = [w for w in read_word_list(ref / "lexicon.txt") if w not in ("!SIL", "<unk>")]
    assert len(words) == 40
    (tmp_path / "words.txt").write_text("".join(w + "\n" for w in reversed(words)))
    assert (
        pykd_main(["prepare-dict", "--words", str(tmp_path / "words.txt"), str(tmp_path / "dict")])
        == 0
    )
    for name in DICT_FILES:
        assert (tmp_path / "dict" / name).read_bytes() == (ref / name).read_bytes(), name
    assert (tmp_path / "dict" / "g2p_words.txt").read_text() == ""
    counts = prepare_dict(words, tmp_path / "first", all_prons=False)
    assert counts == {"words": 40, "prons": 40, "g2p": 0}
    read_dict_dir(tmp_path / "first")  # valid


@needs_flite
def test_g2p_made_up_word(tmp_path: Path) -> None:
    prons = g2p(["blorfington", "Zandor"], tmp_path)
    bl = prons["blorfington"]
    assert bl[:2] == ["B", "L"] and bl[-1] == "N"
    for p in bl + prons["Zandor"]:
        assert p in CONSONANTS or (p[:-1] in VOWELS and p[-1] in "012"), p
    assert any(p.endswith("1") for p in bl)  # a primary stress
    assert prons["Zandor"][0] == "Z"
    assert (tmp_path / "g2p_lexicon.txt").read_text().startswith("blorfington B L")


@needs_flite
def test_prepare_dict_uses_g2p_for_oovs(tmp_path: Path) -> None:
    counts = prepare_dict(["the", "zorblat", "the"], tmp_path / "dict")
    assert counts["g2p"] == 1
    assert (tmp_path / "dict" / "g2p_words.txt").read_text() == "zorblat\n"
    lex = (tmp_path / "dict" / "lexicon.txt").read_text().splitlines()
    assert [x for x in lex if x.startswith("zorblat ")] == ["zorblat Z AO1 R B L AE0 T"]
    d = read_dict_dir(tmp_path / "dict")
    assert "AE0" in d.nonsilence_phones
    with pytest.raises(ValueError, match="zorblat"):
        prepare_dict(["zorblat"], tmp_path / "nog2p", use_g2p=False)


def test_extra_lexicon_overrides_cmudict_and_g2p(repo_root: Path, tmp_path: Path) -> None:
    extra = read_extra_lexicon(repo_root / "local" / "ami" / "extra_lexicon.txt")
    assert extra["MM-HMM"] == [["M", "HH", "M"]]
    counts = prepare_dict(["OKAY", "MM-HMM", "UM"], tmp_path / "dict", extra_prons=extra)
    assert counts["g2p"] == 0  # MM-HMM would otherwise be spelt out by G2P
    lex = (tmp_path / "dict" / "lexicon.txt").read_text().splitlines()
    assert "MM-HMM M HH M" in lex and "UM AH1 M" in lex
    assert not [x for x in lex if x.startswith("HMM ")]  # entries for absent words are not added
    bad = tmp_path / "bad.txt"
    bad.write_text("FOO\n")
    with pytest.raises(ValueError, match=r"bad.txt:1: word 'FOO' has no pronunciation"):
        read_extra_lexicon(bad)


def _good_dict(root: Path) -> Path:
    d = root / "dict"
    d.mkdir()
    (d / "silence_phones.txt").write_text("SIL\nSPN\n")
    (d / "optional_silence.txt").write_text("SIL\n")
    (d / "nonsilence_phones.txt").write_text("AA1 AA0\nB\n")
    (d / "lexicon.txt").write_text("!SIL SIL\n<unk> SPN\nbob B AA1 B\n")
    return d


@pytest.mark.parametrize(
    ("fname", "content", "message"),
    [
        ("lexicon.txt", "!SIL SIL\nbob B AA1 X\n", r"lexicon.txt:2: word 'bob' uses phone 'X'"),
        ("lexicon.txt", "bob B AA1 B\nbob B AA1 B\n", r"lexicon.txt:2: duplicate entry"),
        ("lexicon.txt", "bob\n", r"lexicon.txt:1: word 'bob' has an empty pronunciation"),
        ("lexicon.txt", "<s> SIL\n", r"lexicon.txt:1: reserved word '<s>'"),
        ("nonsilence_phones.txt", "AA1\nB SIL\n", r"nonsilence_phones.txt:2: phone 'SIL' dup"),
        ("optional_silence.txt", "AA1\n", "optional silence 'AA1' is not in silence_phones"),
        ("extra_questions.txt", "SIL Q\n", r"extra_questions.txt:1: phone 'Q'"),
        ("lexicon.txt", b"bob B AA1 B\n\xff\xfe B\n", r"lexicon.txt:2: not valid UTF-8"),
    ],
)
def test_dict_validation_errors(tmp_path: Path, fname: str, content, message: str) -> None:
    d = _good_dict(tmp_path)
    read_dict_dir(d)
    path = d / fname
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DictDirError, match=message):
        read_dict_dir(d)
    assert (
        pykd_main(["prepare-lang", str(d), "<unk>", str(tmp_path / "t"), str(tmp_path / "l")]) == 1
    )


def test_check_lang_text_counts_oovs(built: Path, tmp_path: Path, capsys) -> None:
    text = tmp_path / "text"
    text.write_text("u1 the team could zork\nu2 zork blah the\nu3\n")
    rep = check_lang_text(built / "lang", text)
    assert (rep.tokens, rep.oov_tokens, rep.oovs["zork"], rep.oovs["blah"]) == (7, 3, 2, 1)
    assert rep.oov_word == "<unk>" and abs(rep.rate - 3 / 7) < 1e-12
    assert pykd_main(["check-lang-text", str(built / "lang"), str(text)]) == 0
    out = capsys.readouterr().out
    assert "7 tokens, 3 OOV tokens (42.86%)" in out and "2\tzork" in out
    assert (
        pykd_main(["check-lang-text", "--max-oov-rate", "0.1", str(built / "lang"), str(text)]) == 1
    )


_CXX_SORT = r"""
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>
// Reads "n k1 ... kn" lines; prints the original indices after sorting by key only.
int main(int argc, char** argv) {
  bool heap = argc > 1 && std::strcmp(argv[1], "heap") == 0;
  auto less = [](const std::pair<int, int>& a, const std::pair<int, int>& b) {
    return a.first < b.first;
  };
  int n;
  while (std::scanf("%d", &n) == 1) {
    std::vector<std::pair<int, int>> v(n);
    for (int i = 0; i < n; i++) { std::scanf("%d", &v[i].first); v[i].second = i; }
    if (heap) std::partial_sort(v.begin(), v.end(), v.end(), less);
    else std::sort(v.begin(), v.end(), less);
    for (auto& x : v) std::printf("%d ", x.second);
    std::printf("\n");
  }
}
"""


def test_std_sort_matches_libstdcxx_order(tmp_path: Path) -> None:
    """Tied elements end up exactly where libstdc++'s std::sort / heapsort puts them."""
    rng = random.Random(7)
    cases = [
        [rng.randrange(k) for _ in range(n)]
        for n in (2, 3, 16, 17, 33, 100, 1000, 5000)
        for k in (1, 2, 10, 1000)
    ]
    cases += [list(range(500)) + list(range(500, 0, -1)), [i % 7 for i in range(4096)]]
    for c in cases:  # always: the result is sorted and a permutation
        out = std_sort(list(range(len(c))), key=lambda i, c=c: c[i])
        assert [c[i] for i in out] == sorted(c) and sorted(out) == list(range(len(c)))
    if shutil.which("g++") is None:
        pytest.skip("no g++ to compare tie order with libstdc++")
    (tmp_path / "s.cc").write_text(_CXX_SORT)
    subprocess.run(["g++", "-O1", "-o", str(tmp_path / "s"), str(tmp_path / "s.cc")], check=True)
    inp = "".join(f"{len(c)} " + " ".join(map(str, c)) + "\n" for c in cases)
    for mode in ("sort", "heap"):
        res = subprocess.run(
            [str(tmp_path / "s"), mode], input=inp, capture_output=True, text=True, check=True
        )
        for c, line in zip(cases, res.stdout.splitlines(), strict=True):
            idx = list(range(len(c)))
            if mode == "sort":
                std_sort(idx, key=lambda i, c=c: c[i])
            else:
                _heap_sort(idx, 0, len(c), lambda i, j, c=c: c[i] < c[j])
            assert idx == [int(x) for x in line.split()], (mode, len(c))
