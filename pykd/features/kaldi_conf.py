"""Kaldi option files (``conf/fbank.conf``, ``conf/mfcc.conf``) -> kaldi-native-fbank options.

Every option that Kaldi's ``compute-fbank-feats`` / ``compute-mfcc-feats`` register is known
here, with Kaldi's default. Options kaldi-native-fbank can honour are mapped onto
``knf.FbankOptions`` / ``knf.MfccOptions``; the few it cannot (VTLN warping, HTK output,
resampling) are accepted only at their Kaldi default value and otherwise raise
:class:`ConfigError`. Nothing is silently ignored.

Config-file syntax (Kaldi's ``ParseOptions::ReadConfigFile``): one ``--name=value`` per line,
``#`` starts a comment, blank lines are skipped, ``_`` in a name equals ``-``, a boolean may be
given bare (``--snip-edges`` means true), later lines override earlier ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import kaldi_native_fbank as knf

log = logging.getLogger(__name__)

Kind = Literal["fbank", "mfcc"]
KINDS: tuple[str, ...] = ("fbank", "mfcc")
WINDOW_TYPES = ("hamming", "hanning", "povey", "rectangular", "sine", "blackman")


class ConfigError(ValueError):
    """A feature option file or option value is invalid or cannot be honoured."""


@dataclass(frozen=True)
class Opt:
    """One Kaldi option: its type, Kaldi's default and where it goes.

    ``target`` is ``"frame.<attr>"``, ``"mel.<attr>"``, ``"top.<attr>"`` (on the knf options
    object), ``"prog.<name>"`` (handled by pykd itself) or ``"fixed"`` (only the default is
    accepted; ``why`` says why).
    """

    type: type
    default: Any
    target: str
    why: str = ""


_FRAME = {
    "sample-frequency": Opt(float, 16000.0, "frame.samp_freq"),
    "frame-shift": Opt(float, 10.0, "frame.frame_shift_ms"),
    "frame-length": Opt(float, 25.0, "frame.frame_length_ms"),
    "dither": Opt(float, 1.0, "frame.dither"),
    "preemphasis-coefficient": Opt(float, 0.97, "frame.preemph_coeff"),
    "remove-dc-offset": Opt(bool, True, "frame.remove_dc_offset"),
    "window-type": Opt(str, "povey", "frame.window_type"),
    "round-to-power-of-two": Opt(bool, True, "frame.round_to_power_of_two"),
    "blackman-coeff": Opt(float, 0.42, "frame.blackman_coeff"),
    "snip-edges": Opt(bool, True, "frame.snip_edges"),
    "allow-downsample": Opt(
        bool, False, "fixed", "resampling is not implemented; resample with 'sox ... |' in wav.scp"
    ),
    "allow-upsample": Opt(
        bool, False, "fixed", "resampling is not implemented; resample with 'sox ... |' in wav.scp"
    ),
    # Only used by Kaldi's online feature pipelines; no effect on whole-file extraction.
    "max-feature-vectors": Opt(int, -1, "prog.max_feature_vectors"),
}
_MEL = {
    "num-mel-bins": Opt(int, 23, "mel.num_bins"),
    "low-freq": Opt(float, 20.0, "mel.low_freq"),
    "high-freq": Opt(float, 0.0, "mel.high_freq"),
    "vtln-low": Opt(float, 100.0, "mel.vtln_low"),
    "vtln-high": Opt(float, -500.0, "mel.vtln_high"),
    "debug-mel": Opt(bool, False, "mel.debug_mel"),
}
_FBANK = {
    "use-energy": Opt(bool, False, "top.use_energy"),
    "energy-floor": Opt(float, 0.0, "top.energy_floor"),
    "raw-energy": Opt(bool, True, "top.raw_energy"),
    "htk-compat": Opt(bool, False, "top.htk_compat"),
    "use-log-fbank": Opt(bool, True, "top.use_log_fbank"),
    "use-power": Opt(bool, True, "top.use_power"),
}
_MFCC = {
    "num-ceps": Opt(int, 13, "top.num_ceps"),
    "use-energy": Opt(bool, True, "top.use_energy"),
    "energy-floor": Opt(float, 0.0, "top.energy_floor"),
    "raw-energy": Opt(bool, True, "top.raw_energy"),
    "cepstral-lifter": Opt(float, 22.0, "top.cepstral_lifter"),
    "htk-compat": Opt(bool, False, "top.htk_compat"),
}
# Options of the compute-*-feats programs themselves.
_PROGRAM = {
    "subtract-mean": Opt(bool, False, "prog.subtract_mean"),
    "channel": Opt(int, -1, "prog.channel"),
    "min-duration": Opt(float, 0.0, "prog.min_duration"),
    "output-format": Opt(str, "kaldi", "fixed", "only Kaldi-format output is written"),
    "vtln-warp": Opt(float, 1.0, "fixed", "VTLN warping is not supported by kaldi-native-fbank"),
    "vtln-map": Opt(str, "", "fixed", "VTLN warping is not supported by kaldi-native-fbank"),
    "utt2spk": Opt(str, "", "fixed", "only used with --vtln-map, which is not supported"),
    "write-utt2dur": Opt(str, "", "fixed", "pykd writes utt2num_frames (see pykd compute-feats)"),
    # Generic ParseOptions options: logging only.
    "verbose": Opt(int, 0, "prog.verbose"),
    "print-args": Opt(bool, True, "prog.print_args"),
}


def option_table(kind: Kind) -> dict[str, Opt]:
    """All options of ``compute-<kind>-feats`` with Kaldi's defaults."""
    if kind not in KINDS:
        raise ConfigError(f"unknown feature kind '{kind}' (expected one of {', '.join(KINDS)})")
    specific = _FBANK if kind == "fbank" else _MFCC
    return {**_FRAME, **_MEL, **specific, **_PROGRAM}


