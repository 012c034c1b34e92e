#!/usr/bin/env bash
# Per-frame log-likelihoods over pdfs from an acoustic network (hybrid decoding input):
#   steps_kd/make_loglikes.sh [options] <data-dir> <nnet-dir> <out-dir>
# loglike = log_softmax(net(splice(cmvn(fbank)))) - prior_scale * log(prior), one Kaldi binary
# float matrix per utterance, written per job (split by speaker) as <out-dir>/loglikes.N.{ark,scp}
# and gathered in <out-dir>/loglikes.scp, then checked with `pykd validate-loglikes`.
set -euo pipefail

nj=4
cmd=run.pl
prior_scale=1.0
model=          # default <nnet-dir>/final.pt
prior_counts=   # default <nnet-dir>/prior.counts
num_pdfs=       # expected number of pdfs (default: the checkpoint's, or --gmm-model's)
gmm_model=      # a Kaldi final.mdl whose pdf count the loglikes must match
cmvn=auto
device=           # empty: pykd's default (auto: cuda when torch sees a GPU)
num_threads=1
spk_params=     # dir of pykd adapt-speakers (spk/<spk>.pt): per-speaker parameters
exported=       # an exported model (pykd export-model) instead of the checkpoint
chunk_frames=0  # with --exported: frames per call, as a streaming front end (0: whole utterances)
online_cmvn_per=speaker  # with --exported, online CMVN: stats carried over a speaker's utterances
jobs=           # job numbers to run (default: all; a resumed decode passes the unfinished ones)

help_message="Usage: steps_kd/make_loglikes.sh [options] <data-dir> <nnet-dir> <out-dir>
 e.g.: steps_kd/make_loglikes.sh --nj 4 data/dev_fbank exp/dnn exp/dnn/decode_dev/loglikes
<data-dir>: feats.scp (40-dim fbank), cmvn.scp, utt2spk, spk2utt. <nnet-dir>: final.pt,
prior.counts. Writes <out-dir>/loglikes.N.{ark,scp}, loglikes.scp, log/make_loglikes.N.log.
Options:
  --nj <n>                 # parallel jobs, split by speaker (default: $nj)
  --cmd <run.pl|queue.pl>  # job runner (default: $cmd)
  --prior-scale <f>        # scale on the log-prior; 0: log-posteriors (default: $prior_scale)
  --model <final.pt>       # checkpoint (default: <nnet-dir>/final.pt)
  --prior-counts <file>    # pdf counts (default: <nnet-dir>/prior.counts)
  --gmm-model <final.mdl>  # check the number of pdfs against this model
  --cmvn <auto|mean|meanvar|none>  # feature normalisation (default: the checkpoint's)
  --device <cpu|cuda|auto> # torch device (default: pykd's, auto)
  --num-threads <n>        # torch CPU threads per job (default: $num_threads)
  --spk-params <dir>       # per-speaker adapted parameters <dir>/spk/<spk>.pt over the model
                           # (steps_kd/adapt_hdnn.sh); speakers without a file: base model
  --exported <model.onnx>  # an exported model (steps_kd/export_model.sh: model.onnx or
                           # model.int8.onnx) run by onnxruntime; it holds its CMVN and priors
  --chunk-frames <n>       # with --exported: feed <n> frames per call (0: whole utterances)
  --online-cmvn-per <speaker|utterance>  # with --exported, online CMVN: carry the stats over a
                           # speaker's utterances, or start each from the prior (default: $online_cmvn_per)
  --jobs \"<j ...>\"         # run only these job numbers (default: all; a resumed decode)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" nj:pos_int prior_scale:nonneg_float 'num_pdfs:pos_int?' 'cmvn:auto|mean|meanvar|none' num_threads:nonneg_int chunk_frames:nonneg_int 'online_cmvn_per:speaker|utterance'

kd_check_num_args 3 $#
data=$1
nnetdir=$2
dir=$3
me=steps_kd/make_loglikes.sh
[ -z "$model" ] && model=$nnetdir/final.pt
[ -n "$exported" ] && model=$exported
[ -z "$prior_counts" ] && prior_counts=$nnetdir/prior.counts

kd_require_files "$me" "$data/feats.scp" "$data/utt2spk" "$data/spk2utt" "$model"
case "$cmvn" in
  mean|meanvar) [ -f "$data/cmvn.scp" ] || { echo "$me: no such file $data/cmvn.scp" >&2; exit 1; } ;;
  auto|none) ;;
  *) echo "$me: --cmvn must be auto, mean, meanvar or none, got '$cmvn'" >&2; exit 1 ;;
esac
prior_opt=()
if [ -n "$exported" ]; then
  prior_scale=0  # the exported file divides by its own priors
  prior_opt=(--exported "$exported" --chunk-frames "$chunk_frames" --online-cmvn-per "$online_cmvn_per")
elif kd_nonzero "$prior_scale"; then
  [ -f "$prior_counts" ] || { echo "$me: no such file $prior_counts (or use --prior-scale 0)" >&2; exit 1; }
  prior_opt=(--prior-counts "$prior_counts")
fi
spk_opt=()
if [ -n "$spk_params" ]; then
  [ -d "$spk_params/spk" ] || { echo "$me: no such dir $spk_params/spk (--spk-params)" >&2; exit 1; }
  spk_opt=(--spk-params "$spk_params")
fi
model_arg=("$model")  # a checkpoint; an exported model comes with --exported
[ -n "$exported" ] && model_arg=()
nj=$(kd_num_jobs "$me" "$nj" "$data")

mkdir -p "$dir/log"
utils/split_data.sh "$data" "$nj"
sdata=$data/split$nj
echo "$me: log-likelihoods of $data with $model${spk_params:+ + speaker params $spk_params} (prior scale $prior_scale) into $dir"
jobs=$(kd_job_list "$me" "$nj" "$jobs")
kd_run_jobs "$cmd" "$jobs" "$dir/log/make_loglikes.JOB.log" \
  pykd make-loglikes "${prior_opt[@]}" "${spk_opt[@]}" --prior-scale "$prior_scale" --cmvn "$cmvn" \
    ${device:+--device "$device"} --num-threads "$num_threads" \
    "${model_arg[@]}" "$sdata/JOB" "$dir/loglikes.JOB.ark" "$dir/loglikes.JOB.scp"
for j in $jobs; do cat "$dir/loglikes.$j.scp"; done > "$dir/loglikes.scp.tmp"
mv "$dir/loglikes.scp.tmp" "$dir/loglikes.scp"
for j in $jobs; do cat "$sdata/$j/feats.scp"; done > "$dir/feats_of_jobs.scp"
echo "$nj" > "$dir/num_jobs"

# every utterance of these jobs, one row per frame
check=(--utt2num-frames "$dir/feats_of_jobs.scp")
if [ -n "$gmm_model" ]; then
  check+=(--model "$gmm_model")
elif [ -n "$num_pdfs" ]; then
  check+=(--num-pdfs "$num_pdfs")
elif [ -n "$exported" ]; then
  check+=(--exported "$exported")
else
  check+=(--checkpoint "$model")
fi
pykd validate-loglikes "${check[@]}" "$dir/loglikes.scp" 2> "$dir/log/validate.log" || {
  cat "$dir/log/validate.log" >&2; echo "$me: invalid log-likelihoods in $dir" >&2; exit 1; }
echo "$me: done: $(wc -l < "$dir/loglikes.scp") utterances in $dir/loglikes.scp"
