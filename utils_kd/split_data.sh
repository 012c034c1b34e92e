#!/usr/bin/env bash
# pykd's split_data.sh: same interface and output as Kaldi's utils/split_data.sh (written from
# scratch for pykd; the work is done by _kdlib.py, Python 3 stdlib-only).
set -euo pipefail
usage="Usage: $0 [--per-utt] <data-dir> <num-to-split>
 Splits <data-dir> into <data-dir>/split<N>/{1..N} (with --per-utt: <data-dir>/split<N>utt/{1..N}):
 utt2spk, spk2utt, text, feats.scp, wav.scp/segments (only the recordings needed), cmvn.scp (per
 speaker), utt2dur, utt2num_frames, reco2file_and_channel, ... split consistently.
 By default whole speakers go to one piece (error if <N> exceeds the number of speakers).
 Does nothing if the split is up to date (newer than the source files)."
per_utt=false
while [ $# -gt 0 ]; do
  case "$1" in
    --per-utt) per_utt=true; shift ;;
    --help|-h) echo "$usage" >&2; exit 0 ;;
    --*) echo "$0: unknown option $1" >&2; echo "$usage" >&2; exit 1 ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || { echo "$usage" >&2; exit 1; }
data=$1; numsplit=$2
[[ "$numsplit" =~ ^[1-9][0-9]*$ ]] || { echo "$0: invalid num-to-split '$numsplit'" >&2; exit 1; }
[ -f "$data/utt2spk" ] || { echo "$0: no such file $data/utt2spk" >&2; exit 1; }
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
KD_SCRIPT=split_data.sh exec python3 "$here/_kdlib.py" split "$data" "$numsplit" "$per_utt"
