#!/usr/bin/env bash
# Export a trained network for deployment: one ONNX file from raw features to the
# log-likelihoods latgen-faster-mapped takes (CMVN, splice, network, log-softmax, prior), and its
# int8 version (docs/deploy.md).
#   steps_kd/export_model.sh [options] <nnet-dir> <out-dir>
set -euo pipefail

cmd=run.pl
model=              # checkpoint (default: <nnet-dir>/final.pt)
prior_scale=1.0
cmvn_source=online  # online: stats accumulated frame by frame; speaker: the caller's speaker stats
global_cmvn_data=   # data dir whose summed cmvn.scp starts online CMVN (e.g. data/train_fbank)
int8=true

help_message="Usage: steps_kd/export_model.sh [options] <nnet-dir> <out-dir>
 e.g.: steps_kd/export_model.sh --global-cmvn-data data/train_fbank exp/hdnn_kd exp/hdnn_kd/export
<nnet-dir>: final.pt, prior.counts. Writes <out-dir>/model.onnx, model.int8.onnx, export.json,
log/export.log. Decode with steps_kd/decode_nnet.sh --exported <out-dir>/model.int8.onnx.
Options:
  --cmd <run.pl|queue.pl>     # job runner (default: $cmd)
  --model <final.pt>          # checkpoint (default: <nnet-dir>/final.pt)
  --prior-scale <f>           # scale on the log-prior (default: $prior_scale)
  --cmvn-source <online|speaker>  # how CMVN stats are had at run time (default: $cmvn_source)
  --global-cmvn-data <dir>    # data dir whose cmvn.scp (summed) starts online CMVN
  --int8 <bool>               # also write model.int8.onnx (default: $int8)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" prior_scale:nonneg_float 'cmvn_source:online|speaker' int8:bool

kd_check_num_args 2 $#
nnetdir=$1
dir=$2
me=steps_kd/export_model.sh
[ -z "$model" ] && model=$nnetdir/final.pt
kd_require_files "$me" "$model" "$nnetdir/prior.counts"
[ -z "$global_cmvn_data" ] || kd_require_files "$me" "$global_cmvn_data/cmvn.scp"

mkdir -p "$dir/log"
echo "$me: exporting $model to $dir (cmvn $cmvn_source)"
$cmd "$dir/log/export.log" \
  pykd export-model --prior-counts "$nnetdir/prior.counts" --prior-scale "$prior_scale" \
    --cmvn-source "$cmvn_source" ${global_cmvn_data:+--global-cmvn-data "$global_cmvn_data"} \
    --int8 "$int8" "$model" "$dir"
grep "exported" "$dir/log/export.log" | sed "s|^.*exported|$me: exported|"
