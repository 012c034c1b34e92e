#!/usr/bin/env bash
# Hybrid decoding with an acoustic network (teacher DNN or HDNN student), as nnet1's
# steps/nnet/decode.sh: network log-likelihoods -> validation -> lattices -> scoring.
#   steps_kd/decode_nnet.sh [options] <graph-dir> <data-dir> <nnet-dir> <decode-dir>
set -euo pipefail

nj=4
cmd=run.pl
acwt=0.1
beam=13.0
lattice_beam=8.0
max_active=7000
prior_scale=1.0
gmm_dir=
model=            # checkpoint (default: <nnet-dir>/final.pt)
exported=         # an exported model (steps_kd/export_model.sh) instead of the checkpoint
chunk_frames=0    # with --exported: frames per call, as a streaming front end (0: whole utterances)
online_cmvn_per=speaker  # with --exported, online CMVN: stats carried over a speaker's utterances
device=           # empty: pykd's default (auto: cuda when torch sees a GPU)
num_threads=1
keep_loglikes=false
spk_params=       # per-speaker adapted parameters (steps_kd/adapt_hdnn.sh output dir)
stage=0
skip_scoring=false
scoring_opts="--min-lmwt 4 --max-lmwt 15"  # nnet1 decode.sh range (acwt 0.1)

help_message="Usage: steps_kd/decode_nnet.sh [options] <graph-dir> <data-dir> <nnet-dir> <decode-dir>
 e.g.: steps_kd/decode_nnet.sh --gmm-dir exp/tri1 exp/tri1/graph data/dev_fbank exp/dnn exp/dnn/decode_dev
<data-dir>: fbank feats.scp + cmvn.scp; <nnet-dir>: final.pt, prior.counts. The transition model
(final.mdl, whose pdfs the network outputs) comes from --gmm-dir (default: <nnet-dir>).
Writes <decode-dir>/lat.N.gz, log/, scoring_kaldi/ (via steps_kd/decode_loglikes.sh); the
log-likelihoods go to <decode-dir>/loglikes/ and are removed after decoding unless --keep-loglikes.
Options:
  --nj <n>                  # parallel jobs, split by speaker (default: $nj)
  --cmd <run.pl|queue.pl>   # job runner (default: $cmd)
  --acwt <f>                # acoustic scale (default: $acwt)
  --beam <f>                # decoding beam (default: $beam)
  --lattice-beam <f>        # lattice pruning beam (default: $lattice_beam)
  --max-active <n>          # max active states (default: $max_active)
  --prior-scale <f>         # scale on the log-prior (default: $prior_scale)
  --gmm-dir <dir>           # dir with final.mdl (e.g. exp/tri1; default: <nnet-dir>)
  --model <final.pt>        # network checkpoint (default: <nnet-dir>/final.pt)
  --exported <model.onnx>   # decode with an exported model (model.onnx / model.int8.onnx,
                            # steps_kd/export_model.sh): onnxruntime, its own CMVN and priors
  --chunk-frames <n>        # with --exported: <n> frames per call, streaming (default: whole)
  --online-cmvn-per <speaker|utterance>  # with --exported, online CMVN: carry the stats over a
                            # speaker's utterances or not (default: $online_cmvn_per)
  --device <cpu|cuda|auto>  # torch device for the forward pass (default: pykd's, auto)
  --num-threads <n>         # torch CPU threads per job (default: $num_threads)
  --keep-loglikes <bool>    # keep <decode-dir>/loglikes (default: $keep_loglikes)
  --spk-params <dir>        # per-speaker parameters <dir>/spk/<spk>.pt over the model
                            # (steps_kd/adapt_hdnn.sh); speakers without a file: base model
  --stage <n>               # 0: loglikes, 1: decode, 2: score (default: $stage)
  --skip-scoring <bool>     # do not score (default: $skip_scoring)
  --scoring-opts <opts>     # options for steps_kd/score.sh"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" nj:pos_int acwt:pos_float beam:pos_float lattice_beam:pos_float max_active:pos_int prior_scale:nonneg_float num_threads:nonneg_int keep_loglikes:bool chunk_frames:nonneg_int 'online_cmvn_per:speaker|utterance' stage:int skip_scoring:bool