def parse_bool(text: str, where: str) -> bool:
    """Kaldi's boolean syntax: true/t/1/'' or false/f/0, case-insensitive."""
    low = text.lower()
    if low in ("true", "t", "1", ""):
        return True
    if low in ("false", "f", "0"):
        return False
    raise ConfigError(f"{where}: invalid boolean '{text}' (expected true or false)")


def _convert(name: str, opt: Opt, raw: str | None, where: str) -> Any:
    if opt.type is bool:
        return parse_bool("" if raw is None else raw, where)
    if raw is None:
        raise ConfigError(f"{where}: option --{name} needs a value (write --{name}=VALUE)")
    try:
        if opt.type is int:
            return int(raw)
        if opt.type is float:
            return float(raw)
    except ValueError:
        raise ConfigError(
            f"{where}: invalid value '{raw}' for --{name} (expected {opt.type.__name__})"
        ) from None
    return raw


def read_option_file(path: str | Path) -> list[tuple[str, str | None, str]]:
    """Read a Kaldi option file into ``(name, value or None, "file:line")`` in file order."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"feature config file not found: {path}")
    out: list[tuple[str, str | None, str]] = []
    with open(path, encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, 1):
            where = f"{path}:{lineno}"
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if not line.startswith("--"):
                raise ConfigError(
                    f"{where}: '{line}' is not an option line of the form --name=value "
                    "(shell-style config files without '--' are for scripts, not programs)"
                )
            body = line[2:]
            name, eq, value = body.partition("=")
            name = name.strip().replace("_", "-")
            if not eq and any(c.isspace() for c in name):
                raise ConfigError(
                    f"{where}: '{line}': Kaldi option files need --name=value (no space form)"
                )
            out.append((name, value.strip() if eq else None, where))
    return out


@dataclass
class FeatureConfig:
    """Resolved options of one ``compute-<kind>-feats`` configuration."""

    kind: Kind
    values: dict[str, Any]
    source: str = "<defaults>"
    knf_opts: Any = field(default=None, repr=False)

    @property
    def samp_freq(self) -> float:
        return float(self.values["sample-frequency"])

    @property
    def subtract_mean(self) -> bool:
        return bool(self.values["subtract-mean"])

    @property
    def channel(self) -> int:
        return int(self.values["channel"])

    @property
    def min_duration(self) -> float:
        return float(self.values["min-duration"])

    @property
    def dim(self) -> int:
        """Output dimension of one frame."""
        v = self.values
        if self.kind == "mfcc":
            return int(v["num-ceps"])
        return int(v["num-mel-bins"]) + (1 if v["use-energy"] else 0)

    def non_default(self) -> dict[str, Any]:
        """Options whose value differs from Kaldi's default (for logs and docs)."""
        table = option_table(self.kind)
        return {k: v for k, v in self.values.items() if v != table[k].default}


