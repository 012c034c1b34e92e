#!/usr/bin/env bash
# Per-speaker CMVN statistics (interface of Kaldi's steps/compute_cmvn_stats.sh).
set -euo pipefail

help_message="Usage: steps_kd/compute_cmvn_stats.sh [options] <data-dir> [<log-dir> [<cmvn-dir>]]
 e.g.: steps_kd/compute_cmvn_stats.sh data/train exp/make_fbank/train fbank
Accumulates per-speaker CMVN stats (Kaldi format: 2 x (dim+1) double matrix per speaker) from
<data-dir>/feats.scp and <data-dir>/spk2utt into <cmvn-dir>/cmvn_<name>.{ark,scp} and copies the
scp to <data-dir>/cmvn.scp. Defaults: <log-dir> = <data-dir>/log, <cmvn-dir> = <data-dir>/data.
With PYKD_KALDI=1 (path.sh, real Kaldi present) Kaldi's compute-cmvn-stats does the work."

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
data=$1
logdir=${2:-$data/log}
cmvndir=${3:-$data/data}
name=$(basename "$data")

kd_require_files "$0" "$data/feats.scp" "$data/spk2utt"
mkdir -p "$logdir" "$cmvndir"
cmvndir=$(cd "$cmvndir" && pwd)  # cmvn.scp holds absolute paths, as in Kaldi
log=$logdir/cmvn_$name.log

if [ "${PYKD_KALDI:-0}" = 1 ]; then
  run=(compute-cmvn-stats "--spk2utt=ark:$data/spk2utt" "scp:$data/feats.scp"
       "ark,scp:$cmvndir/cmvn_$name.ark,$cmvndir/cmvn_$name.scp")
else
  run=(pykd compute-cmvn-stats --spk2utt "$data/spk2utt" "$data/feats.scp"
       "$cmvndir/cmvn_$name.ark" "$cmvndir/cmvn_$name.scp")
fi
if ! "${run[@]}" 2> "$log"; then
  echo "$0: error computing CMVN stats for $name; see $log:" >&2
  tail -n 5 "$log" >&2
  exit 1
fi
cp "$cmvndir/cmvn_$name.scp" "$data/cmvn.scp.tmp"
mv "$data/cmvn.scp.tmp" "$data/cmvn.scp"

nc=$(wc -l < "$data/cmvn.scp")
ns=$(wc -l < "$data/spk2utt")
if [ "$nc" -ne "$ns" ]; then
  echo "$0: warning: $((ns - nc)) of $ns speakers got no CMVN stats (no features); see $log"
fi
echo "$0: succeeded creating CMVN stats for $name ($nc speakers)"
