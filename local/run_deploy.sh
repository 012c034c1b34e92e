#!/usr/bin/env bash
# run.sh stage 14: deploy the KD student. Exports it as one ONNX file (raw fbank -> the
# log-likelihoods latgen-faster-mapped takes; online CMVN started from the training set's global
# stats) and its int8 version, then decodes dev and eval with both, fed 20 frames at a time as a
# streaming front end would (docs/deploy.md).
#   local/run_deploy.sh [options] <data>     e.g. local/run_deploy.sh data
set -euo pipefail

decode_nj=2
train_cmd=run.pl
decode_cmd=run.pl
decode_opts=
base=exp/hdnn_kd
chunk_frames=20

help_message="Usage: $0 [options] <data>
Options: --decode-nj N --train-cmd CMD --decode-cmd CMD --decode-opts \"OPTS\" --base DIR
  (default: $base) --chunk-frames N (frames per call, default: $chunk_frames)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
. local/recipe_lib.sh
kd_check_options "$0" decode_nj:pos_int chunk_frames:nonneg_int
kd_check_num_args 1 $#
data=$1
[ -f $base/final.pt ] || { echo "$0: needs $base/final.pt (run.sh stage 9)" >&2; exit 1; }

out=$base/export
steps_kd/export_model.sh --cmd "$train_cmd" --global-cmvn-data "$data/train_fbank" $base $out
for kind in fp32 int8; do
  file=$out/model.onnx; [ $kind = int8 ] && file=$out/model.int8.onnx
  decode_dev_eval $base "$out/decode_SET_$kind" --exported $file --chunk-frames "$chunk_frames"
done
declare_system deploy $out
