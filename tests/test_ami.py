"""AMI data prep: split lists, NXT parsing, normalisation, exact data dirs on a mini corpus."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import kaldiio
import pytest
from ami_fixture import make_ami_tree

from pykd.cli import main as pykd_main
from pykd.corpora.ami import splits
from pykd.corpora.ami.annotations import AmiError, AnnotationSource, Word, read_words
from pykd.corpora.ami.normalise import normalise_token
from pykd.corpora.ami.prepare import PrepConfig, prepare_ami, split_segment

FILES = ("wav.scp", "segments", "text", "utt2spk", "spk2utt", "reco2file_and_channel", "stats.txt")

# Expected IHM data dirs for the fixture with --max-words 6 ({AMI} = the corpus root).
# ES2002a: agent A (FEE005) wears Headset-1, B (MEE006) Headset-0 (meetings.xml lists B first).
EXPECTED_IHM = {
    "train": {
        "wav.scp": """\
AMI_ES2002a_H00 {AMI}/amicorpus/ES2002a/audio/ES2002a.Headset-0.wav
AMI_ES2002a_H01 {AMI}/amicorpus/ES2002a/audio/ES2002a.Headset-1.wav
""",
        "segments": """\
AMI_ES2002a_H00_MEE006_0000495_0000660 AMI_ES2002a_H00 4.95 6.60
AMI_ES2002a_H00_MEE006_0000660_0000800 AMI_ES2002a_H00 6.60 8.00
AMI_ES2002a_H00_MEE006_0000800_0000870 AMI_ES2002a_H00 8.00 8.70
AMI_ES2002a_H01_FEE005_0000045_0000095 AMI_ES2002a_H01 0.45 0.95
AMI_ES2002a_H01_FEE005_0000155_0000295 AMI_ES2002a_H01 1.55 2.95
AMI_ES2002a_H01_FEE005_0000295_0000335 AMI_ES2002a_H01 2.95 3.35
""",
        "text": """\
AMI_ES2002a_H00_MEE006_0000495_0000660 RIGHT LET'S START THE MEETING
AMI_ES2002a_H00_MEE006_0000660_0000800 WE HAVE A LOT TO COVER
AMI_ES2002a_H00_MEE006_0000800_0000870 TODAY
AMI_ES2002a_H01_FEE005_0000045_0000095 OKAY
AMI_ES2002a_H01_FEE005_0000155_0000295 SO WE'RE THE X M L
AMI_ES2002a_H01_FEE005_0000295_0000335 MM-HMM
""",
        "utt2spk": """\
AMI_ES2002a_H00_MEE006_0000495_0000660 AMI_ES2002a_H00_MEE006
AMI_ES2002a_H00_MEE006_0000660_0000800 AMI_ES2002a_H00_MEE006
AMI_ES2002a_H00_MEE006_0000800_0000870 AMI_ES2002a_H00_MEE006
AMI_ES2002a_H01_FEE005_0000045_0000095 AMI_ES2002a_H01_FEE005
AMI_ES2002a_H01_FEE005_0000155_0000295 AMI_ES2002a_H01_FEE005
AMI_ES2002a_H01_FEE005_0000295_0000335 AMI_ES2002a_H01_FEE005
""",
        "spk2utt": "AMI_ES2002a_H00_MEE006 AMI_ES2002a_H00_MEE006_0000495_0000660 "
        "AMI_ES2002a_H00_MEE006_0000660_0000800 AMI_ES2002a_H00_MEE006_0000800_0000870\n"
        "AMI_ES2002a_H01_FEE005 AMI_ES2002a_H01_FEE005_0000045_0000095 "
        "AMI_ES2002a_H01_FEE005_0000155_0000295 AMI_ES2002a_H01_FEE005_0000295_0000335\n",
        "reco2file_and_channel": """\
AMI_ES2002a_H00 ES2002a.Headset-0 A
AMI_ES2002a_H01 ES2002a.Headset-1 A
""",
        "stats.txt": "meetings 1\nutterances 6\nhours 0.002\nspeakers 2\n",
    },
    "dev": {
        "wav.scp": """\
AMI_ES2011a_H00 {AMI}/amicorpus/ES2011a/audio/ES2011a.Headset-0.wav
AMI_ES2011a_H01 {AMI}/amicorpus/ES2011a/audio/ES2011a.Headset-1.wav
""",
        "segments": """\
