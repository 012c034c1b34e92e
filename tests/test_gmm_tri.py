"""Triphone tree building, Kaldi tree files, alignment conversion and train_deltas (builtin).

Real Kaldi files from kaldi-ref/gmm: the mono/tri1 trees (binary + text), the tri1 alignments of
speaker awb (167 utterances) and the lang. kaldi-ref holds no audio, so where features are
needed they are synthetic: per frame, a Gaussian whose mean depends on the Kaldi-aligned phone,
its pdf-class and (for the first/last state) the neighbouring phone.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import kaldi_hmm_gmm as khg
import kaldiio
import numpy as np
import pytest

from pykd.gmm import em
from pykd.gmm.build_tree import (
    ConstantEventMap,
    ContextTree,
    Root,
    SplitEventMap,
    TableEventMap,
    build_tree,
    map_event,
    parse_tree,
    read_roots,
    read_tree_file,
    to_context_dependency,
    tree_to_binary,
    tree_to_text,
)
from pykd.gmm.questions import cluster_phones, compile_questions, read_int_sets
from pykd.gmm.tree_stats import (
    TreeStats,
    accumulate_tree_stats,
    split_to_phones,
    tid_info,
    utterance_events,
)
from pykd.gmm.tri import convert_alignments
from pykd.kaldi import model_io

SIL_PHONES = list(range(1, 11))  # SIL*, SPN* in kaldi-ref's lang_full (context_indep)


@pytest.fixture(scope="module")
def gmm_ref(kaldi_ref: Path) -> Path:
    return kaldi_ref / "gmm"


@pytest.fixture(scope="module")
def topo(gmm_ref: Path) -> khg.HmmTopology:
    return model_io.read_topo(gmm_ref / "lang_full" / "topo")


@pytest.fixture(scope="module")
def tri1(gmm_ref: Path, topo):
    tree = read_tree_file(gmm_ref / "tri1" / "tree")
    tm = khg.TransitionModel(to_context_dependency(tree), topo)
    return tree, tm, tid_info(tm, topo)


@pytest.fixture(scope="module")
def alis(gmm_ref: Path) -> dict[str, np.ndarray]:
    return model_io.read_alignments(gmm_ref / "tri1" / "ali.1.gz")


def synthetic_feats(alis, info, dim: int = 13, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(200, 5, dim)) * 2.0
    ctx = rng.normal(size=(200, dim))
    out = {}
    for utt, ali in alis.items():
        ev = utterance_events(ali, info, 3, 1, SIL_PHONES, utt)
        pc, left, centre, right = ev.T
        x = emb[centre, pc] + (pc == 0)[:, None] * ctx[left] + (pc == 2)[:, None] * ctx[right]
        out[utt] = (x + rng.normal(size=x.shape)).astype(np.float32)
    return out


# ----------------------------------------------------------------------------- tree files


@pytest.mark.parametrize("system", ["mono", "tri1"])
def test_kaldi_tree_text_and_binary_reproduced(gmm_ref: Path, system: str) -> None:
    text = (gmm_ref / system / "tree.txt").read_text()
    tree = parse_tree(text.encode(), "tree.txt")
    assert tree_to_text(tree) == text
    cd = to_context_dependency(tree)
    # kaldi_hmm_gmm's own serialisation of what it loaded = our bytes
    assert np.asarray(cd.__getstate__()[0], np.int8).tobytes() == tree_to_binary(tree)[2:]
    assert parse_tree(tree_to_binary(tree)) == tree
    if system == "tri1":
        binary = (gmm_ref / "tri1" / "tree").read_bytes()
        assert tree_to_binary(tree) == binary
        assert read_tree_file(gmm_ref / "tri1" / "tree") == tree


def test_transition_model_of_parsed_trees(gmm_ref: Path, topo) -> None:
    for system, pdfs, tids, states in (("mono", 118, 1284, 602), ("tri1", 272, 3412, 1666)):
        tree = parse_tree((gmm_ref / system / "tree.txt").read_bytes())
        tm = khg.TransitionModel(to_context_dependency(tree), topo)
        assert (tm.num_pdfs, tm.num_transition_ids, tm.num_transition_states) == (
            pdfs, tids, states,
        )  # fmt: skip
        info = (gmm_ref / system / "hmm-info.txt").read_text()
        assert f"number of pdfs {pdfs}" in info


def test_handmade_eventmap_maps_as_kaldi(topo) -> None:
    # silence/noise phones (1..10): one pdf; others: left context {11..50} asks per pdf-class
    emap = SplitEventMap(
        1,
        tuple(range(1, 11)),
        ConstantEventMap(0),
        SplitEventMap(
            0,
            tuple(range(11, 51)),
            SplitEventMap(-1, (0,), ConstantEventMap(1), ConstantEventMap(2)),
            TableEventMap(-1, (ConstantEventMap(3), ConstantEventMap(4), ConstantEventMap(5))),
        ),
    )
    tree = ContextTree(3, 1, emap)
    cd = to_context_dependency(tree)
    assert (cd.context_width, cd.central_position, cd.num_pdfs) == (3, 1, 6)
    cases = {
        ((0, 1, 0), 3): 0, ((20, 5, 30), 4): 0, ((11, 60, 0), 0): 1, ((50, 60, 0), 2): 2,
        ((51, 60, 0), 0): 3, ((0, 60, 0), 1): 4, ((194, 60, 3), 2): 5,
    }  # fmt: skip
    for (phones, pc), pdf in cases.items():
        assert cd.compute(list(phones), pc) == (True, pdf)
        assert map_event(emap, {-1: pc, 0: phones[0], 1: phones[1], 2: phones[2]}) == pdf
    tm = khg.TransitionModel(cd, topo)
    assert tm.num_pdfs == 6


# ----------------------------------------------------------------------------- alignments


def test_split_to_phones_matches_kaldi_ctm(gmm_ref: Path, tri1, alis) -> None:
    _, _, info = tri1
    ctm: dict[str, list[tuple[int, int, int]]] = {}
    for line in (gmm_ref / "tri1" / "phones.1.ctm.int").read_text().splitlines():
        utt, _ch, start, dur, phone = line.split()
        ctm.setdefault(utt, []).append(
            (int(phone), round(float(start) * 100), round(float(start) * 100 + float(dur) * 100))
        )
    assert set(ctm) == set(alis)
    for utt, ali in alis.items():
        assert split_to_phones(ali, info, utt) == ctm[utt]


def test_convert_alignments_preserves_phones_and_round_trips(gmm_ref: Path, topo, tri1, alis):
    tri_tree, tri_tm, tri_info = tri1
    mono_tree = parse_tree((gmm_ref / "mono" / "tree.txt").read_bytes())
    mono_tm = khg.TransitionModel(to_context_dependency(mono_tree), topo)
    mono_info = tid_info(mono_tm, topo)
    mono = convert_alignments(alis, tri_info, mono_tm, mono_tree, topo)
    for utt, ali in alis.items():
        assert np.array_equal(mono_info.phone[mono[utt]], tri_info.phone[ali])
        assert np.array_equal(mono_info.hmm_state[mono[utt]], tri_info.hmm_state[ali])
    back = convert_alignments(mono, mono_info, tri_tm, tri_tree, topo)
    assert all(np.array_equal(back[u], alis[u]) for u in alis)
    # pdfs of the round trip are Kaldi's own ali-to-pdf output
    ref = {}
    for line in (gmm_ref / "tri1" / "ali.1.pdf.txt").read_text().splitlines()[:20]:
        utt, *pdfs = line.split()
        ref[utt] = np.array(pdfs, dtype=np.int32)
    for utt, pdfs in ref.items():
        assert np.array_equal(tri_info.pdf[back[utt]], pdfs)


# ----------------------------------------------------------------------------- tree building


def test_build_tree_picks_the_obvious_question_first() -> None:
    rng = np.random.default_rng(1)
    events, counts, sums, sumsq = [], [], [], []
    group_a = (3, 4, 5)
    for left in range(1, 9):
        for right in range(1, 9):
            n = 50.0
            mean = np.array([4.0, 0.0]) if left in group_a else np.array([-4.0, 0.0])
            mean = mean + rng.normal(size=2) * 0.3  # right context: small effect only
            x = mean + rng.normal(size=(int(n), 2))
            events.append((1, left, 7, right))
            counts.append(n)
            sums.append(x.sum(0))
            sumsq.append((x * x).sum(0))
    stats = TreeStats(
        3, 1, np.array(events, np.int32), np.array(counts), np.array(sums), np.array(sumsq)
    )
    qs = [(1, 2), (3, 4, 5), (6, 7, 8), (1, 2, 3), (5, 6)]
    questions = {0: qs, 1: qs, 2: qs, -1: [(0,), (0, 1)]}
    res = build_tree(stats, [Root((7,), True, True)], questions, {7: 3}, max_leaves=2)
    assert res.tree.to_pdf == SplitEventMap(
        0, (3, 4, 5), ConstantEventMap(0), ConstantEventMap(1)
    ) or res.tree.to_pdf == SplitEventMap(0, (3, 4, 5), ConstantEventMap(1), ConstantEventMap(0))
    assert res.num_leaves == 2 and res.split_gain > 0
    # a not-split root stays a stub leaf
    res = build_tree(stats, [Root((7,), True, False)], questions, {7: 3}, max_leaves=10)
    assert res.tree.to_pdf == ConstantEventMap(0)


def test_tree_from_kaldi_alignments(gmm_ref: Path, topo, tri1, alis) -> None:
    _, _, info = tri1
    feats = synthetic_feats(alis, info, dim=6)
    stats = accumulate_tree_stats(info, alis, feats.items(), 3, 1, SIL_PHONES)
    assert stats.counts.sum() == sum(len(a) for a in alis.values())
    lang = gmm_ref / "lang_full"
    qs = cluster_phones(stats, read_int_sets(lang / "phones" / "sets.int"))
    qs += read_int_sets(lang / "phones" / "extra_questions.int")
    npc = topo.get_phone_to_num_pdf_classes()
    num_pdf_classes = {p: npc[p] for p in topo.phones}
    compiled = compile_questions(qs, 3, 5)
    roots = read_roots(lang / "phones" / "roots.int")
    res = build_tree(stats, roots, compiled, num_pdf_classes, max_leaves=120)
    assert 60 <= res.num_leaves <= 120 and res.num_leaves % 8 == 0
    assert res.impr_per_frame > 0
    cd = to_context_dependency(res.tree)
    tm = khg.TransitionModel(cd, topo)
    assert tm.num_pdfs == res.num_leaves
    # Kaldi's own ContextDependency::Compute sends every seen event to the leaf we assigned
    for ev, leaf in zip(stats.events, res.leaf_of_event, strict=True):
        assert cd.compute([int(v) for v in ev[1:]], int(ev[0])) == (True, int(leaf))
    # silence is context independent in the stats, so its leaves ignore context
    sil = {cd.compute([left, 1, 30], 2)[1] for left in (0, 11, 20, 100)}
    assert len(sil) == 1


# ----------------------------------------------------------------------------- train_deltas


def _write_mono_ali_dir(tmp: Path, gmm_ref: Path, topo, tri1, alis, feats) -> tuple[Path, Path]:
    """data/train (synthetic features of awb) and a mono ali dir made from Kaldi's alignments."""
    _, _, tri_info = tri1
    data = tmp / "data" / "train"
    data.mkdir(parents=True)
    utts = sorted(alis)
    src = gmm_ref / "data" / "train"
    text = dict(line.split(maxsplit=1) for line in (src / "text").read_text().splitlines())
    (data / "text").write_text("".join(f"{u} {text[u]}\n" for u in utts))
    (data / "utt2spk").write_text("".join(f"{u} awb\n" for u in utts))
    (data / "spk2utt").write_text("awb " + " ".join(utts) + "\n")
    with kaldiio.WriteHelper(f"ark,scp:{data}/feats.ark,{data}/feats.scp") as w:
        for u in utts:
            w(u, feats[u])
    allx = np.concatenate([feats[u] for u in utts]).astype(np.float64)
    cmvn = np.zeros((2, allx.shape[1] + 1))
    cmvn[0, :-1], cmvn[0, -1], cmvn[1, :-1] = allx.sum(0), len(allx), (allx * allx).sum(0)
    with kaldiio.WriteHelper(f"ark,scp:{data}/cmvn.ark,{data}/cmvn.scp") as w:
        w("awb", cmvn)
    mono_tree = parse_tree((gmm_ref / "mono" / "tree.txt").read_bytes())
    mono_tm = khg.TransitionModel(to_context_dependency(mono_tree), topo)
    mono = convert_alignments(alis, tri_info, mono_tm, mono_tree, topo)
    ali_dir = tmp / "exp" / "mono_ali"
    ali_dir.mkdir(parents=True)
    proto = em.global_diag_gmm([feats[u] for u in utts])
    model_io.write_model(ali_dir / "final.mdl", mono_tm, em.init_am(proto, mono_tm.num_pdfs))
    model_io.write_alignments(ali_dir / "ali.1.gz", {u: mono[u] for u in utts})
    (ali_dir / "num_jobs").write_text("1\n")
    (ali_dir / "cmvn_opts").write_text("")
    return data, ali_dir


