"""Decoder parity: pykd's builtin lattice decoders against Kaldi's on the same inputs (benchmark).

For each network system (default: the teacher ``dnn`` and the KD student ``hdnn_kd``) and each
test set, the network's log-likelihoods are written once (``pykd make-loglikes``) and decoded
through the tri1 graph by ``pykd latgen-faster-mapped`` and by Kaldi's ``latgen-faster-mapped``
with identical options, both split into ``--nj`` parallel jobs by speaker. The tri1 GMM is
decoded the same way by ``pykd gmm-latgen-faster`` and Kaldi's ``gmm-latgen-faster`` (features:
apply-cmvn + add-deltas). Printed per system and set: utterances with an identical 1-best (the
decoder's own objective: LM scale 1, the decode's acoustic scale), WER of each (sclite, best LM
weight / insertion penalty, ``steps_kd/score.sh``), lattice density (arcs per frame, and
lattice-depth: transition-ids per frame), wall time of each and their ratio. For every utterance
whose 1-best differs, the two paths' costs are compared to say which decoder found the better
path (a search/pruning difference) or whether they tie (tie-breaking).

    python bench/bench_decoder_parity.py --kaldi-root ../shared/kaldi --recipe . \
        [--systems dnn hdnn_kd] [--sets dev eval] [--gmm tri1] [--nj 2] [--out FILE.md]

Run from a recipe dir whose stages 1-10 are done (exp/tri1, exp/dnn, exp/hdnn_kd).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pykd.decode.decoder import best_path, lattice_depth  # noqa: E402
from pykd.io.datadir import read_table  # noqa: E402
from pykd.kaldi.lattice_io import read_lattices  # noqa: E402

KALDI_BIN_DIRS = ("bin", "featbin", "gmmbin", "latbin", "fstbin")
TIE = 1e-3  # path costs closer than this are a tie
NBEST = 100  # paths per lattice compared (Kaldi's lattice-to-nbest on both decoders' lattices)
NEAR = 2.0  # "near-best": word sequences within this (scaled) cost of the lattice's best path


@dataclass
class Decode:
    """One decoder's lattices of one system and set."""

    wall_s: float
    best: dict[str, tuple[list[int], float]]  # utt -> (words, total cost)
    arcs_per_frame: float
    depth: float
    wer: str
    nbest: dict[str, dict[tuple[str, ...], float]] = field(default_factory=dict)


@dataclass
class Row:
    system: str
    test_set: str
    utts: int
    frames: int
    builtin: Decode
    kaldi: Decode
    diffs: dict[str, int] = field(default_factory=dict)