def build_config(
    kind: Kind, options: list[tuple[str, str | None, str]] | None = None, source: str = "<args>"
) -> FeatureConfig:
    """Apply ``options`` (from :func:`read_option_file`) over Kaldi's defaults and validate."""
    table = option_table(kind)
    values = {name: opt.default for name, opt in table.items()}
    for name, raw, where in options or []:
        if name == "config":
            raise ConfigError(f"{where}: nested --config is not supported; merge the files")
        if name not in table:
            raise ConfigError(
                f"{where}: unknown option --{name} for compute-{kind}-feats "
                f"(known: {', '.join(sorted(table))})"
            )
        values[name] = _convert(name, table[name], raw, where)
    for name, opt in table.items():
        if opt.target == "fixed" and values[name] != opt.default:
            raise ConfigError(
                f"{source}: --{name}={values[name]} cannot be honoured ({opt.why}); "
                f"only Kaldi's default {opt.default!r} is supported"
            )
    _validate(kind, values, source)
    cfg = FeatureConfig(kind=kind, values=values, source=source)
    cfg.knf_opts = to_knf_options(cfg)
    return cfg


def load_config(kind: Kind, path: str | Path | None) -> FeatureConfig:
    """Read an option file (``None``: Kaldi's defaults) for ``compute-<kind>-feats``."""
    if path is None:
        return build_config(kind, [], "<defaults>")
    return build_config(kind, read_option_file(path), str(path))


def _validate(kind: Kind, v: dict[str, Any], source: str) -> None:
    def bad(msg: str) -> ConfigError:
        return ConfigError(f"{source}: {msg}")

    if v["window-type"] not in WINDOW_TYPES:
        raise bad(f"--window-type={v['window-type']} is not one of {', '.join(WINDOW_TYPES)}")
    if v["sample-frequency"] <= 0:
        raise bad("--sample-frequency must be > 0")
    if v["frame-shift"] <= 0 or v["frame-length"] <= 0:
        raise bad("--frame-shift and --frame-length must be > 0")
    if v["frame-length"] * v["sample-frequency"] < 1000.0:
        raise bad("--frame-length is shorter than one sample")
    if v["num-mel-bins"] < 3:
        raise bad("--num-mel-bins must be at least 3")
    if v["dither"] < 0:
        raise bad("--dither must be >= 0")
    if kind == "mfcc" and not 1 <= v["num-ceps"] <= v["num-mel-bins"]:
        raise bad("--num-ceps must be between 1 and --num-mel-bins")
    if v["channel"] < -1:
        raise bad("--channel must be -1 (mono), 0, 1, ...")


def to_knf_options(cfg: FeatureConfig) -> Any:
    """Build ``knf.FbankOptions`` / ``knf.MfccOptions`` from resolved Kaldi values.

    Every field is set explicitly (kaldi-native-fbank's own defaults differ from Kaldi's, e.g.
    its dither). knf-only extensions (librosa-style mel banks) keep their Kaldi-compatible
    values. The options are checked by building a computer once (bad mel ranges fail here).
    """
    opts = knf.FbankOptions() if cfg.kind == "fbank" else knf.MfccOptions()
    table = option_table(cfg.kind)
    for name, opt in table.items():
        part, _, attr = opt.target.partition(".")
        if part == "frame":
            setattr(opts.frame_opts, attr, cfg.values[name])
        elif part == "mel":
            setattr(opts.mel_opts, attr, cfg.values[name])
        elif part == "top":
            setattr(opts, attr, cfg.values[name])
    opts.mel_opts.is_librosa = False
    opts.mel_opts.htk_mode = False
    if cfg.kind == "fbank":
        opts.use_log_floor = True  # Kaldi floors mel energies at float epsilon before the log
    try:
        if cfg.kind == "fbank":
            knf.OnlineFbank(opts)
        else:
            knf.OnlineMfcc(opts)
    except (ValueError, RuntimeError) as err:
        raise ConfigError(f"{cfg.source}: invalid feature options: {err}") from None
    return opts