def test_train_deltas_script_end_to_end(
    repo_root: Path, tmp_path: Path, gmm_ref: Path, topo, tri1, alis
) -> None:
    _, _, tri_info = tri1
    feats = synthetic_feats(alis, tri_info, dim=13)
    data, ali_dir = _write_mono_ali_dir(tmp_path, gmm_ref, topo, tri1, alis, feats)
    exp = tmp_path / "exp" / "tri1"
    env = {k: v for k, v in os.environ.items() if k != "KALDI_ROOT"}
    proc = subprocess.run(
        [
            "steps_kd/train_deltas.sh", "--num-iters", "4", "--realign-iters", "2",
            "--max-iter-inc", "2", "150", "600", str(data), str(gmm_ref / "lang_full"),
            str(ali_dir), str(exp),
        ],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tree = read_tree_file(exp / "tree")
    tm, am = model_io.read_model(exp / "final.mdl")
    assert tm.num_pdfs == am.num_pdfs == tree.num_pdfs
    assert 100 <= tree.num_pdfs <= 150
    assert am.num_gauss > tree.num_pdfs
    new = model_io.read_alignments(exp / "ali.1.gz")
    assert len(new) >= 0.95 * len(alis)
    info = tid_info(tm, topo)
    # the realigned phone sequences are the transcripts' (Kaldi's alignment phones)
    same = sum(
        [p for p, *_ in split_to_phones(new[u], info, u)]
        == [p for p, *_ in split_to_phones(alis[u], tri_info, u)]
        for u in new
    )
    assert same >= 0.9 * len(new)
    assert (exp / "num_jobs").read_text().strip() == "1"
    assert "gmm-align-compiled" in (exp / "log" / "align.2.1.log").read_text()


def test_train_deltas_missing_input_is_a_clear_error(tmp_path: Path, gmm_ref: Path) -> None:
    from pykd.gmm.tri import TriConfig, train_deltas

    data = tmp_path / "data"
    data.mkdir()
    for f in ("feats.scp", "text", "utt2spk", "spk2utt"):
        (data / f).write_text("")
    ali = tmp_path / "ali"
    ali.mkdir()
    with pytest.raises(FileNotFoundError, match="final.mdl"):
        train_deltas(data, gmm_ref / "lang_full", ali, tmp_path / "exp", TriConfig(10, 20))
    (ali / "final.mdl").write_bytes(b"")
    (ali / "num_jobs").write_text("2\n")
    (ali / "ali.1.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"ali\.2\.gz"):
        train_deltas(data, gmm_ref / "lang_full", ali, tmp_path / "exp", TriConfig(10, 20))
