"""HCLG construction (pykd.graph.hclg, utils_kd/mkgraph.sh) against real Kaldi's tri1 graph."""

from __future__ import annotations

import gzip
import math
import os
import shutil
import stat
import subprocess
from pathlib import Path

import kaldi_hmm_gmm
import kaldifst
import numpy as np
import pytest

from pykd.cli import main as pykd_main
from pykd.graph import hclg as g
from pykd.kaldi.model_io import read_topo, read_tree

GMM = "gmm"
N_UTTS = 12  # utterances of tri1/ali.1 checked through both graphs


def _copy_tree_writable(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)
    for root, dirs, files in os.walk(dst):
        for name in dirs + files:
            p = Path(root) / name
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    dst.chmod(dst.stat().st_mode | stat.S_IWUSR)


@pytest.fixture(scope="module")
def setup(kaldi_ref: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """data/lang_full_test (lang_full + lm_full/G.fst) and exp/tri1 (tree, final.mdl) copies."""
    ref = kaldi_ref / GMM
    root = tmp_path_factory.mktemp("graph")
    lang = root / "lang_full_test"
    _copy_tree_writable(ref / "lang_full", lang)
    shutil.copyfile(ref / "lm_full" / "G.fst", lang / "G.fst")
    tri1 = root / "tri1"
    tri1.mkdir()
    for name in ("final.mdl", "tree"):
        shutil.copyfile(ref / "tri1" / name, tri1 / name)
    return {"root": root, "lang": lang, "tri1": tri1, "ref": ref}


@pytest.fixture(scope="module")
def built(setup: dict[str, Path]) -> tuple[Path, g.GraphStats]:
    graph = setup["tri1"] / "graph"
    stats = g.mkgraph(setup["lang"], setup["tri1"], graph)
    return graph, stats


def _arc_table(fst: kaldifst.StdFst) -> g.FstArrays:
    return g.fst_to_arrays(fst)


def test_kaldi_const_fst_reader(setup: dict[str, Path]) -> None:
    """Kaldi's HCLG.fst (ConstFst) parses with the sizes fstinfo reported."""
    a = g.read_const_fst_arrays(setup["ref"] / "tri1" / "graph" / "HCLG.fst")
    info = (setup["ref"] / "tri1" / "graph_HCLG.fstinfo.txt").read_text()
    expect = {
        " ".join(line.split()[:-1]): int(line.split()[-1])
        for line in info.splitlines()
        if line.startswith("# of") and line.split()[-1].isdigit()
    }
    assert a.num_states == expect["# of states"] == 4724
    assert a.num_arcs == expect["# of arcs"] == 11589
    assert int(np.isfinite(a.final).sum()) == expect["# of final states"]
    assert int((a.ilabel == 0).sum()) == expect["# of input epsilons"]
    assert int((a.olabel == 0).sum()) == expect["# of output epsilons"]
    if shutil.which("fstconvert"):  # cross-check with OpenFst's own converter when present
        vec = setup["root"] / "kaldi_hclg_vector.fst"
        subprocess.run(
            [
                "fstconvert",
                "--fst_type=vector",
                str(setup["ref"] / "tri1/graph/HCLG.fst"),
                str(vec),
            ],
            check=True,
        )
        b = g.fst_to_arrays(kaldifst.StdVectorFst.read(str(vec)))
        for name in ("offsets", "ilabel", "olabel", "weight", "nextstate", "final"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_hclg_matches_kaldi(built: tuple[Path, g.GraphStats], setup: dict[str, Path]) -> None:
    """Same states, arcs, labels and weights as Kaldi's tri1/graph/HCLG.fst, state by state."""
    graph, stats = built
    assert stats.sizes["HCLG"] == (4724, 11589)
    ours = _arc_table(g.read_fst(graph / "HCLG.fst"))
    kal = g.read_const_fst_arrays(setup["ref"] / "tri1" / "graph" / "HCLG.fst")
    assert ours.start == kal.start
    assert np.array_equal(ours.offsets, kal.offsets)
    np.testing.assert_allclose(ours.final, kal.final, rtol=0, atol=1e-5)
    raw_ours = np.stack([ours.ilabel, ours.olabel, ours.nextstate], axis=1)
    raw_kal = np.stack([kal.ilabel, kal.olabel, kal.nextstate], axis=1)
    src = ours.src()
    reordered = np.unique(src[np.any(raw_ours != raw_kal, axis=1)])
    # One state lists its arcs in another order than Kaldi (the position of an epsilon arc,
    # from the label-encoding order inside minimize_encoded; see docs/graph.md).
    assert len(reordered) <= 1, reordered
    for a in (ours, kal):
        order = np.lexsort((a.weight, a.nextstate, a.olabel, a.ilabel, a.src()))
        a.ilabel, a.olabel, a.weight, a.nextstate = (
            a.ilabel[order],
            a.olabel[order],
            a.weight[order],
            a.nextstate[order],
        )
    assert np.array_equal(ours.ilabel, kal.ilabel)
    assert np.array_equal(ours.olabel, kal.olabel)
    assert np.array_equal(ours.nextstate, kal.nextstate)
    np.testing.assert_allclose(ours.weight, kal.weight, rtol=0, atol=1e-5)


def _alignments(ref: Path, n: int) -> list[tuple[str, list[int]]]:
    out = []
    with gzip.open(ref / "tri1" / "ali.1.txt.gz", "rt") as f:
        for line in f:
            parts = line.split()
            out.append((parts[0], [int(x) for x in parts[1:]]))
            if len(out) == n:
                break
    return out


def _best_path(hclg: kaldifst.StdVectorFst, tids: list[int]) -> tuple[list[int], float]:
    composed = kaldifst.compose(kaldifst.make_linear_acceptor(tids), hclg)
    ok, _, words, weight = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(composed))
    assert ok and composed.num_states > 0
    return list(words), weight.value


def test_alignment_paths_match_kaldi(
    built: tuple[Path, g.GraphStats], setup: dict[str, Path]
) -> None:
    """Kaldi's tri1 alignments: same best word sequence (= the transcript) and graph cost."""
    graph, _ = built
    ours = g.read_fst(graph / "HCLG.fst")
    kal = g.read_fst(setup["ref"] / "tri1" / "graph" / "HCLG.fst")
    for fst in (ours, kal):
        kaldifst.arcsort(fst, "ilabel")
    words = dict((int(i), w) for w, i in (line.split() for line in (graph / "words.txt").open()))
    text = dict(
        line.rstrip("\n").split(" ", 1) for line in (setup["ref"] / "data/train/text").open()
    )
    for utt, tids in _alignments(setup["ref"], N_UTTS):
        w_ours, c_ours = _best_path(ours, tids)
        w_kal, c_kal = _best_path(kal, tids)
        assert w_ours == w_kal, utt
        assert abs(c_ours - c_kal) < 1e-3, (utt, c_ours, c_kal)
        assert " ".join(words[w] for w in w_ours) == text[utt], utt


def test_side_files_identical(built: tuple[Path, g.GraphStats], setup: dict[str, Path]) -> None:
    graph, _ = built
    ref = setup["ref"] / "tri1" / "graph"
    names = sorted(
        str(p.relative_to(ref)) for p in ref.rglob("*") if p.is_file() and p.name != "HCLG.fst"
    )
    assert "disambig_tid.int" in names and "num_pdfs" in names
    for name in names:
        assert (graph / name).read_bytes() == (ref / name).read_bytes(), name


def test_cache_and_up_to_date(built: tuple[Path, g.GraphStats], setup: dict[str, Path]) -> None:
    graph, _ = built
    lang = setup["lang"]
    for name in ("LG.fst", "CLG_3_1.fst", "ilabels_3_1", "disambig_ilabels_3_1.int"):
        assert (lang / "tmp" / name).stat().st_size > 0, name
    assert (lang / "tmp" / "disambig_ilabels_3_1.int").read_text().split() == ["1", "2", "3"]
    ilabels = g.read_ilabel_info(lang / "tmp" / "ilabels_3_1")
    assert ilabels[:4] == [[], [0], [-195], [-196]]
    assert all(len(x) == 3 for x in ilabels[4:])
    text = setup["root"] / "ilabels.txt"
    g.write_ilabel_info(text, ilabels, binary=False)
    assert g.read_ilabel_info(text) == ilabels
    # Second run: nothing newer than HCLG.fst -> skipped.
    assert g.mkgraph(lang, setup["tri1"], graph).up_to_date
    # A rebuild from the cached LG/CLG gives the same graph.
    other = setup["root"] / "graph_again"
    stats = g.mkgraph(lang, setup["tri1"], other)
    assert stats.sizes["HCLG"] == (4724, 11589)
    assert (other / "HCLG.fst").read_bytes() == (graph / "HCLG.fst").read_bytes()


def test_monophone_graphs(setup: dict[str, Path], kaldi_ref: Path) -> None:
    """Mono: a fresh monophone tree + TransitionModel(ctx, topo), and Kaldi's mono tree/model."""
    lang = setup["lang"]
    topo = read_topo(lang / "topo")
    ctx = kaldi_hmm_gmm.monophone_context_dependency(
        list(topo.phones), topo.get_phone_to_num_pdf_classes()
    )
    tm = kaldi_hmm_gmm.TransitionModel(ctx, topo)
    opts = g.MkgraphOptions(use_cache=False)
    hclg, disambig_tids = g.build_hclg(lang, ctx, tm, opts)
    n, arcs = g.fst_size(hclg)
    assert n > 100 and arcs > n
    # #0, #1 (no right context, so no pseudo-epsilon #-1 as with triphones)
    assert disambig_tids == [tm.num_transition_ids + i for i in (1, 2)]
    a = g.fst_to_arrays(hclg)
    assert a.ilabel.max() <= tm.num_transition_ids  # no disambiguation tids left
    assert np.isfinite(a.final).any()
    # The graph accepts a training sentence (compose with its word acceptor).
    words = dict(line.split() for line in (lang / "words.txt").open())
    sentence = "they could improve the user interface".split()
    acceptor = kaldifst.make_linear_acceptor([int(words[w]) for w in sentence])
    kaldifst.arcsort(hclg, "olabel")
    assert kaldifst.compose(hclg, acceptor).num_states > 0
    # Kaldi's own mono tree and model (text files) through mkgraph.
    mono = setup["root"] / "mono"
    mono.mkdir()
    shutil.copyfile(kaldi_ref / GMM / "mono" / "tree.txt", mono / "tree")
    shutil.copyfile(kaldi_ref / GMM / "mono" / "final.mdl.txt", mono / "final.mdl")
    stats = g.mkgraph(lang, mono, mono / "graph")
    assert stats.sizes["HCLG"][0] > 100
    assert (mono / "graph" / "num_pdfs").read_text() == "118\n"
    assert read_tree(mono / "tree").context_width == 1


def test_push_special_stochastic() -> None:
    """Every state sums to the same total after pushing; path weights are unchanged."""
    fst = kaldifst.compile(
        "0 1 1 1 0.5\n0 2 2 2 1.5\n1 2 3 3 0.25\n1 0 4 4 2.0\n2 0 5 5 0.7\n2 1.0\n1 3.0\n"
    )
    pushed = g.push_special(fst)
    a = g.fst_to_arrays(pushed)
    sums = np.bincount(a.src(), np.exp(-a.weight.astype(float)), minlength=a.num_states)
    sums += np.exp(-a.final.astype(float))
    assert math.log(sums.max() / sums.min()) < 1e-3
    for path in ([1, 3], [2], [1, 4, 2], [1]):
        acc = kaldifst.make_linear_acceptor(path)
        costs = []
        for f in (fst, pushed):
            c = kaldifst.compose(acc, f)
            costs.append(kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(c))[3].value)
        assert abs(costs[0] - costs[1]) < 1e-4, path


