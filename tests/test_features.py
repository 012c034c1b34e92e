"""Feature extraction against Kaldi's golden outputs (kaldi-ref/features, see its README.txt).

Measured on the 4 golden wavs: fbank max |ours - Kaldi| = 4.6e-4 (values -1.2..26.4), MFCC
1.26e-3 (values -74..86); the differences come from float FFT/DCT rounding. CMVN stats computed
from Kaldi's MFCC are bit-identical to Kaldi's.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from pykd.cli import main as pykd_main
from pykd.features.ark import ArkScpWriter, read_matrices
from pykd.features.cmvn import (
    acc_cmvn_stats,
    apply_cmvn,
    compute_cmvn_stats,
    write_cmvn,
)
from pykd.features.compute import FeatureError, check_finite, compute_to_ark, compute_waveform
from pykd.features.kaldi_conf import (
    ConfigError,
    build_config,
    load_config,
    read_option_file,
)
from pykd.features.wav import read_wave

UTTS = ("u1", "u2", "u3", "u4")
FBANK_ATOL = 1e-3
MFCC_ATOL = 5e-3


@pytest.fixture(scope="module")
def feat_ref(kaldi_ref: Path) -> Path:
    return kaldi_ref / "features"


def load_text(path: Path) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in kaldiio.load_ark(str(path))}


def make_wav_scp(tmp: Path, ref: Path, utts=UTTS, extra: dict[str, str] | None = None) -> Path:
    lines = {u: str(ref / f"{u}.wav") for u in utts}
    lines.update(extra or {})
    scp = tmp / "wav.scp"
    scp.write_text("".join(f"{k} {v}\n" for k, v in sorted(lines.items())))
    return scp


def write_conf(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- golden comparisons


@pytest.mark.parametrize("kind,atol", [("fbank", FBANK_ATOL), ("mfcc", MFCC_ATOL)])
def test_features_match_kaldi(feat_ref: Path, tmp_path: Path, kind: str, atol: float) -> None:
    cfg = load_config(kind, feat_ref / f"{kind}.conf")
    stats = compute_to_ark(
        cfg,
        make_wav_scp(tmp_path, feat_ref),
        tmp_path / "f.ark",
        tmp_path / "f.scp",
        utt2num_frames=tmp_path / "utt2num_frames",
    )
    assert stats.num_done == 4 and stats.num_failed == 0
    ref = load_text(feat_ref / f"{kind}.txt")
    ours = kaldiio.load_scp(str(tmp_path / "f.scp"))
    assert sorted(ours) == sorted(ref)
    for utt in UTTS:
        assert ours[utt].shape == ref[utt].shape
        assert ours[utt].dtype == np.float32
        np.testing.assert_allclose(ours[utt], ref[utt], rtol=0, atol=atol, err_msg=utt)
    lens = (feat_ref / "feat_lens.txt").read_text().split()
    assert (tmp_path / "utt2num_frames").read_text().split() == lens
    assert cfg.dim == ref["u1"].shape[1]


def test_kaldi_binary_and_compressed_arks_read(
    feat_ref: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(feat_ref)  # Kaldi's scps name the arks relative to that folder
    text = load_text(feat_ref / "fbank.txt")
    binary = dict(read_matrices(f"ark:{feat_ref / 'fbank.ark'}"))
    via_scp = dict(read_matrices(str(feat_ref / "fbank.scp")))
    compressed = dict(read_matrices(f"scp:{feat_ref / 'fbank_compressed.scp'}"))
    decoded = load_text(feat_ref / "fbank_compressed_decoded.txt")
    for utt in UTTS:
        np.testing.assert_allclose(binary[utt], text[utt], rtol=1e-6, atol=1e-5)
        np.testing.assert_array_equal(via_scp[utt], binary[utt])
        np.testing.assert_allclose(compressed[utt], decoded[utt], rtol=1e-6, atol=1e-5)
    # feat-to-dim / feat-to-len facts
    assert int((feat_ref / "fbank_dim.txt").read_text()) == binary["u1"].shape[1]


def test_cmvn_stats_match_kaldi(feat_ref: Path, tmp_path: Path) -> None:
    kaldi_stats_txt = load_text(feat_ref / "cmvn.txt")
    kaldi_stats_bin = dict(kaldiio.load_ark(str(feat_ref / "cmvn.ark")))
    mfcc = dict(kaldiio.load_ark(str(feat_ref / "mfcc.ark")))
    result = compute_cmvn_stats(mfcc.items())
    assert sorted(result.stats) == list(UTTS)
    for utt in UTTS:
        ours = result.stats[utt]
        assert ours.shape == (2, 14) and ours.dtype == np.float64
        assert kaldi_stats_bin[utt].dtype == np.float64
        np.testing.assert_array_equal(ours, kaldi_stats_bin[utt])  # bit-exact
        np.testing.assert_allclose(ours, kaldi_stats_txt[utt], rtol=1e-6)
        assert ours[1, -1] == 0 and ours[0, -1] == mfcc[utt].shape[0]
    # written as "DM" double matrices that kaldiio (and Kaldi) read back
    write_cmvn(result, tmp_path / "cmvn.ark", tmp_path / "cmvn.scp")
    raw = (tmp_path / "cmvn.ark").read_bytes()
    assert raw.startswith(b"u1 \0BDM ")
    back = kaldiio.load_scp(str(tmp_path / "cmvn.scp"))
    for utt in UTTS:
        np.testing.assert_array_equal(back[utt], result.stats[utt])


def test_per_speaker_cmvn_sums_utterances(feat_ref: Path, tmp_path: Path) -> None:
    kaldi_stats = dict(kaldiio.load_ark(str(feat_ref / "cmvn.ark")))
    mfcc = dict(kaldiio.load_ark(str(feat_ref / "mfcc.ark")))
    spk2utt = {"spkA": ["u1", "u3"], "spkB": ["u2", "u4", "u9"], "spkC": ["u8"]}
    result = compute_cmvn_stats(mfcc.items(), spk2utt)
    assert sorted(result.stats) == ["spkA", "spkB"]  # spkC has no features at all
    assert result.num_errors == 2  # u9 and u8 have no features
    np.testing.assert_allclose(
        result.stats["spkA"], kaldi_stats["u1"] + kaldi_stats["u3"], rtol=1e-9
    )
    np.testing.assert_allclose(
        result.stats["spkB"], kaldi_stats["u2"] + kaldi_stats["u4"], rtol=1e-9
    )


def test_per_speaker_cmvn_streams_in_spk2utt_order(feat_ref: Path) -> None:
    """Stats are summed in spk2utt order whatever order the features come in (the same bits)."""
    mfcc = dict(kaldiio.load_ark(str(feat_ref / "mfcc.ark")))
    spk2utt = {"spkA": ["u1", "u3"], "spkB": ["u2", "u4"]}

    def stream(order):
        return ((utt, mfcc[utt]) for utt in order)

    ref = compute_cmvn_stats(stream(["u1", "u2", "u3", "u4"]), spk2utt)
    got = compute_cmvn_stats(stream(["u4", "u3", "u2", "u1"]), spk2utt)
    assert list(got.stats) == list(ref.stats) == ["spkA", "spkB"]
    for spk in spk2utt:
        np.testing.assert_array_equal(got.stats[spk], ref.stats[spk])
    assert ref.num_utts_done == got.num_utts_done == 4 and got.num_errors == 0


def test_apply_cmvn_matches_kaldi(feat_ref: Path) -> None:
    kaldi_stats = dict(kaldiio.load_ark(str(feat_ref / "cmvn.ark")))
    mfcc = dict(kaldiio.load_ark(str(feat_ref / "mfcc.ark")))
    ref = load_text(feat_ref / "mfcc_cmvn.txt")
    for utt in UTTS:
        out = apply_cmvn(mfcc[utt], kaldi_stats[utt])
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, ref[utt], rtol=1e-6, atol=2e-5, err_msg=utt)
        normed = apply_cmvn(mfcc[utt], kaldi_stats[utt], norm_vars=True)
        np.testing.assert_allclose(normed.mean(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(normed.std(axis=0), 1, atol=1e-3)
    with pytest.raises(ValueError, match="shape"):
        apply_cmvn(mfcc["u1"], np.zeros((2, 5)))
    with pytest.raises(ValueError, match="insufficient"):
        apply_cmvn(mfcc["u1"], np.zeros((2, 14)))


def test_our_mfcc_cmvn_close_to_kaldi(feat_ref: Path) -> None:
    """End to end: our MFCC -> our stats -> apply, against Kaldi's mfcc_cmvn.txt."""
    cfg = load_config("mfcc", feat_ref / "mfcc.conf")
    ref = load_text(feat_ref / "mfcc_cmvn.txt")
    for utt in UTTS:
        wave = read_wave(str(feat_ref / f"{utt}.wav"))
        feats = compute_waveform(cfg, wave.data[0], wave.samp_freq)
        out = apply_cmvn(feats, acc_cmvn_stats(feats))
        np.testing.assert_allclose(out, ref[utt], rtol=0, atol=MFCC_ATOL, err_msg=utt)


