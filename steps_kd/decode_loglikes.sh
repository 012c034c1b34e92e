#!/usr/bin/env bash
# Lattice decoding of per-frame log-likelihoods over pdfs (hybrid networks): the equivalent of
# Kaldi's latgen-faster-mapped run per job, as nnet1's steps/nnet/decode.sh does.
#   steps_kd/decode_loglikes.sh [options] <graph-dir> <data-dir> <loglikes-scp> <decode-dir>
set -euo pipefail

nj=4
cmd=run.pl
beam=13.0
lattice_beam=6.0
max_active=7000
acwt=0.083333
model=
stage=0
skip_scoring=false
scoring_opts=
jobs=           # job numbers to run (default: all; a resumed decode passes the unfinished ones)
check_loglikes=true  # validate the log-likelihoods first (false: the caller just did)

help_message="Usage: steps_kd/decode_loglikes.sh [options] <graph-dir> <data-dir> <loglikes> <decode-dir>
 e.g.: steps_kd/decode_loglikes.sh --nj 4 exp/tri1/graph data/dev_fbank exp/dnn/loglikes_dev.scp exp/dnn/decode_dev
<loglikes>: an scp (or, with --nj 1, an ark) of T x num_pdfs matrices of log-likelihoods
(log-posterior minus log-prior, natural log, unscaled). Writes <decode-dir>/lat.N.gz (Kaldi
CompactLattice arks), num_jobs, log/decode.N.log, then scores with steps_kd/score.sh.
Options:
  --nj <n>                  # parallel jobs, split by speaker (default: $nj)
  --cmd <run.pl|queue.pl>   # job runner (default: $cmd)
  --beam <f>                # decoding beam (default: $beam)
  --lattice-beam <f>        # lattice pruning beam (default: $lattice_beam)
  --max-active <n>          # max active states (default: $max_active)
  --acwt <f>                # acoustic scale (default: $acwt)
  --model <mdl>             # transition model (default: <decode-dir>/../final.mdl)
  --skip-scoring <bool>     # do not score (default: $skip_scoring)
  --scoring-opts <opts>     # options for steps_kd/score.sh
  --jobs \"<j ...>\"          # run only these job numbers (default: all; a resumed decode)
  --check-loglikes <bool>   # pykd validate-loglikes first: dim = the model's pdfs, finite, every
                            # utterance of <data-dir> (default: $check_loglikes)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" nj:pos_int beam:pos_float lattice_beam:pos_float max_active:pos_int acwt:pos_float stage:int skip_scoring:bool check_loglikes:bool

kd_check_num_args 4 $#
graphdir=$1
data=$2
loglikes=$3
dir=$4
me=steps_kd/decode_loglikes.sh
[ -z "$model" ] && model=$(dirname "$dir")/final.mdl

kd_require_files "$me" "$graphdir/HCLG.fst" "$graphdir/words.txt" "$data/utt2spk" "$data/spk2utt" \
  "$loglikes" "$model"
case "$loglikes" in
  *.scp) kind=scp ;;
  *) kind=ark
     if [ "$nj" -ne 1 ]; then echo "$me: $loglikes is not an scp: using --nj 1"; nj=1; fi ;;
esac
nj=$(kd_num_jobs "$me" "$nj" "$data")

mkdir -p "$dir/log"
echo "$nj" > "$dir/num_jobs"
jobs=$(kd_job_list "$me" "$nj" "$jobs")
if [ "$kind" = scp ]; then
  utils/split_data.sh "$data" "$nj"
  for j in $(seq "$nj"); do
    utils/filter_scp.pl "$data/split$nj/$j/utt2spk" "$loglikes" > "$dir/loglikes.$j.scp"
  done
  input="scp:$dir/loglikes.JOB.scp"
else
  input="ark:$loglikes"
fi

if [ "${PYKD_KALDI:-0}" = 1 ]; then
  latgen=(latgen-faster-mapped)
  out="ark:|gzip -c > $dir/lat.JOB.gz"
else
  latgen=(pykd latgen-faster-mapped)
  out="$dir/lat.JOB.gz"
fi

if [ "$stage" -le 0 ] && [ "$check_loglikes" = true ]; then
  # A NaN or a wrong column count would decode into a wrong result without an error.
  pykd validate-loglikes --model "$model" --data-dir "$data" "$loglikes" 2> "$dir/log/validate.log" \
    || { cat "$dir/log/validate.log" >&2; echo "$me: invalid log-likelihoods $loglikes" >&2; exit 1; }
fi
if [ "$stage" -le 0 ]; then
  echo "$me: decoding $loglikes with $graphdir/HCLG.fst into $dir"
  kd_run_jobs "$cmd" "$jobs" "$dir/log/decode.JOB.log" \
    "${latgen[@]}" --max-active="$max_active" --beam="$beam" \
      --lattice-beam="$lattice_beam" --acoustic-scale="$acwt" --allow-partial=true \
      --word-symbol-table="$graphdir/words.txt" \
      "$model" "$graphdir/HCLG.fst" "$input" "$out"
fi

if [ "$stage" -le 1 ] && [ "$skip_scoring" != true ]; then
  # shellcheck disable=SC2086
  steps_kd/score.sh --cmd "$cmd" $scoring_opts "$data" "$graphdir" "$dir"
fi
echo "$me: done decoding into $dir"
