#!/usr/bin/env bash
# Lattice decoding with a GMM model, interface of Kaldi's steps/decode.sh:
#   steps_kd/decode.sh [options] <graph-dir> <data-dir> <decode-dir>
# With PYKD_KALDI=1 Kaldi's own steps/decode.sh runs with the same arguments; otherwise
# `pykd gmm-latgen-faster` (builtin decoder, Kaldi lattice format) does the work.
set -euo pipefail
orig_args=("$@")

nj=4
cmd=run.pl
beam=13.0
lattice_beam=6.0
max_active=7000
acwt=0.083333
model=
iter=final
stage=0
skip_scoring=false
scoring_opts=

help_message="Usage: steps_kd/decode.sh [options] <graph-dir> <data-dir> <decode-dir>
 e.g.: steps_kd/decode.sh --nj 4 exp/tri1/graph data/dev exp/tri1/decode_dev
Decodes <data-dir> (MFCC feats.scp + per-speaker cmvn.scp, deltas added on the fly) with
<decode-dir>/../final.mdl through <graph-dir>/HCLG.fst; writes <decode-dir>/lat.N.gz (Kaldi
CompactLattice arks, acoustic costs unscaled), num_jobs, log/decode.N.log, then scores with
steps_kd/score.sh (wer_<LMWT>_<WIP>, scoring_kaldi/best_wer, sclite reports).
Options:
  --nj <n>                  # parallel jobs, split by speaker (default: $nj)
  --cmd <run.pl|queue.pl>   # job runner (default: $cmd)
  --beam <f>                # decoding beam (default: $beam)
  --lattice-beam <f>        # lattice pruning beam (default: $lattice_beam)
  --max-active <n>          # max active states (default: $max_active)
  --acwt <f>                # acoustic scale (default: $acwt)
  --model <mdl>             # model (default: <decode-dir>/../<iter>.mdl)
  --iter <name>             # model iteration (default: $iter)
  --skip-scoring <bool>     # do not score (default: $skip_scoring)
  --scoring-opts <opts>     # options for steps_kd/score.sh"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" nj:pos_int beam:pos_float lattice_beam:pos_float max_active:pos_int acwt:pos_float stage:int skip_scoring:bool

kd_check_num_args 3 $#
graphdir=$1
data=$2
dir=$3
srcdir=$(dirname "$dir")
me=steps_kd/decode.sh

kd_use_kaldi_script "$me" steps/decode.sh "${orig_args[@]}"

[ -z "$model" ] && model=$srcdir/$iter.mdl
kd_require_files "$me" "$graphdir/HCLG.fst" "$graphdir/words.txt" "$data/feats.scp" "$data/cmvn.scp" \
  "$data/utt2spk" "$data/spk2utt" "$model"
nj=$(kd_num_jobs "$me" "$nj" "$data")
if [ -f "$srcdir/final.mat" ]; then
  echo "$me: $srcdir/final.mat (LDA/MLLT features) is not supported by the builtin decoder" >&2
  exit 1
fi
cmvn_opts=
[ -f "$srcdir/cmvn_opts" ] && cmvn_opts=$(cat "$srcdir/cmvn_opts")

mkdir -p "$dir/log"
# A re-run with the same model, graph, data and options keeps finished lattices: only the jobs
# without a complete lat.N.gz are decoded again (none after a kill during scoring).
stamp=$(kd_inputs_stamp "$acwt $beam $lattice_beam $max_active $nj $cmvn_opts" "$model" \
  "$graphdir/HCLG.fst" "$data/feats.scp" "$data/cmvn.scp" "$data/utt2spk")
jobs=$(seq -s ' ' "$nj")
[ "$stage" -le 0 ] && jobs=$(kd_jobs_to_run "$me" "$dir" lat "$stamp" "$nj")
echo "$nj" > "$dir/num_jobs"
utils/split_data.sh "$data" "$nj"
sdata=$data/split$nj

if [ "$stage" -le 0 ] && [ -n "$jobs" ]; then
  echo "$me: decoding $data with $model and $graphdir/HCLG.fst into $dir"
  kd_run_jobs "$cmd" "$jobs" "$dir/log/decode.JOB.log" \
    pykd gmm-latgen-faster --max-active="$max_active" --beam="$beam" \
      --lattice-beam="$lattice_beam" --acoustic-scale="$acwt" --allow-partial=true \
      --word-symbol-table="$graphdir/words.txt" --cmvn-opts="$cmvn_opts" \
      "$model" "$graphdir/HCLG.fst" "gmmfeats:$sdata/JOB" "$dir/lat.JOB.gz"
  grep -h "Lattice density\|failed for" "$dir"/log/decode.*.log | sed "s|^|$me: |" || true
fi
[ "$stage" -le 0 ] && [ -f "$dir/.inputs.pending" ] && kd_finish_outputs "$dir"

if [ "$stage" -le 1 ] && [ "$skip_scoring" != true ]; then
  # shellcheck disable=SC2086
  steps_kd/score.sh --cmd "$cmd" $scoring_opts "$data" "$graphdir" "$dir"
fi
echo "$me: done decoding $data into $dir"