# ---------------------------------------------------------------- ark/scp writing


def test_ark_scp_roundtrip_atomic(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mats = {f"utt{i}": rng.standard_normal((5 + i, 3)).astype(np.float32) for i in range(3)}
    ark, scp = tmp_path / "out" / "x.ark", tmp_path / "out" / "x.scp"
    for _ in range(2):  # re-running overwrites cleanly
        with ArkScpWriter(ark, scp) as writer:
            for key, mat in mats.items():
                writer.write(key, mat)
    assert sorted(os.listdir(ark.parent)) == ["x.ark", "x.scp"]
    for line in scp.read_text().splitlines():
        assert line.split()[1].rsplit(":", 1)[0] == str(ark)
    back = kaldiio.load_scp(str(scp))
    for key, mat in mats.items():
        np.testing.assert_array_equal(back[key], mat)
    assert dict(kaldiio.load_ark(str(ark))).keys() == mats.keys()

    # a failure mid-way leaves the previous outputs untouched and no temp files
    before = ark.read_bytes()
    with pytest.raises(RuntimeError), ArkScpWriter(ark, scp) as writer:
        writer.write("a", mats["utt0"])
        raise RuntimeError("boom")
    assert ark.read_bytes() == before
    assert sorted(os.listdir(ark.parent)) == ["x.ark", "x.scp"]
    with pytest.raises(ValueError, match="key"), ArkScpWriter(ark, None) as writer:
        writer.write("bad key", mats["utt0"])


def test_compressed_output(feat_ref: Path, tmp_path: Path) -> None:
    cfg = load_config("fbank", feat_ref / "fbank.conf")
    compute_to_ark(
        cfg,
        make_wav_scp(tmp_path, feat_ref),
        tmp_path / "c.ark",
        tmp_path / "c.scp",
        compression_method=1,
    )
    raw = (tmp_path / "c.ark").read_bytes()
    assert b"\0BCM " in raw
    ref = load_text(feat_ref / "fbank_compressed_decoded.txt")
    ours = kaldiio.load_scp(str(tmp_path / "c.scp"))
    for utt in UTTS:
        span = float(ref[utt].max() - ref[utt].min())
        # two independent 8-bit-per-column quantisations of nearly equal inputs
        np.testing.assert_allclose(ours[utt], ref[utt], rtol=0, atol=span / 100)
    assert len(raw) == (feat_ref / "fbank_compressed.ark").stat().st_size


# ---------------------------------------------------------------- audio input


def test_corrupt_and_missing_wav_skipped(
    feat_ref: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunkjunk")
    scp = make_wav_scp(
        tmp_path,
        feat_ref,
        utts=("u1",),
        extra={"ubad": str(bad), "umiss": str(tmp_path / "missing.wav"), "upipe": "false |"},
    )
    cfg = load_config("fbank", feat_ref / "fbank.conf")
    with caplog.at_level(logging.WARNING):
        stats = compute_to_ark(cfg, scp, tmp_path / "f.ark", tmp_path / "f.scp")
    assert stats.num_done == 1 and stats.num_failed == 3
    assert sorted(stats.failed) == ["ubad", "umiss", "upipe"]
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "'ubad'" in messages and str(bad) in messages
    assert "'umiss'" in messages and "missing.wav" in messages
    assert "'upipe'" in messages and "false" in messages
    assert list(kaldiio.load_scp(str(tmp_path / "f.scp"))) == ["u1"]

    # nothing succeeded -> the job fails and writes nothing
    only_bad = tmp_path / "only_bad.scp"
    only_bad.write_text(f"ubad {bad}\n")
    with pytest.raises(FeatureError, match="no utterance succeeded"):
        compute_to_ark(cfg, only_bad, tmp_path / "g.ark", tmp_path / "g.scp")
    assert not (tmp_path / "g.ark").exists() and not (tmp_path / "g.scp").exists()


def test_pipe_wav_and_int16_scale(feat_ref: Path, tmp_path: Path) -> None:
    wave = read_wave(f"cat {feat_ref / 'u1.wav'} |")
    assert wave.samp_freq == 16000 and wave.num_channels == 1
    assert wave.data.dtype == np.float32
    assert np.abs(wave.data).max() > 1000  # int16 scale, not normalised
    assert np.array_equal(wave.data, np.round(wave.data))
    direct = read_wave(str(feat_ref / "u1.wav"))
    np.testing.assert_array_equal(wave.data, direct.data)


def test_sample_rate_mismatch_errors(feat_ref: Path, tmp_path: Path) -> None:
    conf = write_conf(tmp_path, "f8k.conf", "--sample-frequency=8000\n--dither=0\n")
    cfg = load_config("fbank", conf)
    with pytest.raises(FeatureError, match=r"'u1'.*u1\.wav.*8000.*16000"):
        compute_to_ark(
            cfg, make_wav_scp(tmp_path, feat_ref), tmp_path / "f.ark", tmp_path / "f.scp"
        )
    assert not (tmp_path / "f.ark").exists()


def test_segments_extraction(
    feat_ref: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scp = make_wav_scp(tmp_path, feat_ref)
    segments = tmp_path / "segments"
    segments.write_text(
        "s1_whole u1 0 -1\n"  # whole file: must equal Kaldi's full-file features
        "s2_mid u2 0.5 1.001\n"  # 1.001 * 16000 = 16015.99.. -> truncated to 16015
        "s3_over u3 1.5 2.3\n"  # overshoots 2.135 s by < 0.5 s -> truncated to the end
        "s4_far u4 1.0 2.5\n"  # overshoots by > 0.5 s -> skipped
        "s5_short u1 1.0 1.05\n"  # <= 0.1 s -> skipped
        "s6_norec nosuch 0 1\n"  # recording not in wav.scp -> skipped
        "s7_bad u1 1.0\n"  # malformed line -> skipped
    )
    cfg = load_config("fbank", feat_ref / "fbank.conf")
    with caplog.at_level(logging.WARNING):
        stats = compute_to_ark(cfg, scp, tmp_path / "f.ark", tmp_path / "f.scp", segments=segments)
    assert stats.num_done == 3 and stats.num_failed == 4
    messages = "\n".join(r.getMessage() for r in caplog.records)
    for name in ("s4_far", "s5_short", "s6_norec"):
        assert name in messages
    ours = kaldiio.load_scp(str(tmp_path / "f.scp"))
    ref = load_text(feat_ref / "fbank.txt")
    np.testing.assert_allclose(ours["s1_whole"], ref["u1"], atol=FBANK_ATOL)
    u2 = read_wave(str(feat_ref / "u2.wav")).data[0]
    expect = compute_waveform(cfg, u2[8000:16015], 16000.0)
    np.testing.assert_array_equal(ours["s2_mid"], expect)
    u3 = read_wave(str(feat_ref / "u3.wav")).data[0]
    np.testing.assert_array_equal(ours["s3_over"], compute_waveform(cfg, u3[24000:], 16000.0))


def test_multichannel_channel_selection(feat_ref: Path, tmp_path: Path) -> None:
    if shutil.which("sox") is None:
        pytest.skip("sox not installed")
    stereo = tmp_path / "stereo.wav"
    subprocess.run(
        ["sox", "-M", str(feat_ref / "u2.wav"), str(feat_ref / "u1.wav"), str(stereo)], check=True
    )
    wave = read_wave(str(stereo))
    assert wave.num_channels == 2
    ref = load_text(feat_ref / "fbank.txt")
    conf = write_conf(tmp_path, "ch1.conf", "--num-mel-bins=40\n--dither=0\n--channel=1\n")
    scp = tmp_path / "wav.scp"
    scp.write_text(f"st {stereo}\n")
    compute_to_ark(load_config("fbank", conf), scp, tmp_path / "a.ark", tmp_path / "a.scp")
    ours = kaldiio.load_scp(str(tmp_path / "a.scp"))["st"]
    np.testing.assert_allclose(ours[: len(ref["u1"])], ref["u1"], atol=FBANK_ATOL)
    # segments on a multi-channel recording: channel column picks the channel, else skipped
    seg = tmp_path / "segments"
    seg.write_text("a_ch0 st 0 -1 0\nb_nochan st 0 -1\n")
    stats = compute_to_ark(
        load_config("fbank", feat_ref / "fbank.conf"),
        scp,
        tmp_path / "b.ark",
        tmp_path / "b.scp",
        segments=seg,
    )
    assert stats.failed == ["b_nochan"]
    ch0 = kaldiio.load_scp(str(tmp_path / "b.scp"))["a_ch0"]
    np.testing.assert_allclose(ch0[: len(ref["u2"])], ref["u2"], atol=FBANK_ATOL)


def test_non_finite_features_error() -> None:
    check_finite("u1", "u1.wav", np.zeros((3, 2), dtype=np.float32))
    bad = np.zeros((3, 2), dtype=np.float32)
    bad[1, 0] = np.nan
    bad[2, 1] = np.inf
    with pytest.raises(FeatureError, match=r"'u1' \(u1\.wav\): NaN or inf in 2 frames"):
        check_finite("u1", "u1.wav", bad)


# ---------------------------------------------------------------- option files


def test_option_file_parsing_and_mapping(tmp_path: Path) -> None:
    conf = write_conf(
        tmp_path,
        "x.conf",
        "# a comment line\n\n"
        "--num-mel-bins=24   # trailing comment\n"
        "--snip_edges=false\n"  # '_' == '-'
        "--use-energy\n"  # bare boolean = true
        "--window-type=hamming\n"
        "--low-freq=40\n--high-freq=-400\n"
        "--preemphasis-coefficient=0.9\n--remove-dc-offset=f\n"
        "--frame-shift=12.5\n--num-mel-bins=30\n",  # later value wins
    )
    assert read_option_file(conf)[0][:2] == ("num-mel-bins", "24")
    cfg = load_config("fbank", conf)
    o = cfg.knf_opts
    assert o.mel_opts.num_bins == 30 and cfg.dim == 31
    assert o.frame_opts.snip_edges is False and o.use_energy is True
    assert o.frame_opts.window_type == "hamming"
    assert (o.mel_opts.low_freq, o.mel_opts.high_freq) == (40.0, -400.0)
    assert o.frame_opts.preemph_coeff == pytest.approx(0.9)
    assert o.frame_opts.remove_dc_offset is False
    assert o.frame_opts.frame_shift_ms == 12.5
    # Kaldi's defaults, not kaldi-native-fbank's (whose dither is 3e-5)
    d = load_config("mfcc", None)
    assert d.knf_opts.frame_opts.dither == 1.0 and d.knf_opts.use_energy is True
    assert d.knf_opts.mel_opts.num_bins == 23 and d.knf_opts.num_ceps == 13
    assert d.knf_opts.cepstral_lifter == 22.0 and d.knf_opts.mel_opts.low_freq == 20.0


def test_snip_edges_frame_counts(feat_ref: Path) -> None:
    wave = read_wave(str(feat_ref / "u1.wav"))
    n = wave.num_samples
    cfg = build_config("fbank", [("dither", "0", "t"), ("snip-edges", "false", "t")])
    feats = compute_waveform(cfg, wave.data[0], wave.samp_freq)
    assert feats.shape[0] == (n + 80) // 160  # Kaldi: round(n / shift) when not snipping
    cfg = build_config("fbank", [("dither", "0", "t")])
    assert compute_waveform(cfg, wave.data[0], 16000.0).shape[0] == 1 + (n - 400) // 160
    cfg = build_config("mfcc", [("dither", "0", "t"), ("subtract-mean", "true", "t")])
    feats = compute_waveform(cfg, wave.data[0], 16000.0)
    np.testing.assert_allclose(feats.mean(axis=0), 0, atol=1e-3)


@pytest.mark.parametrize(
    "text,match",
    [
        ("--vtln-warp=0.9\n", "vtln-warp.*cannot be honoured"),
        ("--output-format=htk\n", "output-format"),
        ("--allow-downsample=true\n", "allow-downsample"),
        ("--no-such-option=1\n", "unknown option --no-such-option"),
        ("--num-mel-bins 40\n", "--name=value"),
        ("num-mel-bins=40\n", "not an option line"),
        ("--snip-edges=maybe\n", "invalid boolean"),
        ("--num-mel-bins=forty\n", "invalid value 'forty'"),
        ("--num-mel-bins\n", "needs a value"),
        ("--window-type=gauss\n", "window-type"),
        ("--high-freq=9000\n", "nyquist"),
        ("--num-ceps=30\n", "num-ceps"),
        ("--config=other.conf\n", "nested --config"),
    ],
)
def test_bad_options_error(tmp_path: Path, text: str, match: str) -> None:
    conf = write_conf(tmp_path, "bad.conf", text)
    with pytest.raises(ConfigError, match=match):
        load_config("mfcc", conf)


def test_missing_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config("fbank", tmp_path / "nope.conf")


def test_repo_confs(repo_root: Path) -> None:
    fbank = load_config("fbank", repo_root / "conf" / "fbank.conf")
    assert fbank.dim == 40 and fbank.knf_opts.frame_opts.dither == 0.0
    mfcc = load_config("mfcc", repo_root / "conf" / "mfcc.conf")
    assert mfcc.dim == 13 and mfcc.knf_opts.use_energy is False
    assert mfcc.knf_opts.frame_opts.dither == 0.0


# ---------------------------------------------------------------- command line


def test_cli_end_to_end(feat_ref: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for utt in UTTS:
        shutil.copy(feat_ref / f"{utt}.wav", tmp_path / f"{utt}.wav")
    make_wav_scp(data, tmp_path)
    (data / "spk2utt").write_text("spkA u1 u3\nspkB u2 u4\n")
    exe = [sys.executable, "-m", "pykd.cli"]

    def run(*args: str) -> str:
        proc = subprocess.run([*exe, *args], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    conf = str(feat_ref / "mfcc.conf")
    ark, scp = str(tmp_path / "m.ark"), str(tmp_path / "m.scp")
    run("compute-feats", "--kind", "mfcc", "--config", conf, "--compress", str(data), ark, scp)
    assert run("feat-to-dim", f"scp:{scp}").strip() == "13"
    assert run("feat-to-len", scp).strip() == str(192 + 168 + 212 + 176)
    assert run("feat-to-len", scp, "-").split() == (feat_ref / "feat_lens.txt").read_text().split()
    cmvn_ark, cmvn_scp = str(tmp_path / "cmvn.ark"), str(tmp_path / "cmvn.scp")
    run("compute-cmvn-stats", "--spk2utt", f"ark:{data / 'spk2utt'}", scp, cmvn_ark, cmvn_scp)
    stats = kaldiio.load_scp(cmvn_scp)
    assert sorted(stats) == ["spkA", "spkB"]
    assert stats["spkA"][0, -1] == 192 + 212

    bad_conf = write_conf(tmp_path, "bad.conf", "--vtln-warp=0.8\n")
    proc = subprocess.run(
        [*exe, "compute-feats", "--kind", "fbank", "--config", str(bad_conf), str(data), ark, scp],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and "vtln-warp" in proc.stderr


def test_cli_apply_cmvn_matches_kaldi(feat_ref: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmvn_applied.ark"
    rc = pykd_main(
        ["apply-cmvn", f"ark:{feat_ref / 'cmvn.ark'}", f"ark:{feat_ref / 'mfcc.ark'}", str(out)]
    )
    assert rc == 0
    ref = load_text(feat_ref / "mfcc_cmvn.txt")
    ours = dict(kaldiio.load_ark(str(out)))
    for utt in UTTS:
        np.testing.assert_allclose(ours[utt], ref[utt], rtol=1e-6, atol=2e-5)
    # per-speaker stats through --utt2spk
    utt2spk = tmp_path / "utt2spk"
    utt2spk.write_text("u1 A\nu2 A\nu3 B\nu4 B\n")
    spk2utt = tmp_path / "spk2utt"
    spk2utt.write_text("A u1 u2\nB u3 u4\n")
    stats_ark = tmp_path / "spk_cmvn.ark"
    assert (
        pykd_main(
            [
                "compute-cmvn-stats",
                "--spk2utt",
                str(spk2utt),
                f"ark:{feat_ref / 'mfcc.ark'}",
                str(stats_ark),
            ]
        )
        == 0
    )
    assert (
        pykd_main(
            [
                "apply-cmvn",
                "--utt2spk",
                str(utt2spk),
                str(stats_ark),
                f"ark:{feat_ref / 'mfcc.ark'}",
                str(out),
            ]
        )
        == 0
    )
    mfcc = dict(kaldiio.load_ark(str(feat_ref / "mfcc.ark")))
    ours = dict(kaldiio.load_ark(str(out)))
    both = np.concatenate([mfcc["u1"], mfcc["u2"]])
    np.testing.assert_allclose(ours["u1"], mfcc["u1"] - both.mean(axis=0), atol=1e-4)


# ---------------------------------------------------------------- steps_kd scripts


def _run_script(repo_root: Path, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", f". ./path.sh && {script}"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYKD_KALDI": "0"},
    )


def test_make_feats_and_cmvn_scripts(repo_root: Path, feat_ref: Path, tmp_path: Path) -> None:
    if not (repo_root / "utils_kd" / "split_data.sh").exists():
        pytest.skip("utils_kd/split_data.sh not written yet")
    data = tmp_path / "data" / "train"
    data.mkdir(parents=True)
    spk = {"u1": "spkA", "u2": "spkB", "u3": "spkA", "u4": "spkB"}
    (data / "wav.scp").write_text(
        "".join(f"{spk[u]}-{u} {feat_ref / u}.wav\n" for u in sorted(UTTS, key=spk.get)).replace(
            f"spkB-u2 {feat_ref}/u2.wav", f"spkB-u2 cat {feat_ref}/u2.wav |"
        )
    )
    utt2spk = sorted(f"{spk[u]}-{u} {spk[u]}\n" for u in UTTS)
    (data / "utt2spk").write_text("".join(utt2spk))
    (data / "spk2utt").write_text("spkA spkA-u1 spkA-u3\nspkB spkB-u2 spkB-u4\n")
    mfcc_dir, log_dir = tmp_path / "mfcc", tmp_path / "exp" / "log"
    conf = feat_ref / "mfcc.conf"
    proc = _run_script(
        repo_root,
        f"steps_kd/make_mfcc.sh --nj 2 --mfcc-config {conf} {data} {log_dir} {mfcc_dir}",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in mfcc_dir.iterdir()) == [
        f"raw_mfcc_train.{n}.{ext}" for n in (1, 2) for ext in ("ark", "scp")
    ]
    feats = kaldiio.load_scp(str(data / "feats.scp"))
    keys = [line.split()[0] for line in (data / "feats.scp").read_text().splitlines()]
    assert keys == sorted(keys) == [line.split()[0] for line in utt2spk]
    ref = load_text(feat_ref / "mfcc.txt")
    for utt in UTTS:
        mat = feats[f"{spk[utt]}-{utt}"]
        span = float(ref[utt].max() - ref[utt].min())
        np.testing.assert_allclose(mat, ref[utt], atol=span / 100)  # compressed by default
    frames = dict(line.split() for line in (data / "utt2num_frames").read_text().splitlines())
    assert frames["spkA-u1"] == "192" and frames["spkB-u2"] == "168"

    proc = _run_script(repo_root, f"steps_kd/compute_cmvn_stats.sh {data} {log_dir} {mfcc_dir}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cmvn = kaldiio.load_scp(str(data / "cmvn.scp"))
    assert sorted(cmvn) == ["spkA", "spkB"]
    assert cmvn["spkA"][0, -1] == 192 + 212

    # one missing wav out of 5 utterances: reported, and < 95% succeeded -> the step fails
    with open(data / "wav.scp", "a") as handle:
        handle.write(f"spkB-u5 {tmp_path / 'missing.wav'}\n")
    with open(data / "utt2spk", "a") as handle:
        handle.write("spkB-u5 spkB\n")
    (data / "spk2utt").write_text("spkA spkA-u1 spkA-u3\nspkB spkB-u2 spkB-u4 spkB-u5\n")
    proc = _run_script(repo_root, f"steps_kd/make_fbank.sh --nj 2 {data} {log_dir} {mfcc_dir}")
    assert proc.returncode == 1
    assert "1 of 5 utterances failed" in proc.stdout and "spkB-u5" in proc.stdout
    assert "less than 95%" in proc.stderr
