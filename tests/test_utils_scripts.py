"""pykd's Kaldi-compatible utils/ scripts (utils_kd/), run as subprocesses on small data dirs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from pykd.io.datadir import DataDirError
from pykd.io.validate import validate_data_dir

REPO = Path(__file__).resolve().parents[1]
UTILS = REPO / "utils_kd"
ENV = {
    **os.environ,
    "PATH": f"{Path(sys.executable).parent}:{UTILS}:{os.environ.get('PATH', '')}",
    "LC_ALL": "C",
}


def run(*args: str | Path, cwd: Path | None = None, input: str | None = None, check: bool = True):
    """Run a utils script; return the CompletedProcess (text mode)."""
    cmd = [str(UTILS / str(args[0])), *map(str, args[1:])]
    proc = subprocess.run(cmd, cwd=cwd, input=input, capture_output=True, text=True, env=ENV)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def fail(*args: str | Path, **kw) -> str:
    """Run a script that must fail; return its stderr."""
    proc = run(*args, check=False, **kw)
    assert proc.returncode != 0, f"{args} should have failed:\n{proc.stdout}"
    return proc.stderr


def table(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, rest = line.partition(" ")
        out[key] = rest
    return out


def write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


# Speakers with 1..4 utterances; speaker ids are prefixes of utterance ids.
SPEAKERS = {"spkA": 3, "spkB": 1, "spkC": 4, "spkD": 2}


def make_data(d: Path, *, segments: bool = False) -> Path:
    """A complete, valid data dir (text, feats, cmvn, utt2dur; wav.scp or segments)."""
    d.mkdir(parents=True, exist_ok=True)
    utts = [(f"{s}-u{i}", s) for s, n in SPEAKERS.items() for i in range(n)]
    write(d / "utt2spk", [f"{u} {s}" for u, s in utts])
    write(d / "spk2utt", [f"{s} " + " ".join(u for u, t in utts if t == s) for s in SPEAKERS])
    write(d / "text", [f"{u} hello world {i}" for i, (u, _) in enumerate(utts)])
    write(d / "feats.scp", [f"{u} feats.ark:{10 * i}" for i, (u, _) in enumerate(utts)])
    write(d / "cmvn.scp", [f"{s} cmvn.ark:{i}" for i, s in enumerate(SPEAKERS)])
    write(d / "utt2dur", [f"{u} 1.5" for u, _ in utts])
    if segments:  # one recording per speaker
        write(d / "segments", [f"{u} rec-{s} {i}.0 {i}.5" for u, s in utts for i in [int(u[-1])]])
        write(d / "wav.scp", [f"rec-{s} /audio/{s}.wav" for s in SPEAKERS])
        write(d / "reco2file_and_channel", [f"rec-{s} {s} A" for s in SPEAKERS])
    else:
        write(d / "wav.scp", [f"{u} /audio/{u}.wav" for u, _ in utts])
    return d


ALL_UTTS = {f"{s}-u{i}" for s, n in SPEAKERS.items() for i in range(n)}


# ------------------------------------------------------------------------------------- run.pl


def test_run_pl_job_range_and_log_format(tmp_path: Path) -> None:
    run("run.pl", "JOB=1:3", tmp_path / "log/x.JOB.log", "echo", "job", "JOB", "done")
    for job in (1, 2, 3):
        lines = (tmp_path / f"log/x.{job}.log").read_text().splitlines()
        assert lines[0] == f"# echo job {job} done"
        assert lines[1].startswith("# Started at ")
        assert lines[2] == "#"
        assert lines[3] == f"job {job} done"
        assert lines[4].startswith("# Accounting: time=") and lines[4].endswith(" threads=1")
        assert lines[5].startswith("# Ended (code 0) at ")


def test_run_pl_other_variable_pipes_quotes_and_ignored_options(tmp_path: Path) -> None:
    run(
        "run.pl",
        "--mem",
        "4G",
        "--num-threads",
        "2",
        "SPLIT=2:3",
        "--gpu",
        "1",
        tmp_path / "s.SPLIT.log",
        "echo",
        "piece SPLIT of a b",
        "|",
        "tr",
        "a-z",
        "A-Z",
    )
    assert not (tmp_path / "s.1.log").exists()
    text = (tmp_path / "s.3.log").read_text()
    assert '# echo "piece 3 of a b" | tr a-z A-Z' in text
    assert "PIECE 3 OF A B\n" in text


def test_run_pl_failure_reports_count_and_log(tmp_path: Path) -> None:
    log = tmp_path / "log" / "f.JOB.log"
    err = fail("run.pl", "JOB=1:3", log, "test", "JOB", "-ne", "2")
    assert f"run.pl: 1 / 3 failed, log is in {tmp_path}/log/f.*.log" in err
    assert "# Ended (code 1) at" in (tmp_path / "log/f.2.log").read_text()
    assert "# Ended (code 0) at" in (tmp_path / "log/f.3.log").read_text()
    err = fail("run.pl", tmp_path / "one.log", "exit", "3")
    assert f"run.pl: job failed, log is in {tmp_path / 'one.log'}" in err
    assert "# Ended (code 3) at" in (tmp_path / "one.log").read_text()
    err = fail("run.pl", "JOB=1:2", tmp_path / "same.log", "true")
    assert "just one log file" in err
    assert "Usage" in fail("run.pl", "JOB=1:2")


def test_run_pl_runs_in_parallel_and_max_jobs_run(tmp_path: Path) -> None:
    # Barrier: each job waits until all 3 have started, so this only passes if they run at once.
    (tmp_path / "barrier.sh").write_text(
        'touch "$1/b.$2"; for i in $(seq 100); do\n'
        '  [ "$(ls "$1" | grep -c "^b[.]")" -ge 3 ] && exit 0; sleep 0.05\ndone\nexit 1\n'
    )
    run(
        "run.pl",
        "JOB=1:3",
        tmp_path / "log/b.JOB.log",
        "bash",
        tmp_path / "barrier.sh",
        tmp_path,
        "JOB",
    )
    # With --max-jobs-run 1 no two jobs overlap.
    (tmp_path / "probe.sh").write_text(
        'mkdir "$1/running.$2"; ls -d "$1"/running.* | wc -l >> "$1/counts"; sleep 0.1\n'
        'rmdir "$1/running.$2"\n'
    )
    run(
        "run.pl",
        "--max-jobs-run",
        "1",
        "JOB=1:4",
        tmp_path / "log/p.JOB.log",
        "bash",
        tmp_path / "probe.sh",
        tmp_path,
        "JOB",
    )
    counts = (tmp_path / "counts").read_text().split()
    assert counts == ["1"] * 4
    err = fail("run.pl", "--max-jobs-run", "0", "JOB=1:2", tmp_path / "z.JOB.log", "true")
    assert "--max-jobs-run" in err


# ------------------------------------------------------------------------------ parse_options


def _opts_script(tmp_path: Path) -> Path:
    script = tmp_path / "opts.sh"
    script.write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\nhelp_message='Usage: opts.sh [--num-jobs N]'\n"
        "num_jobs=4\nlm_order=3\nuse_gpu=false\nname=\n"
        f". {UTILS}/parse_options.sh\n"
        'echo "$num_jobs|$lm_order|$use_gpu|$name|$*"\n'
    )
    script.chmod(0o755)
    return script


def _bash(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, env=ENV, cwd=script.parent
    )


def test_parse_options(tmp_path: Path) -> None:
    script = _opts_script(tmp_path)
    assert _bash(script).stdout == "4|3|false||\n"
    out = _bash(script, "--num-jobs", "8", "--lm-order=5", "--use-gpu", "true", "a", "--x")
    assert out.stdout == "8|5|true||a --x\n"
    assert _bash(script, "--name=a b", "rest").stdout == "4|3|false|a b|rest\n"
    bad = _bash(script, "--nope", "1")
    assert bad.returncode != 0 and "unknown option --nope" in bad.stderr
    bad = _bash(script, "--use-gpu", "yes")
    assert bad.returncode != 0 and "expects true or false" in bad.stderr
    bad = _bash(script, "--num-jobs")
    assert bad.returncode != 0 and "needs a value" in bad.stderr
    (tmp_path / "my.conf").write_text("num_jobs=16\nuse_gpu=true\n")
    assert _bash(script, "--config", "my.conf", "--lm-order", "2").stdout == "16|2|true||\n"
    helped = _bash(script, "--help")
    assert helped.returncode == 0 and "Usage: opts.sh" in helped.stderr


# ---------------------------------------------------------------------------------- split_data


@pytest.mark.parametrize("segments", [False, True])
def test_split_data_by_speaker(tmp_path: Path, segments: bool) -> None:
    d = make_data(tmp_path / "d", segments=segments)
    run("split_data.sh", d, 3)
    union: dict[str, str] = {}
    spk_piece: dict[str, int] = {}
    for k in (1, 2, 3):
        piece = d / "split3" / str(k)
        run("validate_data_dir.sh", piece)  # every piece is a consistent data dir
        u2s = table(piece / "utt2spk")
        assert u2s and not (set(u2s) & set(union))
        union.update(u2s)
        for spk in set(u2s.values()):
            assert spk not in spk_piece, f"speaker {spk} split across pieces"
            spk_piece[spk] = k
        assert set(table(piece / "cmvn.scp")) == set(u2s.values())
        if segments:
            recos = {v.split()[0] for v in table(piece / "segments").values()}
            assert set(table(piece / "wav.scp")) == recos
            assert set(table(piece / "reco2file_and_channel")) == recos
    assert union == table(d / "utt2spk")


def test_split_data_per_utt_reuse_and_errors(tmp_path: Path) -> None:
    d = make_data(tmp_path / "d")
    run("split_data.sh", "--per-utt", d, 4)
    sizes = [len(table(d / "split4utt" / str(k) / "utt2spk")) for k in range(1, 5)]
    assert sizes == [3, 3, 2, 2]
    union = {}
    for k in range(1, 5):
        union.update(table(d / "split4utt" / str(k) / "text"))
    assert union == table(d / "text")
    err = fail("split_data.sh", d, 5)
    assert "only 4 speakers" in err
    assert "Usage" in fail("split_data.sh", d)
    # Up to date: a second call rewrites nothing; a newer source file triggers a re-split.
    run("split_data.sh", d, 2)
    target = d / "split2" / "1" / "text"
    mtime = target.stat().st_mtime_ns
    time.sleep(0.01)
    run("split_data.sh", d, 2)
    assert target.stat().st_mtime_ns == mtime
    text = table(d / "text")
    text["spkA-u0"] = "changed"
    write(d / "text", [f"{k} {v}" for k, v in text.items()])
    future = time.time() + 5
    os.utime(d / "text", (future, future))
    run("split_data.sh", d, 2)
    assert table(target)["spkA-u0"] == "changed"


# ------------------------------------------------------------------------------------ validate


def _swap_first_lines(path: Path) -> None:
    lines = path.read_text().splitlines()
    lines[0], lines[1] = lines[1], lines[0]
    write(path, lines)


def _unprefixed_speakers(d: Path) -> None:
    write(d / "utt2spk", ["a-1 b", "b-1 a"])
    write(d / "spk2utt", ["a b-1", "b a-1"])


@pytest.mark.parametrize(
    ("breaker", "expected"),
    [
        (lambda d: _swap_first_lines(d / "text"), "not sorted in C order: key 'spkA-u0'"),
        (lambda d: _swap_first_lines(d / "utt2spk"), "utt2spk:2: not sorted"),
        (
            lambda d: write(d / "text", (d / "text").read_text().splitlines()[1:]),
            "no entry for utterance 'spkA-u0'",
        ),
        (
            lambda d: write(d / "text", ["spkA-u0"] + (d / "text").read_text().splitlines()[1:]),
            "utterance 'spkA-u0' has an empty transcript",
        ),
        (
            lambda d: write(
                d / "spk2utt",
                ["spkA spkA-u0 spkA-u1", "spkB spkA-u2 spkB-u0"]
                + (d / "spk2utt").read_text().splitlines()[2:],
            ),
            "utterance 'spkA-u2' has speaker 'spkA' in utt2spk but 'spkB' in spk2utt",
        ),
        (
            lambda d: write(d / "spk2utt", (d / "spk2utt").read_text().splitlines()[1:]),
            "utterance 'spkA-u0' (speaker 'spkA') is missing from spk2utt",
        ),
        (
            lambda d: write(
                d / "feats.scp", (d / "feats.scp").read_text().splitlines() + ["zzz x.ark:1"]
            ),
            "feats.scp: utterance 'zzz' is not in utt2spk",
        ),
        (
            lambda d: write(d / "cmvn.scp", (d / "cmvn.scp").read_text().splitlines()[:-1]),
            "cmvn.scp: no entry for speaker 'spkD'",
        ),
        (
            lambda d: write(
                d / "utt2dur", (d / "utt2dur").read_text().splitlines() + ["spkD-u1 2.0"]
            ),
            "duplicate key 'spkD-u1'",
        ),
        (lambda d: (d / "wav.scp").unlink(), "no such file wav.scp"),
        (_unprefixed_speakers, "sorted first on speaker-id, at utterance 'a-1'"),
    ],
)
def test_validate_catches_errors(tmp_path: Path, breaker, expected: str) -> None:
    d = make_data(tmp_path / "d")
    run("validate_data_dir.sh", d)
    breaker(d)
    err = fail("validate_data_dir.sh", d)
    assert expected in err
    with pytest.raises(DataDirError, match="spk|utt|wav|sorted|a-1"):
        validate_data_dir(d)


def test_validate_segments_and_options(tmp_path: Path) -> None:
    d = make_data(tmp_path / "d", segments=True)
    out = run("validate_data_dir.sh", d).stdout
    assert "Successfully validated" in out
    write(d / "wav.scp", (d / "wav.scp").read_text().splitlines()[1:])  # drop rec-spkA
    with pytest.raises(DataDirError, match="utterance 'spkA-u0': recording 'rec-spkA' is not in"):
        validate_data_dir(d, no_feats=True)
    e = make_data(tmp_path / "e")
    for name in ("feats.scp", "text", "wav.scp"):
        (e / name).unlink()
    assert "no such file text" in fail("validate_data_dir.sh", e)
    assert "no such file wav.scp" in fail("validate_data_dir.sh", "--no-text", e)
    assert "no such file feats.scp" in fail("validate_data_dir.sh", "--no-text", "--no-wav", e)
    run("validate_data_dir.sh", "--no-feats", "--no-text", "--no-wav", e)
    write(e / "text", ["spkA-u0 only one"])  # --no-text: text need not exist, but is checked
    err = fail("validate_data_dir.sh", "--no-text", "--no-wav", "--no-feats", e)
    assert "no entry for utterance 'spkA-u1'" in err
    (e / "text").unlink()
    write(e / "utt2spk", ["a-1 b", "b-1 a"])
    write(e / "spk2utt", ["a b-1", "b a-1"])
    (e / "cmvn.scp").unlink()
    (e / "utt2dur").unlink()
    run("validate_data_dir.sh", "--no-feats", "--no-text", "--no-wav", "--no-spk-sort", e)
    assert "unknown option" in fail("validate_data_dir.sh", "--bogus", e)


# ------------------------------------------------------------------------------- fix_data_dir


def test_fix_data_dir(tmp_path: Path) -> None:
    d = make_data(tmp_path / "d", segments=True)
    orig_text = (d / "text").read_text()
    feats = (d / "feats.scp").read_text().splitlines()
    write(d / "feats.scp", [f for f in feats if not f.startswith("spkC-u2 ")][::-1])  # unsorted
    write(d / "text", orig_text.splitlines() + ["", "zzz-extra some words"])
    cmvn = (d / "cmvn.scp").read_text().splitlines()
    write(d / "cmvn.scp", [c for c in cmvn if not c.startswith("spkB ")])  # speaker B goes
    with pytest.raises(DataDirError):
        validate_data_dir(d)
    out = run("fix_data_dir.sh", d).stdout
    assert f"kept {len(ALL_UTTS) - 2} utterances out of {len(ALL_UTTS)}" in out
    validate_data_dir(d)
    kept = set(table(d / "utt2spk"))
    assert kept == ALL_UTTS - {"spkC-u2", "spkB-u0"}
    assert "rec-spkB" not in table(d / "wav.scp")
    assert "rec-spkB" not in table(d / "reco2file_and_channel")
    assert (d / ".backup" / "text").read_text() == orig_text + "\nzzz-extra some words\n"
    assert "kept all" in run("fix_data_dir.sh", d).stdout  # idempotent


# ------------------------------------------------------------------ filter_scp, sym2int, ...


def test_filter_scp(tmp_path: Path) -> None:
    write(tmp_path / "ids", ["b extra", "c"])
    write(tmp_path / "in", ["a 1 x", "b 2 c", "c 3 a", "d 4 b"])
    assert run("filter_scp.pl", tmp_path / "ids", tmp_path / "in").stdout == "b 2 c\nc 3 a\n"
    out = run("filter_scp.pl", "--exclude", tmp_path / "ids", tmp_path / "in").stdout
    assert out == "a 1 x\nd 4 b\n"
    out = run("filter_scp.pl", "-f", "3", tmp_path / "ids", input="a 1 x\nb 2 c\nd 4 b\n").stdout
    assert out == "b 2 c\nd 4 b\n"
    assert "Usage" in fail("filter_scp.pl")


def test_sym2int_int2sym_round_trip_and_oov(tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    write(words, ["<eps> 0", "<unk> 1", "hello 2", "world 3"])
    text = "utt1 hello world\nutt2 world hello hello\n"
    ints = run("sym2int.pl", "-f", "2-", words, input=text).stdout
    assert ints == "utt1 2 3\nutt2 3 2 2\n"
    (tmp_path / "ints").write_text(ints)
    assert run("int2sym.pl", "-f", "2-", words, tmp_path / "ints").stdout == text
    oov = run("sym2int.pl", "--map-oov", "<unk>", "-f", "2-", words, input="u hello moon\n")
    assert oov.stdout == "u 2 1\n" and "Replaced 1 instances of OOVs" in oov.stderr
    err = fail("sym2int.pl", "-f", "2-", words, input="u1 hello\nu2 hello moon\n")
    assert "undefined symbol 'moon'" in err and "-:2" in err
    err = fail("int2sym.pl", "-f", "2-", words, input="u1 2 7\n")
    assert "undefined symbol '7'" in err and "-:1" in err
    assert run("sym2int.pl", "-f", "1-2", words, input="hello world world\n").stdout == (
        "2 3 world\n"
    )


def test_spk2utt_conversions_and_shuffle(tmp_path: Path) -> None:
    u2s = "a-1 a\na-2 a\nb-1 b\n"
    s2u = run("utt2spk_to_spk2utt.pl", input=u2s).stdout
    assert s2u == "a a-1 a-2\nb b-1\n"
    assert run("spk2utt_to_utt2spk.pl", input=s2u).stdout == u2s
    lines = "".join(f"line{i}\n" for i in range(50))
    one = run("shuffle_list.pl", "--srand", "3", input=lines).stdout
    assert one == run("shuffle_list.pl", "--srand", "3", input=lines).stdout
    assert one != lines and sorted(one.splitlines()) == sorted(lines.splitlines())
    assert one != run("shuffle_list.pl", "--srand", "4", input=lines).stdout


# ------------------------------------------------------------------ subset / combine / copy


def test_subset_data_dir(tmp_path: Path) -> None:
    d = make_data(tmp_path / "d", segments=True)
    utts = sorted(ALL_UTTS)
    run("subset_data_dir.sh", "--first", d, 3, tmp_path / "first")
    assert list(table(tmp_path / "first/utt2spk")) == utts[:3]
    run("subset_data_dir.sh", "--last", d, 2, tmp_path / "last")
    assert list(table(tmp_path / "last/utt2spk")) == utts[-2:]
    run("subset_data_dir.sh", d, 5, tmp_path / "spread")
    assert len(table(tmp_path / "spread/utt2spk")) == 5
    write(tmp_path / "ulist", ["spkC-u1", "spkA-u2", "nobody"])
    run("subset_data_dir.sh", "--utt-list", tmp_path / "ulist", d, tmp_path / "ul")
    assert set(table(tmp_path / "ul/utt2spk")) == {"spkC-u1", "spkA-u2"}
    write(tmp_path / "slist", ["spkD"])
    run("subset_data_dir.sh", "--spk-list", tmp_path / "slist", d, tmp_path / "sl")
    assert set(table(tmp_path / "sl/utt2spk")) == {"spkD-u0", "spkD-u1"}
    assert set(table(tmp_path / "sl/wav.scp")) == {"rec-spkD"}
    run("subset_data_dir.sh", "--speakers", d, 4, tmp_path / "spk")
    spk_utts = table(tmp_path / "spk/utt2spk")
    assert len(spk_utts) >= 4
    for spk in set(spk_utts.values()):  # whole speakers only
        assert sum(v == spk for v in spk_utts.values()) == SPEAKERS[spk]
    run("subset_data_dir.sh", "--per-spk", d, 1, tmp_path / "ps")
    assert sorted(table(tmp_path / "ps/utt2spk").values()) == sorted(SPEAKERS)
    for sub in ("first", "last", "spread", "ul", "sl", "spk", "ps"):
        validate_data_dir(tmp_path / sub)
    assert "Usage" in fail("subset_data_dir.sh", d, tmp_path / "x")
    assert "invalid number" in fail("subset_data_dir.sh", d, "many", tmp_path / "x")
    assert "more utterances" in fail("subset_data_dir.sh", d, 11, tmp_path / "x")


def test_copy_and_combine_data_dir(tmp_path: Path) -> None:
    d = make_data(tmp_path / "d", segments=True)
    run("copy_data_dir.sh", "--utt-prefix", "x-", "--spk-prefix", "x-", d, tmp_path / "c")
    c = tmp_path / "c"
    assert set(table(c / "utt2spk")) == {f"x-{u}" for u in ALL_UTTS}
    assert set(table(c / "cmvn.scp")) == {f"x-{s}" for s in SPEAKERS}
    assert table(c / "wav.scp") == table(d / "wav.scp")  # recording ids unchanged
    assert table(c / "segments")["x-spkA-u1"] == "rec-spkA 1.0 1.5"
    clash = make_data(tmp_path / "clash")
    write(clash / "text", ["spkA-u0 other words"] + (d / "text").read_text().splitlines()[1:])
    err = fail("combine_data.sh", tmp_path / "dup", d, clash)
    assert "duplicate key 'spkA-u0'" in err
    assert "is also a source" in fail("combine_data.sh", d, c, d)
    run("combine_data.sh", tmp_path / "all", d, c)
    both = tmp_path / "all"
    validate_data_dir(both)
    assert set(table(both / "utt2spk")) == ALL_UTTS | {f"x-{u}" for u in ALL_UTTS}
    assert len(table(both / "text")) == 2 * len(ALL_UTTS)
    # A source without segments gets whole-recording segments.
    plain = make_data(tmp_path / "plain")
    run("copy_data_dir.sh", "--utt-prefix", "p-", "--spk-prefix", "p-", plain, tmp_path / "p")
    run("combine_data.sh", tmp_path / "mixed", d, tmp_path / "p")
    seg = table(tmp_path / "mixed" / "segments")
    assert seg["p-spkA-u0"] == "p-spkA-u0 0 1.5" and seg["spkA-u0"] == "rec-spkA 0.0 0.5"
    validate_data_dir(tmp_path / "mixed")


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed")
def test_perturb_data_dir_speed(tmp_path: Path) -> None:
    """Kaldi's sp<factor>- naming for utterances, speakers and recordings; the audio through
    sox's speed effect; durations and segment times divided by the factor; utt2uniq back to the
    originals; no features; a segment too short once sped up leaves with its utterance."""
    d = make_data(tmp_path / "d")
    write(d / "wav.scp", [f"{u} /audio/{u}.wav" for u in sorted(ALL_UTTS)[:-1]]
          + [f"{sorted(ALL_UTTS)[-1]} cat /audio/x.wav |"])  # fmt: skip
    run("perturb_data_dir_speed.sh", "0.9", d, tmp_path / "p")
    p = tmp_path / "p"
    validate_data_dir(p, no_feats=True)
    assert not (p / "feats.scp").exists() and not (p / "cmvn.scp").exists()
    assert table(p / "utt2uniq") == {f"sp0.9-{u}": u for u in ALL_UTTS}
    assert set(table(p / "spk2utt")) == {f"sp0.9-{s}" for s in SPEAKERS}
    assert table(p / "text")["sp0.9-spkA-u1"] == table(d / "text")["spkA-u1"]
    assert table(p / "utt2dur")["sp0.9-spkA-u1"] == "1.66667"
    wav = table(p / "wav.scp")
    assert wav["sp0.9-spkA-u0"] == "sox -t wav /audio/spkA-u0.wav -t wav - speed 0.9 |"
    assert wav[f"sp0.9-{sorted(ALL_UTTS)[-1]}"] == (
        "cat /audio/x.wav | sox -t wav - -t wav - speed 0.9 |"
    )
    s = make_data(tmp_path / "s", segments=True)
    write(s / "segments", [f"{u} rec-{u.split('-')[0]} 1.0 {1.005 if u == 'spkC-u2' else 2.1}"
                           for u in sorted(ALL_UTTS)])  # fmt: skip
    run("perturb_data_dir_speed.sh", "1.1", s, tmp_path / "q")
    q = tmp_path / "q"
    validate_data_dir(q, no_feats=True)
    assert table(q / "segments")["sp1.1-spkA-u0"] == "sp1.1-rec-spkA 0.91 1.91"
    assert set(table(q / "utt2spk")) == {f"sp1.1-{u}" for u in ALL_UTTS - {"spkC-u2"}}
    assert set(table(q / "wav.scp")) == {f"sp1.1-rec-{s}" for s in SPEAKERS}
    assert "invalid speed factor" in fail("perturb_data_dir_speed.sh", "fast", d, tmp_path / "x")


@pytest.mark.kaldi
@pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed")
def test_perturb_data_dir_speed_matches_kaldi(tmp_path: Path, kaldi_root: Path) -> None:
    """The same files as Kaldi's utils/perturb_data_dir_speed.sh, with and without segments."""
    for segments in (False, True):
        d = make_data(tmp_path / f"d{segments}", segments=segments)
        (d / "feats.scp").unlink()
        (d / "cmvn.scp").unlink()
        audio = tmp_path / f"audio{segments}"  # real wavs: Kaldi's script reads their lengths
        audio.mkdir()
        lines = (d / "wav.scp").read_text().splitlines()
        for line in lines:
            _wav(audio / Path(line.split()[1]).name, 4.0)
        write(d / "wav.scp", [line.replace("/audio/", f"{audio}/") for line in lines])
        ours, theirs = tmp_path / f"ours{segments}", tmp_path / f"kaldi{segments}"
        run("perturb_data_dir_speed.sh", "0.9", d, ours)
        recipe = tmp_path / f"recipe{segments}"
        recipe.mkdir()
        (recipe / "utils").symlink_to(kaldi_root / "egs/wsj/s5/utils")
        bins = f"{kaldi_root}/src/bin:{kaldi_root}/src/featbin:{UTILS}"  # (UTILS: run.pl)
        (recipe / "path.sh").write_text(f"export PATH={bins}:$PATH\n")
        env = {**os.environ, "LC_ALL": "C", "PATH": f"{bins}:{os.environ['PATH']}"}
        proc = subprocess.run(["utils/perturb_data_dir_speed.sh", "0.9", str(d), str(theirs)],
                              cwd=recipe, env=env, capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        names = ["utt2spk", "spk2utt", "text", "utt2uniq", "wav.scp", "utt2dur"]
        names += ["segments"] if segments else []
        for name in names:
            assert table(ours / name) == table(theirs / name), name


# ---------------------------------------------------------------------------- get_utt2dur


def _wav(path: Path, seconds: float, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))