AMI_ES2011a_H00_FEO023_0000090_0000210 AMI_ES2011a_H00 0.90 2.10
AMI_ES2011a_H00_FEO023_0000250_0000400 AMI_ES2011a_H00 2.50 4.00
AMI_ES2011a_H01_MEO024_0000490_0000560 AMI_ES2011a_H01 4.90 5.60
""",
        "text": """\
AMI_ES2011a_H00_FEO023_0000090_0000210 HELLO EVERYONE
AMI_ES2011a_H00_FEO023_0000250_0000400 UH-HUH YEAH ANTI TRUST
AMI_ES2011a_H01_MEO024_0000490_0000560 COOL
""",
        "utt2spk": """\
AMI_ES2011a_H00_FEO023_0000090_0000210 AMI_ES2011a_H00_FEO023
AMI_ES2011a_H00_FEO023_0000250_0000400 AMI_ES2011a_H00_FEO023
AMI_ES2011a_H01_MEO024_0000490_0000560 AMI_ES2011a_H01_MEO024
""",
        "spk2utt": "AMI_ES2011a_H00_FEO023 AMI_ES2011a_H00_FEO023_0000090_0000210 "
        "AMI_ES2011a_H00_FEO023_0000250_0000400\n"
        "AMI_ES2011a_H01_MEO024 AMI_ES2011a_H01_MEO024_0000490_0000560\n",
        "reco2file_and_channel": """\
AMI_ES2011a_H00 ES2011a.Headset-0 A
AMI_ES2011a_H01 ES2011a.Headset-1 A
""",
        "stats.txt": "meetings 1\nutterances 3\nhours 0.001\nspeakers 2\n",
    },
    "eval": {
        "wav.scp": """\
AMI_EN2002a_H00 {AMI}/amicorpus/EN2002a/audio/EN2002a.Headset-0.wav
AMI_EN2002a_H01 {AMI}/amicorpus/EN2002a/audio/EN2002a.Headset-1.wav
""",
        # the last segment ends at 10.40 s, past the 10 s recording: clipped to 10.00
        "segments": """\
AMI_EN2002a_H00_MEE071_0000190_0000250 AMI_EN2002a_H00 1.90 2.50
AMI_EN2002a_H00_MEE071_0000950_0001000 AMI_EN2002a_H00 9.50 10.00
AMI_EN2002a_H01_FEO070_0000095_0000185 AMI_EN2002a_H01 0.95 1.85
""",
        "text": """\
AMI_EN2002a_H00_MEE071_0000190_0000250 YEAH
AMI_EN2002a_H00_MEE071_0000950_0001000 BYE
AMI_EN2002a_H01_FEO070_0000095_0000185 I DON'T KNOW
""",
        "utt2spk": """\
AMI_EN2002a_H00_MEE071_0000190_0000250 AMI_EN2002a_H00_MEE071
AMI_EN2002a_H00_MEE071_0000950_0001000 AMI_EN2002a_H00_MEE071
AMI_EN2002a_H01_FEO070_0000095_0000185 AMI_EN2002a_H01_FEO070
""",
        "spk2utt": "AMI_EN2002a_H00_MEE071 AMI_EN2002a_H00_MEE071_0000190_0000250 "
        "AMI_EN2002a_H00_MEE071_0000950_0001000\n"
        "AMI_EN2002a_H01_FEO070 AMI_EN2002a_H01_FEO070_0000095_0000185\n",
        "reco2file_and_channel": """\
AMI_EN2002a_H00 EN2002a.Headset-0 A
AMI_EN2002a_H01 EN2002a.Headset-1 A
""",
        "stats.txt": "meetings 1\nutterances 3\nhours 0.001\nspeakers 2\n",
    },
}

EXPECTED_SDM_TRAIN = {
    "wav.scp": "AMI_ES2002a_SDM {AMI}/amicorpus/ES2002a/audio/ES2002a.Array1-01.wav\n",
    "segments": """\
AMI_ES2002a_SDM_FEE005_0000045_0000095 AMI_ES2002a_SDM 0.45 0.95
AMI_ES2002a_SDM_FEE005_0000155_0000295 AMI_ES2002a_SDM 1.55 2.95
AMI_ES2002a_SDM_FEE005_0000295_0000335 AMI_ES2002a_SDM 2.95 3.35
AMI_ES2002a_SDM_MEE006_0000495_0000660 AMI_ES2002a_SDM 4.95 6.60
AMI_ES2002a_SDM_MEE006_0000660_0000800 AMI_ES2002a_SDM 6.60 8.00
AMI_ES2002a_SDM_MEE006_0000800_0000870 AMI_ES2002a_SDM 8.00 8.70
""",
    "text": """\