def _print(fst: kaldifst.StdFst) -> list[str]:
    return sorted(" ".join(x.split()) for x in fst.to_str().strip().splitlines())


def test_remove_eps_local_examples() -> None:
    """The examples documented with Kaldi's fstrmepslocal."""
    fst = kaldifst.compile("0 1 1 0\n1 2 0 2\n2 0\n")
    assert _print(g.remove_eps_local(fst)) == ["0 1 1 2", "1"]
    fst = kaldifst.compile("0 1 0 0\n0 0\n1 0\n")
    assert _print(g.remove_eps_local(fst, stochastic_in_log=False)) == ["0"]
    # Never more arcs or states; equivalence kept on a random-ish FST.
    fst = kaldifst.compile(
        "0 1 0 0 0.5\n0 2 3 0 1.0\n1 2 0 7 0.25\n1 3 4 0 0.3\n2 3 5 0 0.1\n3 0.0\n"
    )
    out = g.remove_eps_local(fst)
    assert g.fst_size(out)[0] <= 4 and g.fst_size(out)[1] <= 5


def test_errors(setup: dict[str, Path], tmp_path: Path) -> None:
    lang = tmp_path / "lang"
    _copy_tree_writable(setup["lang"], lang)
    with pytest.raises(g.GraphError, match="final.mdl"):
        g.mkgraph(lang, tmp_path / "no_model", tmp_path / "graph")
    # G with <s> on an arc.
    words = dict(line.split() for line in (lang / "words.txt").open())
    G = kaldifst.compile(f"0 1 {words['<s>']} {words['<s>']}\n1 0\n")
    G.write(str(lang / "G.fst"))
    with pytest.raises(g.GraphError, match="<s>"):
        g.mkgraph(lang, setup["tri1"], tmp_path / "graph")
    # A tree that does not belong to the model.
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copyfile(setup["tri1"] / "final.mdl", mixed / "final.mdl")
    shutil.copyfile(setup["ref"] / "mono" / "tree.txt", mixed / "tree")
    with pytest.raises(g.GraphError, match="do not belong"):
        g.mkgraph(setup["lang"], mixed, tmp_path / "graph2")
    with pytest.raises(g.GraphError, match="not an OpenFst"):
        g.read_fst(lang / "words.txt")


def test_cli_fst_info(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert pykd_main(["fst-info", str(setup["ref"] / "tri1/graph/HCLG.fst")]) == 0
    out = capsys.readouterr().out
    assert "# of states\t4724" in out and "# of arcs\t11589" in out


def test_mkgraph_script(setup: dict[str, Path], repo_root: Path) -> None:
    """utils_kd/mkgraph.sh with Kaldi's arguments (needs `pykd mkgraph`)."""
    graph = setup["root"] / "graph_script"
    env = dict(os.environ, PYKD_KALDI="0")
    proc = subprocess.run(
        [
            "bash",
            str(repo_root / "utils_kd" / "mkgraph.sh"),
            "--mono",
            "--self-loop-scale",
            "0.1",
            "--transition-scale",
            "1.0",
            str(setup["lang"]),
            str(setup["tri1"]),
            str(graph),
        ],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "deprecated" in proc.stderr
    assert g.fst_size(g.read_fst(graph / "HCLG.fst")) == (4724, 11589)
    bad = subprocess.run(
        [
            "bash",
            str(repo_root / "utils_kd" / "mkgraph.sh"),
            str(setup["lang"]),
            "/nonexistent",
            str(graph),
        ],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "/nonexistent/final.mdl" in bad.stderr