def test_get_utt2dur(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    _wav(tmp_path / "a.wav", 1.25)
    _wav(tmp_path / "b.wav", 0.5, rate=16000)
    write(d / "utt2spk", ["a a", "b b"])
    write(d / "wav.scp", [f"a {tmp_path}/a.wav", f"b cat {tmp_path}/b.wav |"])
    run("data/get_utt2dur.sh", d)
    assert table(d / "utt2dur") == {"a": "1.25", "b": "0.5"}
    s = make_data(tmp_path / "s", segments=True)
    (s / "utt2dur").unlink()
    run("data/get_utt2dur.sh", s)
    assert set(table(s / "utt2dur").values()) == {"0.5"}
    assert set(table(s / "utt2dur")) == ALL_UTTS
    assert "Usage" in fail("data/get_utt2dur.sh")


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")
def test_get_utt2dur_matches_kaldi(tmp_path: Path, kaldi_ref: Path) -> None:
    """Durations of the flite wavs equal those Kaldi's get_utt2dur.sh wrote (golden utt2dur)."""
    ref = kaldi_ref / "gmm" / "data" / "train"
    texts = table(ref / "text")
    golden = table(ref / "utt2dur")
    sha = table(kaldi_ref / "gmm" / "data" / "wav.sha256")
    d = tmp_path / "d"
    d.mkdir()
    utts = ["awb-001", "slt-002"]
    for utt in utts:
        voice = utt.split("-")[0]
        wav = tmp_path / f"fl_{voice}.{int(utt.split('-')[1])}.wav"
        subprocess.run(["flite", "-voice", voice, "-t", texts[utt], "-o", str(wav)], check=True)
        digest = hashlib.sha256(wav.read_bytes()).hexdigest()
        if sha.get(digest, "").strip() != wav.name:
            pytest.skip(f"this flite does not reproduce {wav.name} byte for byte")
    write(d / "utt2spk", [f"{u} {u.split('-')[0]}" for u in utts])
    write(d / "wav.scp", [f"{u} {tmp_path}/fl_{u.split('-')[0]}.{int(u[-3:])}.wav" for u in utts])
    run("data/get_utt2dur.sh", d)
    ours = table(d / "utt2dur")
    for utt in utts:
        assert float(ours[utt]) == pytest.approx(float(golden[utt]), abs=1e-6)