AMI_ES2002a_SDM_FEE005_0000045_0000095 OKAY
AMI_ES2002a_SDM_FEE005_0000155_0000295 SO WE'RE THE X M L
AMI_ES2002a_SDM_FEE005_0000295_0000335 MM-HMM
AMI_ES2002a_SDM_MEE006_0000495_0000660 RIGHT LET'S START THE MEETING
AMI_ES2002a_SDM_MEE006_0000660_0000800 WE HAVE A LOT TO COVER
AMI_ES2002a_SDM_MEE006_0000800_0000870 TODAY
""",
    "utt2spk": """\
AMI_ES2002a_SDM_FEE005_0000045_0000095 AMI_ES2002a_SDM_FEE005
AMI_ES2002a_SDM_FEE005_0000155_0000295 AMI_ES2002a_SDM_FEE005
AMI_ES2002a_SDM_FEE005_0000295_0000335 AMI_ES2002a_SDM_FEE005
AMI_ES2002a_SDM_MEE006_0000495_0000660 AMI_ES2002a_SDM_MEE006
AMI_ES2002a_SDM_MEE006_0000660_0000800 AMI_ES2002a_SDM_MEE006
AMI_ES2002a_SDM_MEE006_0000800_0000870 AMI_ES2002a_SDM_MEE006
""",
    "spk2utt": "AMI_ES2002a_SDM_FEE005 AMI_ES2002a_SDM_FEE005_0000045_0000095 "
    "AMI_ES2002a_SDM_FEE005_0000155_0000295 AMI_ES2002a_SDM_FEE005_0000295_0000335\n"
    "AMI_ES2002a_SDM_MEE006 AMI_ES2002a_SDM_MEE006_0000495_0000660 "
    "AMI_ES2002a_SDM_MEE006_0000660_0000800 AMI_ES2002a_SDM_MEE006_0000800_0000870\n",
    "reco2file_and_channel": "AMI_ES2002a_SDM ES2002a.Array1-01 A\n",
    "stats.txt": "meetings 1\nutterances 6\nhours 0.002\nspeakers 2\n",
}


@pytest.fixture(scope="module")
def ami_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ami_tree(tmp_path_factory.mktemp("ami"))


def run_cli(ami: Path, data: Path, *extra: str) -> int:
    return pykd_main(
        ["ami-data-prep", "--ami-dir", str(ami), "--data-dir", str(data), "--max-words", "6"]
        + list(extra)
    )


def assert_dir(out: Path, expected: dict[str, str], ami: Path) -> None:
    for name in FILES:
        got = (out / name).read_text(encoding="utf-8")
        assert got == expected[name].replace("{AMI}", str(ami.resolve())), f"{out}/{name}"


# ---------------------------------------------------------------------------- split lists


def test_official_split_lists() -> None:
    assert len(splits.ALL_MEETINGS) == len(set(splits.ALL_MEETINGS)) == 171
    assert len(splits.DEV) == 18 and len(splits.EVAL) == 16
    assert len(splits.TRAIN) == 171 - 18 - 16 - 1 == 136
    assert set(splits.DEV) == {
        *(f"ES2011{c}" for c in "abcd"),
        *(f"IS1008{c}" for c in "abcd"),
        *(f"TS3004{c}" for c in "abcd"),
        "IB4001", "IB4002", "IB4003", "IB4004", "IB4010", "IB4011",
    }  # fmt: skip
    assert set(splits.EVAL) == {f"{s}{c}" for s in ("EN2002", "ES2004", "IS1009", "TS3003")
                                for c in "abcd"}  # fmt: skip
    assert not set(splits.DEV) & set(splits.EVAL)
    assert not (set(splits.DEV) | set(splits.EVAL)) & set(splits.TRAIN)
    assert "IB4005" in splits.ALL_MEETINGS and splits.split_of("IB4005") is None
    assert {"IS1002a", "IS1005d"}.isdisjoint(splits.ALL_MEETINGS)
    assert splits.split_of("ES2002a") == "train" and splits.split_of("TS3003d") == "eval"


# ---------------------------------------------------------------------------- text + splitting


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("Okay", ["OKAY"]),
        ("we're", ["WE'RE"]),
        ("X_M_L", ["X", "M", "L"]),
        ("Anti-trust", ["ANTI", "TRUST"]),
        ("mm-hmm", ["MM-HMM"]),
        ("Uh-huh", ["UH-HUH"]),
        ("'cause", ["'CAUSE"]),
        ("um,I", ["UM", "I"]),
        ("'", []),
        ("-", []),
    ],
)
def test_normalise_token(token: str, words: list[str]) -> None:
    assert normalise_token(token) == words


def _w(text: str, start: float, end: float, punc: bool = False) -> Word:
    return Word(id=text, tag="w", text=text, start=start, end=end, punc=punc)


def test_split_prefers_sentence_end_then_comma_then_pause() -> None:
    items = [
        _w("a", 0.0, 0.5),
        _w(",", 0.5, 0.5, punc=True),
        _w("b", 0.6, 1.0),
        _w(".", 1.0, 1.0, punc=True),
        _w("c", 1.4, 1.6),
        _w("d", 2.0, 2.2),
    ]
    assert split_segment(items, 0.0, 2.5, max_words=4) == [(["A", "B", "C", "D"], 0.0, 2.5)]
    # sentence end first, then (right half) the longest pause, left half at the comma
    assert split_segment(items, 0.0, 2.5, max_words=1) == [
        (["A"], 0.0, 0.55),
        (["B"], 0.55, 1.2),
        (["C"], 1.2, 1.8),
        (["D"], 1.8, 2.5),
    ]


def test_words_file_keeps_id_counter_of_non_words(ami_tree: Path) -> None:
    src = AnnotationSource(ami_tree / "ami_public_manual_1.6.2")
    words = read_words(src, "words/ES2002a.A.words.xml")
    assert [w.tag for w in words[:3]] == ["w", "w", "vocalsound"]
    assert words[6].trunc and words[1].punc and not words[1].is_lexical
    assert words[10].id == "ES2002a.A.words10" and words[10].start == 3.3


# ---------------------------------------------------------------------------- data dirs


def test_ihm_data_dirs_exact(ami_tree: Path, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.INFO):
        assert run_cli(ami_tree, tmp_path / "data") == 0
    for split, expected in EXPECTED_IHM.items():
        assert_dir(tmp_path / "data" / "ihm" / split, expected, ami_tree)
    assert "meetings in no split, left out: IB4005" in caplog.text
    assert "1 empty" in caplog.text  # ES2002a A's vocal-sound-only segment
    assert "IB4005" not in "".join(
        p.read_text() for p in (tmp_path / "data").rglob("*") if p.is_file()
    )


def test_sdm_data_dirs(ami_tree: Path, tmp_path: Path) -> None:
    assert run_cli(ami_tree, tmp_path / "data", "--mic", "sdm1") == 0
    assert_dir(tmp_path / "data" / "sdm1" / "train", EXPECTED_SDM_TRAIN, ami_tree)
    for split in ("dev", "eval"):  # same utterances as IHM, on the array recording
        ihm_text = EXPECTED_IHM[split]["text"].splitlines()
        sdm_text = (tmp_path / "data" / "sdm1" / split / "text").read_text().splitlines()
        assert sorted(line.split(" ", 1)[1] for line in ihm_text) == sorted(
            line.split(" ", 1)[1] for line in sdm_text
        )
        assert all("_SDM_" in line for line in sdm_text)


def test_zip_annotations_give_same_output(tmp_path: Path) -> None:
    ami = make_ami_tree(tmp_path / "ami", zipped=True)
    assert (ami / "ami_public_manual_1.6.2.zip").is_file()
    assert not (ami / "ami_public_manual_1.6.2").exists()
    assert run_cli(ami, tmp_path / "data") == 0
    for split, expected in EXPECTED_IHM.items():
        assert_dir(tmp_path / "data" / "ihm" / split, expected, ami)


def test_rerun_is_identical_and_segments_load(ami_tree: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    report = prepare_ami(ami_tree, data, PrepConfig(max_words=6))
    first = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    prepare_ami(ami_tree, data, PrepConfig(max_words=6))
    assert first == {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    assert report.no_split == ["IB4005"]
    assert report.counts["dropped_empty"] == 1 and report.counts["split_pieces_added"] == 3
    assert len(report.missing_meetings["dev"]) == 17
    out = data / "ihm" / "train"
    audio = kaldiio.load_scp(str(out / "wav.scp"), segments=str(out / "segments"))
    segs = {line.split()[0]: line.split()[2:] for line in open(out / "segments")}
    for utt, (start, end) in segs.items():
        rate, samples = audio[utt]
        assert rate == 16000
        assert abs(len(samples) - (float(end) - float(start)) * rate) <= 1


def test_keep_truncated_and_default_max_words(ami_tree: Path, tmp_path: Path) -> None:
    prepare_ami(ami_tree, tmp_path, PrepConfig(keep_truncated=True))
    text = (tmp_path / "ihm" / "dev" / "text").read_text()
    assert "AMI_ES2011a_H00_FEO023_0000090_0000210 HELLO EV EVERYONE\n" in text
    train = (tmp_path / "ihm" / "train" / "text").read_text()  # 12 words < 30: not split
    assert (
        "AMI_ES2002a_H00_MEE006_0000495_0000870 RIGHT LET'S START THE MEETING WE HAVE A LOT TO "
        "COVER TODAY\n" in train
    )
    assert "AMI_ES2002a_H01_FEE005_0000155_0000335 SO WE'RE TH THE X M L MM-HMM\n" in train


# ---------------------------------------------------------------------------- errors


def test_malformed_xml_names_the_file(tmp_path: Path, caplog) -> None:
    ami = make_ami_tree(tmp_path / "ami")
    bad = ami / "ami_public_manual_1.6.2" / "segments" / "ES2011a.B.segments.xml"
    bad.write_text("<nite:root><segment transcriber_start='1'>", encoding="utf-8")
    with pytest.raises(AmiError, match=r"ES2011a\.B\.segments\.xml: malformed XML"):
        prepare_ami(ami, tmp_path / "data", PrepConfig())
    with caplog.at_level(logging.ERROR):
        assert run_cli(ami, tmp_path / "data") == 1
    assert str(bad) in caplog.text


def test_missing_headset_is_reported_and_dropped(tmp_path: Path, caplog) -> None:
    ami = make_ami_tree(tmp_path / "ami")
    (ami / "amicorpus" / "EN2002a" / "audio" / "EN2002a.Headset-1.wav").unlink()
    with caplog.at_level(logging.WARNING):
        report = prepare_ami(ami, tmp_path / "data", PrepConfig())
    assert report.missing_audio == ["EN2002a.Headset-1"]
    assert report.counts["dropped_missing_audio"] == 1
    assert "meeting EN2002a channel Headset-1 (speaker FEO070): missing" in caplog.text
    out = tmp_path / "data" / "ihm" / "eval"
    assert "FEO070" not in (out / "text").read_text()
    assert (out / "wav.scp").read_text().splitlines() == [
        f"AMI_EN2002a_H00 {ami.resolve()}/amicorpus/EN2002a/audio/EN2002a.Headset-0.wav"
    ]


def test_missing_annotations_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "amicorpus").mkdir()
    with pytest.raises(FileNotFoundError, match="ami_public_manual"):
        prepare_ami(tmp_path, tmp_path / "data", PrepConfig())


# ---------------------------------------------------------------------------- shell wrapper


def test_shell_wrapper_validates(ami_tree: Path, tmp_path: Path, repo_root: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KALDI_ROOT"}
    res = subprocess.run(
        ["local/ami/ami_data_prep.sh", "--mic", "sdm1", str(ami_tree), str(tmp_path / "d")],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr + res.stdout
    assert "Successfully validated" in res.stdout + res.stderr
    assert (tmp_path / "d" / "local" / "ami" / "data_prep_sdm1.log").is_file()
    lines = (tmp_path / "d" / "sdm1" / "dev" / "text").read_text().splitlines()
    assert lines[0] == "AMI_ES2011a_SDM_FEO023_0000090_0000210 HELLO EVERYONE"


def test_prepare_dict_wrapper_word_list(ami_tree: Path, tmp_path: Path, repo_root: Path) -> None:
    prepare_ami(ami_tree, tmp_path / "data", PrepConfig(max_words=6))
    res = subprocess.run(
        ["local/ami/ami_prepare_dict.sh", str(tmp_path / "data/ihm/train"), str(tmp_path / "dict")],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr + res.stdout
    words = (tmp_path / "ami_train_words.txt").read_text().splitlines()
    assert words[0] == "THE 2" and "WE'RE 1" in words and "MM-HMM 1" in words
    assert len(words) == 19
    lexicon = (tmp_path / "dict" / "lexicon.txt").read_text().splitlines()
    assert {line.split()[0] for line in lexicon} >= {w.split()[0] for w in words}
