"""Train ARPA n-gram models with IRSTLM (Debian package ``irstlm``) and evaluate with it.

Pipeline (docs/design.md §3): sentences wrapped in ``<s> ... </s>`` (what ``add-start-end.sh``
does), ``build-lm.sh -n ORDER -k 1 -s improved-kneser-ney``, optional ``prune-lm --threshold``,
``compile-lm --text=yes`` -> ARPA. All work happens in a temp dir beside the output; the final ARPA
(gzipped if the name ends in ``.gz``) is renamed into place.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pykd.io.atomic import atomic_path
from pykd.lm.arpa import BOS, EOS, UNK, open_text, sentence_tokens

log = logging.getLogger(__name__)

DEFAULT_IRSTLM = "/usr/lib/irstlm"
SPECIAL_SYMBOLS = {"<eps>", BOS, EOS}


def irstlm_env() -> dict[str, str]:
    """Environment with ``IRSTLM`` set and its ``bin`` on PATH."""
    env = dict(os.environ)
    root = env.get("IRSTLM") or DEFAULT_IRSTLM
    env["IRSTLM"] = root
    env["PATH"] = f"{root}/bin{os.pathsep}{env.get('PATH', '')}"
    env["LC_ALL"] = "C"
    if shutil.which("build-lm.sh", path=env["PATH"]) is None:
        raise RuntimeError(
            f"IRSTLM not found (no build-lm.sh under {root}/bin or on PATH); "
            "install the Debian package 'irstlm' or set IRSTLM"
        )
    return env


def _run(cmd: list[str], log_path: Path, cwd: Path, env: dict[str, str]) -> None:
    """Run ``cmd``, appending its output to ``log_path``; on failure raise with the log tail."""
    with open(log_path, "a", encoding="utf-8") as handle:
        handle.write("# " + " ".join(cmd) + "\n")
        handle.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(True)[-30:])
        raise RuntimeError(f"{cmd[0]} failed (exit {proc.returncode}); log {log_path}:\n{tail}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_vocab(words_txt: str | os.PathLike) -> set[str]:
    """Words of a Kaldi ``words.txt`` usable in an LM (drops <eps>, <s>, </s>, #N)."""
    vocab: set[str] = set()
    with open(words_txt, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ValueError(f"{words_txt}:{lineno}: expected 'word id', got {line.strip()!r}")
            word = fields[0]
            if word in SPECIAL_SYMBOLS or re.fullmatch(r"#\d+", word):
                continue
            vocab.add(word)
    return vocab


@dataclass
class TextStats:
    """Counts from preparing LM training/evaluation text."""

    sentences: int = 0
    words: int = 0
    mapped_to_unk: int = 0
    empty: int = 0


def prepare_text(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    kaldi_text: bool = False,
    vocab: set[str] | None = None,
    unk: str = UNK,
) -> TextStats:
    """Write ``src`` as IRSTLM input: one ``<s> w1 .. wn </s>`` line per non-empty sentence.

    With ``vocab``, words outside it become ``unk`` (as the kaldi-ref recipe did).
    """
    stats = TextStats()
    with open_text(src) as fin, open(dst, "w", encoding="utf-8") as fout:
        for line in fin:
            if not line.strip():
                continue
            words = sentence_tokens(line, kaldi_text)
            if not words:
                stats.empty += 1
                continue
            if vocab is not None:
                mapped = [w if w in vocab else unk for w in words]
                stats.mapped_to_unk += sum(1 for a, b in zip(words, mapped, strict=True) if a != b)
                words = mapped
            stats.sentences += 1
            stats.words += len(words)
            fout.write(f"{BOS} {' '.join(words)} {EOS}\n")
    if stats.sentences == 0:
        raise ValueError(f"{src}: no non-empty sentences to train/evaluate on")
    return stats


def _check_thresholds(value: str) -> None:
    """``prune-lm`` silently reads garbage as 0: insist on comma-separated numbers >= 0."""
    try:
        ok = all(float(v) >= 0 for v in str(value).split(","))
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"prune threshold must be numbers >= 0 separated by commas, got {value!r}")


def _build_lm(tmp: Path, order: int, smoothing: str, log_path: Path, env: dict[str, str]) -> None:
    """Run ``build-lm.sh`` on ``tmp/text.se`` -> ``tmp/lm.ilm.gz``, appending its log."""
    build = [
        "build-lm.sh", "-i", "text.se", "-n", str(order), "-o", "lm.ilm.gz",
        "-k", "1", "-s", smoothing, "-t", str(tmp / "stat"), "-l", "build-lm.log",
    ]  # fmt: skip
    try:
        _run(build, log_path, tmp, env)
    finally:
        if (tmp / "build-lm.log").is_file():
            with open(log_path, "a", encoding="utf-8") as handle:
                handle.write((tmp / "build-lm.log").read_text(errors="replace"))
            (tmp / "build-lm.log").unlink()


def _kn_discounts_undefined(log_path: Path, smoothing: str) -> bool:
    """True when a Kneser-Ney build failed because a count-of-counts was 0 (IRSTLM: log of 0)."""
    if "kneser-ney" not in smoothing:
        return False
    return "Can't take log of 0" in log_path.read_text(errors="replace")


def train_lm(
    text: str | os.PathLike,
    out_arpa: str | os.PathLike,
    order: int = 3,
    smoothing: str = "improved-kneser-ney",
    prune_threshold: str | None = None,
    words_txt: str | os.PathLike | None = None,
    unk: str = UNK,
    kaldi_text: bool = False,
    log_file: str | os.PathLike | None = None,
) -> TextStats:
    """Train an ARPA LM from ``text`` with IRSTLM; returns counts of the prepared text.

    ``prune_threshold`` is passed to ``prune-lm --threshold`` (e.g. ``1e-7`` or ``1e-7,1e-6``).
    ``words_txt``: map words outside this Kaldi symbol table to ``unk``.
    IRSTLM's log goes to ``log_file`` (default ``<out_arpa dir>/train_lm.log``).
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    if prune_threshold is not None:
        _check_thresholds(prune_threshold)
    out_arpa = Path(out_arpa)
    out_arpa.parent.mkdir(parents=True, exist_ok=True)
    log_path = Path(log_file) if log_file else out_arpa.parent / "train_lm.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    env = irstlm_env()
    vocab = read_vocab(words_txt) if words_txt else None
    if vocab is not None and unk not in vocab:
        log.warning("%s has no %s; OOV words map to a symbol G.fst cannot use", words_txt, unk)
    with tempfile.TemporaryDirectory(prefix=".train_lm.", dir=out_arpa.parent) as tmp_name:
        tmp = Path(tmp_name).resolve()
        stats = prepare_text(text, tmp / "text.se", kaldi_text, vocab, unk)
        log.info(
            "%s: %d sentences, %d words, %d mapped to %s",
            text,
            stats.sentences,
            stats.words,
            stats.mapped_to_unk,
            unk,
        )
        _build_lm(tmp, order, smoothing, log_path, env)
        if not (tmp / "lm.ilm.gz").is_file() and _kn_discounts_undefined(log_path, smoothing):
            # Modified Kneser-Ney estimates its discounts from the counts of n-grams seen 1-4
            # times; on a very small text one of those is 0 and IRSTLM dies on log(0). Such a
            # text cannot support KN: say so and use Witten-Bell, which needs no such counts.
            log.warning(
                "%s is too small for %s discounts (an n-gram count-of-counts is 0, see %s); "
                "falling back to witten-bell smoothing",
                text,
                smoothing,
                log_path,
            )
            _build_lm(tmp, order, "witten-bell", log_path, env)
        if not (tmp / "lm.ilm.gz").is_file():
            raise RuntimeError(f"build-lm.sh wrote no model; log {log_path}")
        model = "lm.ilm.gz"
        if prune_threshold:
            _run(
                ["prune-lm", f"--threshold={prune_threshold}", model, "lm.pruned"],
                log_path,
                tmp,
                env,
            )
            model = "lm.pruned"
        _run(["compile-lm", "--text=yes", model, "lm.arpa"], log_path, tmp, env)
        with atomic_path(out_arpa) as dst:
            if out_arpa.suffix == ".gz":
                with open(tmp / "lm.arpa", "rb") as fin, gzip.open(dst, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
            else:
                shutil.copyfile(tmp / "lm.arpa", dst)
            os.chmod(dst, 0o666 & ~_umask())
    log.info("wrote %s (log %s)", out_arpa, log_path)
    return stats


_EVAL_RE = re.compile(r"%% Nw=(\d+) PP=([\d.]+) PPwp=([\d.]+) Nbo=(\d+) Noov=(\d+) OOV=([\d.]+)%")


def irstlm_eval(
    arpa: str | os.PathLike,
    text: str | os.PathLike,
    kaldi_text: bool = False,
    dub: int | None = None,
) -> dict[str, float]:
    """Run ``compile-lm --eval`` on ``text`` (wrapped in <s> .. </s>); parse its summary line.

    Returns Nw (tokens incl. </s>), PP, PPwp, Nbo, Noov, OOV (%). IRSTLM's PP adds an OOV penalty
    of log10(dub - |V|) per OOV token (dub defaults to 1e7); pass ``dub=|V|+1`` to remove it.
    """
    env = irstlm_env()
    with tempfile.TemporaryDirectory(prefix="irstlm_eval.") as tmp_name:
        tmp = Path(tmp_name)
        prepare_text(text, tmp / "eval.se", kaldi_text)
        arpa_path = Path(arpa).resolve()
        if arpa_path.suffix == ".gz":  # compile-lm wants a plain file here
            with gzip.open(arpa_path, "rb") as fin, open(tmp / "lm.arpa", "wb") as fout:
                shutil.copyfileobj(fin, fout)
            arpa_path = tmp / "lm.arpa"
        cmd = ["compile-lm", str(arpa_path), "--eval=eval.se"]
        if dub is not None:
            cmd.append(f"--dub={dub}")
        log_path = tmp / "eval.log"
        _run(cmd, log_path, tmp, env)
        match = _EVAL_RE.search(log_path.read_text(errors="replace"))
        if match is None:
            raise RuntimeError(f"compile-lm --eval printed no summary:\n{log_path.read_text()}")
    keys = ("Nw", "PP", "PPwp", "Nbo", "Noov", "OOV")
    return {k: float(v) for k, v in zip(keys, match.groups(), strict=True)}