def sh(cmd: list[str] | str, env: dict[str, str], cwd: Path) -> None:
    """Run a command; on failure print its stderr and stop."""
    proc = subprocess.run(
        cmd, shell=isinstance(cmd, str), cwd=cwd, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {cmd}\n{proc.stderr[-3000:]}")


def parallel(cmds: list[str], env: dict[str, str], cwd: Path) -> float:
    """Run shell commands side by side; their wall time."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            ["bash", "-o", "pipefail", "-c", c], cwd=cwd, env=env, stderr=subprocess.PIPE, text=True
        )
        for c in cmds
    ]
    for cmd, p in zip(cmds, procs, strict=True):
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"failed ({p.returncode}): {cmd}\n{err[-3000:]}")
    return time.perf_counter() - start


def summarise(
    lat_files: list[Path], acwt: float, frames: dict[str, int], wall: float, wer: str
) -> Decode:
    best: dict[str, tuple[list[int], float]] = {}
    arcs = tids = 0.0
    for f in lat_files:
        for utt, lat in read_lattices(f"ark:{f}"):
            bp = best_path(lat, 1.0, acwt)
            if bp is not None:
                best[utt] = (bp[0], bp[2] + acwt * bp[3])
            a, d = lattice_depth(lat, frames[utt])
            arcs += a * frames[utt]
            tids += d * frames[utt]
    total = sum(frames[u] for u in best) or 1
    return Decode(wall, best, arcs / total, tids / total, wer)


def nbest_lists(
    lat_files: list[Path], acwt: float, kenv: dict[str, str], cwd: Path
) -> dict[str, dict[tuple[str, ...], float]]:
    """utt -> {word sequence: total cost} of the NBEST best paths (Kaldi's lattice-to-nbest)."""
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for f in lat_files:
        cmd = (
            f'lattice-to-nbest --acoustic-scale={acwt} --n={NBEST} "ark:gunzip -c {f}|" ark:- | '
            f"nbest-to-linear ark:- ark:/dev/null ark,t:{f}.words ark,t:{f}.lm ark,t:{f}.ac"
        )
        sh(cmd, kenv, cwd)
        tables = (Path(f"{f}.{x}").read_text().splitlines() for x in ("words", "lm", "ac"))
        rows = zip(*tables, strict=True)
        for words, lm, ac in rows:
            key, *seq = words.split()
            utt = key.rsplit("-", 1)[0]
            cost = float(lm.split()[1]) + acwt * float(ac.split()[1])
            out.setdefault(utt, {})[tuple(seq)] = cost
    return out


def near_best_agreement(row: Row) -> tuple[float, float]:
    """(% of utterances whose near-best word sequences are the same set in both lattices,
    largest |cost difference| of a word sequence near-best in both)."""
    same, worst, n = 0, 0.0, 0
    for utt, b_paths in row.builtin.nbest.items():
        k_paths = row.kaldi.nbest.get(utt, {})
        if not b_paths or not k_paths:
            continue
        n += 1
        b_best, k_best = min(b_paths.values()), min(k_paths.values())
        b_near = {s for s, c in b_paths.items() if c <= b_best + NEAR}
        k_near = {s for s, c in k_paths.items() if c <= k_best + NEAR}
        same += b_near == k_near
        for s in b_near & k_near:
            worst = max(worst, abs(b_paths[s] - k_paths[s]))
    return (100.0 * same / n if n else 0.0), worst


def score(decode_dir: Path, data: Path, graph: Path, lmwt: tuple[int, int], cwd: Path) -> str:
    """steps_kd/score.sh (builtin, sclite) on a decode dir; the best WER line."""
    env = {k: v for k, v in os.environ.items() if k != "KALDI_ROOT"}
    sh(
        f". ./path.sh && steps_kd/score.sh --min-lmwt {lmwt[0]} --max-lmwt {lmwt[1]} "
        f"{data} {graph} {decode_dir}",
        env,
        cwd,
    )
    return (
        (decode_dir / "scoring_kaldi" / "best_wer")
        .read_text()
        .split("[")[0]
        .replace("%WER", "")
        .strip()
    )


def compare(row: Row) -> None:
    """Count differing 1-bests by cause: tie, builtin's path cheaper, Kaldi's path cheaper."""
    diffs = {"identical": 0, "tie": 0, "builtin better": 0, "kaldi better": 0, "missing": 0}
    for utt in set(row.builtin.best) | set(row.kaldi.best):
        if utt not in row.builtin.best or utt not in row.kaldi.best:
            diffs["missing"] += 1
            continue
        (w_b, c_b), (w_k, c_k) = row.builtin.best[utt], row.kaldi.best[utt]
        if w_b == w_k:
            diffs["identical"] += 1
        elif abs(c_b - c_k) < TIE:
            diffs["tie"] += 1
        else:
            diffs["builtin better" if c_b < c_k else "kaldi better"] += 1
    row.diffs = diffs


def split_lists(data: Path, nj: int, cwd: Path) -> list[Path]:
    env = {k: v for k, v in os.environ.items() if k != "KALDI_ROOT"}
    sh(f". ./path.sh && utils_kd/split_data.sh {data} {nj}", env, cwd)
    return [data / f"split{nj}" / str(j) for j in range(1, nj + 1)]


def frames_of(data: Path, cwd: Path) -> dict[str, int]:
    path = cwd / data / "utt2num_frames"
    return {u: int(n) for u, n in read_table(path).items()}


def network_row(args, kenv, system: str, test_set: str, work: Path) -> Row:
    rec = args.recipe
    data = Path("data") / f"{test_set}_fbank"
    out = work / f"{system}_{test_set}"
    shutil.rmtree(out, ignore_errors=True)
    (out / "builtin").mkdir(parents=True)
    (out / "kaldi").mkdir(parents=True)
    sh(
        ["pykd", "make-loglikes", "--prior-counts", f"exp/{system}/prior.counts",
         "--num-threads", "1", f"exp/{system}/final.pt", str(data),
         str(out / "loglikes.ark"), str(out / "loglikes.scp")],
        kenv, rec,
    )  # fmt: skip
    parts = split_lists(data, args.nj, rec)
    opts = (
        f"--beam={args.beam} --lattice-beam={args.nnet_lattice_beam} "
        f"--max-active={args.max_active} --acoustic-scale={args.nnet_acwt} --allow-partial=true"
    )
    mdl, graph = "exp/tri1/final.mdl", f"exp/{args.gmm}/graph"
    cmds = {"builtin": [], "kaldi": []}
    for j, part in enumerate(parts, 1):
        scp = out / f"loglikes.{j}.scp"
        keys = set(read_table(rec / part / "utt2spk"))
        scp.write_text(
            "".join(ln + "\n" for ln in (out / "loglikes.scp").read_text().splitlines()
                    if ln.split()[0] in keys)
        )  # fmt: skip
        cmds["builtin"].append(
            f"pykd latgen-faster-mapped {opts} {mdl} {graph}/HCLG.fst scp:{scp} "
            f"{out}/builtin/lat.{j}.gz 2> {out}/builtin/decode.{j}.log"
        )
        cmds["kaldi"].append(
            f"latgen-faster-mapped {opts} {mdl} {graph}/HCLG.fst scp:{scp} "
            f'"ark:|gzip -c > {out}/kaldi/lat.{j}.gz" 2> {out}/kaldi/decode.{j}.log'
        )
    return finish_row(args, kenv, system, test_set, data, out, cmds, (4, 15), args.nnet_acwt)


def gmm_row(args, kenv, test_set: str, work: Path) -> Row:
    rec = args.recipe
    data = Path("data") / test_set
    out = work / f"{args.gmm}_{test_set}"
    shutil.rmtree(out, ignore_errors=True)
    (out / "builtin").mkdir(parents=True)
    (out / "kaldi").mkdir(parents=True)
    parts = split_lists(data, args.nj, rec)
    gdir = f"exp/{args.gmm}"
    cmvn_file = rec / gdir / "cmvn_opts"
    cmvn_opts = cmvn_file.read_text().strip() if cmvn_file.is_file() else ""
    opts = (
        f"--beam={args.beam} --lattice-beam={args.gmm_lattice_beam} "
        f"--max-active={args.max_active} --acoustic-scale={args.gmm_acwt} --allow-partial=true"
    )
    cmds = {"builtin": [], "kaldi": []}
    for j, part in enumerate(parts, 1):
        cmds["builtin"].append(
            f'pykd gmm-latgen-faster {opts} --cmvn-opts="{cmvn_opts}" {gdir}/final.mdl '
            f"{gdir}/graph/HCLG.fst gmmfeats:{part} {out}/builtin/lat.{j}.gz "
            f"2> {out}/builtin/decode.{j}.log"
        )
        feats = (
            f"ark,s,cs:apply-cmvn {cmvn_opts} --utt2spk=ark:{part}/utt2spk scp:{part}/cmvn.scp "
            f"scp:{part}/feats.scp ark:- | add-deltas ark:- ark:- |"
        )
        cmds["kaldi"].append(
            f'gmm-latgen-faster {opts} {gdir}/final.mdl {gdir}/graph/HCLG.fst "{feats}" '
            f'"ark:|gzip -c > {out}/kaldi/lat.{j}.gz" 2> {out}/kaldi/decode.{j}.log'
        )
    return finish_row(args, kenv, args.gmm, test_set, data, out, cmds, (7, 17), args.gmm_acwt)


def finish_row(args, kenv, system, test_set, data, out, cmds, lmwt, acwt) -> Row:
    rec = args.recipe
    frames = frames_of(data, rec)
    decodes = {}
    for name in ("builtin", "kaldi"):
        print(f"  {system} {test_set}: {name} decoding ({args.nj} jobs)", flush=True)
        wall = parallel(cmds[name], kenv, rec)
        (out / name / "num_jobs").write_text(f"{args.nj}\n")
        wer = score(out / name, data, Path(f"exp/{args.gmm}/graph"), lmwt, rec)
        lats = sorted((out / name).glob("lat.*.gz"))
        decodes[name] = summarise(lats, acwt, frames, wall, wer)
        decodes[name].nbest = nbest_lists(lats, acwt, kenv, rec)
    row = Row(system, test_set, len(frames), sum(frames.values()), decodes["builtin"],
              decodes["kaldi"])  # fmt: skip
    compare(row)
    return row


def table(rows: list[Row]) -> str:
    lines = [
        "| system | set | utts | identical 1-best | differing: tie / builtin better / Kaldi "
        "better | WER builtin | WER Kaldi | arcs/frame builtin / Kaldi | depth builtin / Kaldi "
        f"| near-best sets equal (within {NEAR:g}) | max cost diff, shared near-best "
        "| wall builtin (s) | wall Kaldi (s) | builtin / Kaldi |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d, b, k = r.diffs, r.builtin, r.kaldi
        same = d["identical"]
        missing = f" (+{d['missing']} missing)" if d["missing"] else ""
        near_same, near_diff = near_best_agreement(r)
        lines.append(
            f"| {r.system} | {r.test_set} | {r.utts} | {same} ({100 * same / r.utts:.1f}%) | "
            f"{d['tie']} / {d['builtin better']} / {d['kaldi better']}"
            f"{missing} | {b.wer} | {k.wer} | "
            f"{b.arcs_per_frame:.2f} / {k.arcs_per_frame:.2f} | {b.depth:.1f} / {k.depth:.1f} | "
            f"{near_same:.1f}% | {near_diff:.3f} | "
            f"{b.wall_s:.1f} | {k.wall_s:.1f} | {b.wall_s / k.wall_s:.1f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kaldi-root", required=True, type=Path, help="a built Kaldi (KALDI_ROOT)")
    p.add_argument("--recipe", type=Path, default=Path("."), help="recipe dir with exp/ and data/")
    p.add_argument("--systems", nargs="*", default=["dnn", "hdnn_kd"])
    p.add_argument("--sets", nargs="*", default=["dev", "eval"])
    p.add_argument("--gmm", default="tri1", help="GMM system (its graph is used for all)")
    p.add_argument("--no-gmm", action="store_true", help="skip the GMM decoder comparison")
    p.add_argument("--nj", type=int, default=2)
    p.add_argument("--beam", type=float, default=13.0)
    p.add_argument("--max-active", type=int, default=7000)
    p.add_argument("--nnet-lattice-beam", type=float, default=8.0)
    p.add_argument("--nnet-acwt", type=float, default=0.1)
    p.add_argument("--gmm-lattice-beam", type=float, default=6.0)
    p.add_argument("--gmm-acwt", type=float, default=0.083333)
    p.add_argument("--work", type=Path, default=Path("exp/decoder_parity"))
    p.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    args = p.parse_args()
    args.recipe = args.recipe.resolve()
    kroot = args.kaldi_root.resolve()
    kenv = {k: v for k, v in os.environ.items() if k != "KALDI_ROOT"}
    bins = ":".join(str(kroot / "src" / d) for d in KALDI_BIN_DIRS)
    kenv["PATH"] = f"{bins}:{REPO / '.venv' / 'bin'}:{kenv['PATH']}"
    kenv["LC_ALL"] = "C"
    work = (args.recipe / args.work).resolve()
    rows = []
    for test_set in args.sets:
        for system in args.systems:
            rows.append(network_row(args, kenv, system, test_set, work))
        if not args.no_gmm:
            rows.append(gmm_row(args, kenv, test_set, work))
    text = (
        f"Decoder parity (beam {args.beam}, max-active {args.max_active}; lattice beam "
        f"{args.nnet_lattice_beam} / acwt {args.nnet_acwt} networks, {args.gmm_lattice_beam} / "
        f"{args.gmm_acwt} GMM; {args.nj} jobs each; Kaldi {kroot})\n\n{table(rows)}\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
