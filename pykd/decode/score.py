"""Scoring in the spirit of Kaldi's ``steps/score_kaldi.sh``, with sclite reports.

For each LM weight ``L`` and word insertion penalty ``P``: the best path of every lattice with
acoustic scale ``1/L`` and penalty ``P`` added to the graph cost of each word arc
(``lattice-scale --inv-acoustic-scale=L | lattice-add-penalty --word-ins-penalty=P |
lattice-best-path``) -> words (int2sym) -> ``scoring_kaldi/penalty_P/L.txt``; the reference is the
data dir's ``text`` (``scoring_kaldi/test_filt.txt``). Both sides drop the same non-scored words
(``!SIL`` etc.; OOVs such as ``<unk>`` stay, as in score_kaldi.sh). WER per setting is computed
as ``compute-wer --mode=present`` does (Levenshtein, ties as Kaldi) into ``wer_L_P``;
``scoring_kaldi/best_wer`` is Kaldi's pick (first lowest WER, penalty-major order). sclite (sctk)
scores the best setting: ``scoring_kaldi/sclite/`` gets ref/hyp ``.trn`` and the ``.sys``,
``.pra``, ``.dtl`` reports.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pykd.decode.decoder import best_path
from pykd.io.atomic import atomic_write_text
from pykd.io.jobs import job_files
from pykd.kaldi.lattice_io import CompactLattice, read_lattices

log = logging.getLogger(__name__)

DEFAULT_NON_SCORED = ("!SIL", "<sil>", "<SIL>", "<eps>", "<s>", "</s>")
SCLITE_CANDIDATES = ("/usr/lib/sctk/bin/sclite",)


class ScoreError(ValueError):
    """Bad scoring input (message names the file)."""


@dataclass(frozen=True)
class WerStats:
    """Word error counts as compute-wer reports them."""

    ins: int
    dels: int
    subs: int
    ref_words: int
    sent_err: int
    sents: int
    not_present: int = 0

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.subs

    @property
    def wer(self) -> float:
        return 100.0 * self.errors / self.ref_words if self.ref_words else 0.0

    def wer_line(self) -> str:
        return (
            f"%WER {self.wer:.2f} [ {self.errors} / {self.ref_words}, {self.ins} ins, "
            f"{self.dels} del, {self.subs} sub ]"
        )

    def report(self) -> str:
        ser = 100.0 * self.sent_err / self.sents if self.sents else 0.0
        return (
            f"{self.wer_line()}\n%SER {ser:.2f} [ {self.sent_err} / {self.sents} ]\n"
            f"Scored {self.sents} sentences, {self.not_present} not present in hyp.\n"
        )


def edit_counts(ref: Sequence[str], hyp: Sequence[str]) -> tuple[int, int, int]:
    """(insertions, deletions, substitutions) of a minimum edit-distance alignment.

    Ties are broken as Kaldi's compute-wer does: a substitution/match only when strictly
    cheaper than both alternatives, then a deletion when strictly cheaper than an insertion.
    """
    # column over ref positions for the previous hyp prefix; cells (total, ins, del, sub)
    prev = [(i, 0, i, 0) for i in range(len(ref) + 1)]
    for h in hyp:
        cur = [(prev[0][0] + 1, prev[0][1] + 1, prev[0][2], prev[0][3])]
        for r in range(1, len(ref) + 1):
            ins_c = prev[r][0] + 1
            del_c = cur[r - 1][0] + 1
            diff = int(h != ref[r - 1])
            sub_c = prev[r - 1][0] + diff
            if sub_c < ins_c and sub_c < del_c:
                t, i, d, s = prev[r - 1]
                cur.append((sub_c, i, d, s + diff))
            elif del_c < ins_c:
                t, i, d, s = cur[r - 1]
                cur.append((del_c, i, d + 1, s))
            else:
                t, i, d, s = prev[r]
                cur.append((ins_c, i + 1, d, s))
        prev = cur
    _, ins, dels, subs = prev[-1]
    return ins, dels, subs


def compute_wer(refs: dict[str, list[str]], hyps: dict[str, list[str]]) -> WerStats:
    """compute-wer --mode=present: utterances without a hypothesis are not scored."""
    ins = dels = subs = nref = serr = nsent = missing = 0
    for utt, ref in refs.items():
        if utt not in hyps:
            missing += 1
            continue
        i, d, s = edit_counts(ref, hyps[utt])
        ins, dels, subs = ins + i, dels + d, subs + s
        nref += len(ref)
        nsent += 1
        serr += int(i + d + s > 0)
    return WerStats(ins, dels, subs, nref, serr, nsent, missing)


def read_words(path: str | os.PathLike) -> dict[int, str]:
    """words.txt -> {id: word}."""
    table: dict[int, str] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            f = line.split()
            if len(f) != 2:
                raise ScoreError(f"{path}: line {n}: expected 'word id', got {line!r}")
            table[int(f[1])] = f[0]
    return table


def read_text(path: str | os.PathLike) -> dict[str, list[str]]:
    """A Kaldi ``text`` file -> {utt: words}."""
    out: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            f = line.split()
            if f:
                out[f[0]] = f[1:]
    return out


def filter_words(words: Sequence[str], non_scored: set[str]) -> list[str]:
    """Drop non-scored tokens (silence, noise markers); OOV words are kept."""
    return [w for w in words if w not in non_scored]


def lattice_files(decode_dir: str | os.PathLike) -> list[Path]:
    """``lat.N.gz`` of a decode dir in job order: every job of ``num_jobs``, each complete."""
    return job_files(decode_dir, "lat")


def _text_line(utt: str, words: Sequence[str]) -> str:
    # lattice-best-path | int2sym.pl writes "utt w1 w2 " (a space after every field)
    return utt + " " + "".join(w + " " for w in words) + "\n"


def find_sclite() -> str | None:
    """The sclite binary (PATH first, then Debian's sctk location)."""
    found = shutil.which("sclite")
    if found:
        return found
    return next((p for p in SCLITE_CANDIDATES if os.access(p, os.X_OK)), None)


def write_trn(path: Path, table: dict[str, list[str]]) -> None:
    """sclite ``trn`` format: ``words (utt)``."""
    atomic_write_text(path, "".join(f"{' '.join(w)} ({u})\n" for u, w in table.items()))


def run_sclite(ref_trn: Path, hyp_trn: Path, out_dir: Path, name: str) -> Path:
    """sclite -r ref trn -h hyp trn -i rm -o sum pra dtl -> ``out_dir/name.{sys,pra,dtl}``."""
    sclite = find_sclite()
    if sclite is None:
        raise ScoreError("sclite not found (install Debian's sctk)")
    cmd = [sclite, "-r", str(ref_trn), "trn", "-h", str(hyp_trn), "trn", "-i", "rm"]
    cmd += ["-o", "sum", "pra", "dtl", "-O", str(out_dir), "-n", name]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ScoreError(f"sclite failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return out_dir / f"{name}.sys"


def sclite_counts(dtl: Path) -> dict[str, float]:
    """Totals from a sclite ``.dtl`` report (percentages and counts)."""
    text = dtl.read_text(errors="replace")
    out: dict[str, float] = {}
    for key, pat in {
        "err": r"Percent Total Error\s*=\s*([\d.]+)%\s*\(\s*(\d+)\)",
        "sub": r"Percent Substitution\s*=\s*([\d.]+)%\s*\(\s*(\d+)\)",
        "del": r"Percent Deletions\s*=\s*([\d.]+)%\s*\(\s*(\d+)\)",
        "ins": r"Percent Insertions\s*=\s*([\d.]+)%\s*\(\s*(\d+)\)",
    }.items():
        m = re.search(pat, text)
        if m:
            out[key] = int(m.group(2))
            out[key + "_pct"] = float(m.group(1))
    m = re.search(r"Ref\. words\s*=\s*\(\s*(\d+)\)", text)
    if m:
        out["ref_words"] = int(m.group(1))
    return out


@dataclass
class ScoreOptions:
    min_lmwt: int = 7
    max_lmwt: int = 17
    word_ins_penalties: tuple[str, ...] = ("0.0", "0.5", "1.0")
    non_scored: tuple[str, ...] = DEFAULT_NON_SCORED
    run_sclite: bool = True


def score_dir(
    data_dir: str | os.PathLike,
    lang_or_graph: str | os.PathLike,
    decode_dir: str | os.PathLike,
    opts: ScoreOptions | None = None,
) -> tuple[str, WerStats]:
    """Score ``decode_dir/lat.*.gz`` against ``data_dir/text``; returns (best_wer line, stats)."""
    opts = opts or ScoreOptions()
    data_dir, graph, ddir = Path(data_dir), Path(lang_or_graph), Path(decode_dir)
    text = data_dir / "text"
    words_txt = graph / "words.txt"
    for need in (text, words_txt):
        if not need.is_file():
            raise FileNotFoundError(f"scoring needs {need}")
    lats_files = lattice_files(ddir)
    if opts.min_lmwt > opts.max_lmwt:
        raise ScoreError(f"--min-lmwt {opts.min_lmwt} > --max-lmwt {opts.max_lmwt}")
    wips = [float(p) for p in opts.word_ins_penalties]  # validates the numbers
    id2word = read_words(words_txt)
    lats: dict[str, CompactLattice] = {}
    for f in lats_files:
        for utt, lat in read_lattices(str(f)):
            if not isinstance(lat, CompactLattice):
                raise ScoreError(f"{f}: utterance {utt} is not a CompactLattice")
            lats[utt] = lat
    non_scored = set(opts.non_scored)
    sdir = ddir / "scoring_kaldi"
    sdir.mkdir(parents=True, exist_ok=True)
    raw_refs = read_text(text)
    atomic_write_text(
        sdir / "test_filt.txt", "".join(_text_line(u, w) for u, w in raw_refs.items())
    )
    refs = {u: filter_words(w, non_scored) for u, w in raw_refs.items()}
    extra = sorted(set(lats) - set(refs))
    if extra:
        log.warning("%d lattices have no reference in %s (e.g. %s)", len(extra), text, extra[0])
    results: list[tuple[str, str, WerStats, dict[str, list[str]]]] = []
    for wip_s, wip in zip(opts.word_ins_penalties, wips, strict=True):
        pdir = sdir / f"penalty_{wip_s}"
        pdir.mkdir(exist_ok=True)
        for lmwt in range(opts.min_lmwt, opts.max_lmwt + 1):
            hyps: dict[str, list[str]] = {}
            for utt, lat in lats.items():
                bp = best_path(lat, 1.0, 1.0 / lmwt, wip)
                if bp is None:
                    log.warning("utterance %s: lattice has no path", utt)
                    continue
                try:
                    hyps[utt] = [id2word[w] for w in bp[0]]
                except KeyError as err:
                    raise ScoreError(f"utterance {utt}: word id {err} not in {words_txt}") from err
            atomic_write_text(
                pdir / f"{lmwt}.txt", "".join(_text_line(u, w) for u, w in hyps.items())
            )
            filt = {u: filter_words(w, non_scored) for u, w in hyps.items()}
            stats = compute_wer(refs, filt)
            header = (
                f"# pykd score: compute-wer --text --mode=present ark:{sdir}/test_filt.txt "
                f"ark,p:{pdir}/{lmwt}.txt\n"
            )
            atomic_write_text(ddir / f"wer_{lmwt}_{wip_s}", header + stats.report())
            results.append((str(lmwt), wip_s, stats, filt))
    # utils/best_wer.sh: first strictly lowest WER (as printed, 2 decimals) in penalty-major order
    best = min(results, key=lambda r: float(f"{r[2].wer:.2f}"))
    lmwt, wip_s, stats, hyps = best
    best_line = f"{stats.wer_line()} {ddir}/wer_{lmwt}_{wip_s}"
    atomic_write_text(sdir / "best_wer", best_line + "\n")
    log.info("%s", best_line)
    if opts.run_sclite:
        cdir = sdir / "sclite"
        cdir.mkdir(exist_ok=True)
        ref_trn = cdir / "ref.trn"
        name = f"hyp_lmwt{lmwt}_wip{wip_s}"
        hyp_trn = cdir / f"{name}.trn"
        write_trn(ref_trn, {u: w for u, w in refs.items() if u in hyps})
        write_trn(hyp_trn, hyps)
        run_sclite(ref_trn, hyp_trn, cdir, name)
        counts = sclite_counts(cdir / f"{name}.dtl")
        log.info(
            "sclite %s: %s%% errors (%d ins, %d del, %d sub of %d words)",
            name,
            counts.get("err_pct"),
            counts.get("ins", -1),
            counts.get("del", -1),
            counts.get("sub", -1),
            counts.get("ref_words", -1),
        )
        if counts.get("err") != stats.errors:
            log.warning(
                "sclite counts %s errors, compute-wer style alignment %d",
                counts.get("err"),
                stats.errors,
            )
    return best_line, stats