kd_check_num_args 4 $#
graphdir=$1
data=$2
nnetdir=$3
dir=$4
me=steps_kd/decode_nnet.sh
[ -z "$gmm_dir" ] && gmm_dir=$nnetdir
[ -z "$model" ] && model=$nnetdir/final.pt
[ -n "$exported" ] && model=$exported
mdl=$gmm_dir/final.mdl

kd_require_files "$me" "$graphdir/HCLG.fst" "$graphdir/words.txt" "$data/feats.scp" "$data/utt2spk" \
  "$data/spk2utt" "$model" "$mdl"
kd_check_graph_pdfs "$me" "$graphdir" "$mdl"

nj=$(kd_num_jobs "$me" "$nj" "$data")
mkdir -p "$dir/log"
# A re-run with the same model, graph, data and options keeps finished lattices: after a kill
# during scoring, nothing is decoded again; after a kill during decoding, only the jobs without a
# complete lat.N.gz are. New inputs start afresh.
stamp=$(kd_inputs_stamp "$acwt $beam $lattice_beam $max_active $prior_scale $nj $chunk_frames $online_cmvn_per" "$model" \
  "$mdl" "$graphdir/HCLG.fst" "$data/feats.scp" "$data/utt2spk" "$spk_params")
jobs=$(seq -s ' ' "$nj")
if [ "$stage" -le 1 ]; then
  jobs=$(kd_jobs_to_run "$me" "$dir" lat "$stamp" "$nj")
fi
if [ "$stage" -le 0 ] && [ -n "$jobs" ]; then
  steps_kd/make_loglikes.sh --nj "$nj" --jobs "$jobs" --cmd "$cmd" --prior-scale "$prior_scale" \
    --model "$model" --gmm-model "$mdl" ${device:+--device "$device"} --num-threads "$num_threads" \
    --spk-params "$spk_params" ${exported:+--exported "$exported" --chunk-frames "$chunk_frames" --online-cmvn-per "$online_cmvn_per"} \
    "$data" "$nnetdir" "$dir/loglikes"
fi

if [ "$stage" -le 1 ]; then
  if [ -n "$jobs" ]; then
    [ -f "$dir/loglikes/loglikes.scp" ] || { echo "$me: no $dir/loglikes/loglikes.scp" >&2; exit 1; }
    check=true  # kept loglikes from an earlier run (--stage 1) are checked again
    [ "$stage" -le 0 ] && check=false  # steps_kd/make_loglikes.sh has just checked them
    steps_kd/decode_loglikes.sh --nj "$nj" --jobs "$jobs" --check-loglikes $check --cmd "$cmd" \
      --acwt "$acwt" --beam "$beam" \
      --lattice-beam "$lattice_beam" --max-active "$max_active" --model "$mdl" \
      --skip-scoring true "$graphdir" "$data" "$dir/loglikes/loglikes.scp" "$dir"
  fi
  [ -f "$dir/.inputs.pending" ] && kd_finish_outputs "$dir"
  if [ "$keep_loglikes" != true ]; then
    rm -f "$dir"/loglikes/loglikes.*.ark "$dir"/loglikes/loglikes*.scp "$dir"/loglikes.*.scp
  fi
fi
if [ "$stage" -le 2 ] && [ "$skip_scoring" != true ]; then
  # shellcheck disable=SC2086
  steps_kd/score.sh --cmd "$cmd" $scoring_opts "$data" "$graphdir" "$dir"
fi
[ -f "$dir/scoring_kaldi/best_wer" ] && echo "$me: $(cat "$dir/scoring_kaldi/best_wer")"
echo "$me: done decoding $data with $model into $dir"
