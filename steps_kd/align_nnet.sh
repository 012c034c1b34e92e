#!/usr/bin/env bash
# Forced alignment with an acoustic network, as Kaldi nnet1's steps/nnet/align.sh: network
# log-likelihoods (log-posterior - log-prior) through each utterance's training graph.
#   steps_kd/align_nnet.sh [options] <data-dir> <lang-dir> <nnet-dir> <align-dir>
set -euo pipefail

nj=4
cmd=run.pl
gmm_dir=          # final.mdl + tree of the network's pdfs (default: <nnet-dir>)
model=            # default <nnet-dir>/final.pt
beam=10
retry_beam=40
acwt=0.1
transition_scale=1.0
self_loop_scale=0.1
device=           # empty: pykd's default (auto: cuda when torch sees a GPU)
num_threads=1

help_message="Usage: steps_kd/align_nnet.sh [options] <data-dir> <lang-dir> <nnet-dir> <align-dir>
 e.g.: steps_kd/align_nnet.sh --gmm-dir exp/tri1 data/train_fbank data/lang exp/dnn exp/dnn_ali
<data-dir>: fbank feats.scp, cmvn.scp, text; <nnet-dir>: final.pt, prior.counts. Writes
<align-dir>/ali.N.gz (transition-ids, as align_si.sh), final.mdl, tree, num_jobs, log/align.N.log.
Utterances that do not align at --retry-beam are skipped and named in the log.
Options:
  --nj <n>                  # parallel jobs, split by speaker (default: $nj)
  --cmd <run.pl|queue.pl>   # job runner (default: $cmd)
  --gmm-dir <dir>           # final.mdl and tree (default: <nnet-dir>)
  --model <final.pt>        # network (default: <nnet-dir>/final.pt)
  --beam <f> --retry-beam <f>  # alignment beams (default: $beam, $retry_beam)
  --acwt <f>                # acoustic scale (default: $acwt)
  --transition-scale <f> --self-loop-scale <f>  # (default: $transition_scale, $self_loop_scale)
  --device <cpu|cuda|auto>  # (default: pykd's, auto)
  --num-threads <n>         # torch threads per job (default: $num_threads)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" nj:pos_int beam:pos_float retry_beam:pos_float acwt:pos_float transition_scale:nonneg_float self_loop_scale:nonneg_float num_threads:nonneg_int

kd_check_num_args 4 $#
data=$1
lang=$2
nnetdir=$3
dir=$4
me=steps_kd/align_nnet.sh
[ -z "$gmm_dir" ] && gmm_dir=$nnetdir
[ -z "$model" ] && model=$nnetdir/final.pt

kd_require_files "$me" "$data/feats.scp" "$data/text" "$data/utt2spk" "$data/spk2utt" "$lang/L.fst" \
  "$lang/words.txt" "$lang/phones/disambig.int" "$gmm_dir/final.mdl" "$gmm_dir/tree" \
  "$model" "$nnetdir/prior.counts"
nj=$(kd_num_jobs "$me" "$nj" "$data")

mkdir -p "$dir/log"
utils/split_data.sh "$data" "$nj"
sdata=$data/split$nj
echo "$me: aligning $data with $model, putting alignments in $dir"
$cmd JOB=1:"$nj" "$dir/log/align.JOB.log" \
  pykd align-nnet --beam "$beam" --retry-beam "$retry_beam" --acoustic-scale "$acwt" \
    --transition-scale "$transition_scale" --self-loop-scale "$self_loop_scale" \
    --model "$model" ${device:+--device "$device"} --num-threads "$num_threads" \
    "$sdata/JOB" "$lang" "$gmm_dir" "$nnetdir" "$dir/ali.JOB.gz"
for f in final.mdl tree; do cp "$gmm_dir/$f" "$dir/$f"; done
echo "$nj" > "$dir/num_jobs"
grep -h "Done " "$dir"/log/align.*.log || true
echo "$me: done aligning data."
