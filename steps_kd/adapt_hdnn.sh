#!/usr/bin/env bash
# Per-speaker adaptation of a trained network (by default only the HDNN's shared gates):
#   steps_kd/adapt_hdnn.sh [options] <data-dir> <base-nnet-dir> <out-dir>
# For every speaker of <data-dir>, a copy of <base-nnet-dir>/final.pt is trained on that
# speaker's frames with targets from the teacher's posteriors (--method teacher, unsupervised
# KD), the best paths of a first-pass decoding (--method decode) or the reference alignments
# (--method oracle), and the adapted tensors are stored in <out-dir>/spk/<spk>.pt; decode with
# steps_kd/decode_nnet.sh --spk-params <out-dir>. See docs/adaptation.md.
set -euo pipefail

me=steps_kd/adapt_hdnn.sh
cmd=run.pl
method=teacher
model=          # base checkpoint (default: <base-nnet-dir>/final.pt)
teacher=        # --method teacher: teacher final.pt (e.g. exp/dnn/final.pt)
teacher_posts=  # --method teacher: or its cached posteriors over <data-dir> (make_teacher_posts.sh)
lattices=       # --method decode: first-pass decode dir (lat.N.gz, scoring_kaldi/best_wer)
ali_dir=        # --method oracle: alignments of <data-dir>'s transcripts (ali.N.gz)
gmm_model=      # final.mdl of the pdfs (default: <base-nnet-dir>/final.mdl, or <ali-dir>'s)
lmwt=           # --method decode: LM weight of the best path (default: best_wer's)
wip=            # --method decode: word insertion penalty (default: best_wer's)
params=gates
epochs=3
lr=5e-4
optimizer=adam
batch_size=256
kl_weight=0
min_frames=300
protocol=same
seed=777
teacher_cache_mb=1024
device=           # empty: pykd's default (auto: cuda when torch sees a GPU)
num_threads=1

help_message="Usage: $me [options] <data-dir> <base-nnet-dir> <out-dir>
 e.g.: $me --method teacher --teacher exp/dnn/final.pt data/dev_fbank exp/hdnn_kd exp/hdnn_kd/adapt_teacher_dev
       $me --method decode --lattices exp/hdnn_kd/decode_dev --gmm-model exp/tri1/final.mdl \\
         data/dev_fbank exp/hdnn_kd exp/hdnn_kd/adapt_decode_dev
       $me --method oracle --ali-dir exp/tri1_ali_dev --gmm-model exp/tri1/final.mdl \\
         data/dev_fbank exp/hdnn_kd exp/hdnn_kd/adapt_oracle_dev
<data-dir>: fbank feats.scp, cmvn.scp, utt2spk, spk2utt; <base-nnet-dir>: final.pt.
Writes <out-dir>/spk/<spk>.pt (adapted tensors + the base's sha256), adapt_stats.tsv (speaker,
frames, adapted params, loss before/after, seconds, status), summary.json, log/adapt.log and,
with --protocol split, the utterance lists adapt_utts and test_utts.
Options:
  --cmd <run.pl|queue.pl ...>   # job runner (default: $cmd)
  --method <teacher|decode|oracle>  # targets (default: $method)
  --model <final.pt>            # base model (default: <base-nnet-dir>/final.pt)
  --teacher <final.pt>          # teacher network (--method teacher)
  --teacher-posts <dir>         # or its cached top-k posteriors over <data-dir>
                                # (steps_kd/make_teacher_posts.sh; --method teacher)
  --lattices <decode-dir>       # first-pass decoding of <data-dir> (--method decode)
  --ali-dir <dir>               # forced alignments of <data-dir> (--method oracle)
  --gmm-model <final.mdl>       # transition model of the pdfs (decode/oracle)
  --lmwt <n> --wip <f>          # best-path LM weight / penalty (default: from best_wer)
  --params <gates|all|output_bias>  # what is adapted (default: $params)
  --epochs <n>                  # passes over a speaker's data (default: $epochs)
  --lr <f>                      # learning rate (default: $lr)
  --optimizer <adam|sgd>        # (default: $optimizer)
  --batch-size <n>              # frames per mini-batch (default: $batch_size)
  --kl-weight <f>               # weight of KL(SI || adapted) regulariser (default: $kl_weight)
  --min-frames <n>              # fewer adaptation frames: speaker left unadapted (default: $min_frames)
  --protocol <same|split>       # same: adapt on all utterances; split: on the first half of
                                # each speaker's sorted utterances (default: $protocol)
  --teacher-cache-mb <f>        # keep a speaker's teacher posteriors up to this size,
                                # else recompute per mini-batch (default: $teacher_cache_mb)
  --seed <n>                    # (default: $seed)
  --device <cpu|cuda|auto>      # (default: pykd's, auto)
  --num-threads <n>             # torch CPU threads, 0 = torch default (default: $num_threads)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" 'method:teacher|decode|oracle' 'lmwt:pos_int?' 'wip:nonneg_float?' 'params:gates|all|output_bias' epochs:pos_int lr:pos_float 'optimizer:adam|sgd' batch_size:pos_int kl_weight:nonneg_float min_frames:nonneg_int 'protocol:same|split' seed:int teacher_cache_mb:nonneg_int num_threads:nonneg_int

kd_check_num_args 3 $#
data=$1
nnetdir=$2
dir=$3
[ -z "$model" ] && model=$nnetdir/final.pt

kd_require_files "$me" "$data/feats.scp" "$data/utt2spk" "$data/spk2utt" "$model"
case "$params" in gates|all|output_bias) ;;
  *) echo "$me: --params must be gates, all or output_bias, got '$params'" >&2; exit 1 ;; esac
case "$protocol" in same|split) ;;
  *) echo "$me: --protocol must be same or split, got '$protocol'" >&2; exit 1 ;; esac

opts=(--model "$model")
case "$method" in
  teacher)
    if [ -n "$teacher_posts" ]; then
      [ -z "$teacher" ] || { echo "$me: give --teacher or --teacher-posts, not both" >&2; exit 1; }
      kd_require_files "$me" "$teacher_posts/post.scp" "$teacher_posts/info.json"
      opts+=(--teacher-posts "$teacher_posts")
    else
      [ -n "$teacher" ] || { echo "$me: --method teacher needs --teacher <final.pt> or --teacher-posts <dir>" >&2; exit 1; }
      [ -f "$teacher" ] || { echo "$me: no such file $teacher" >&2; exit 1; }
      opts+=(--teacher "$teacher")
    fi ;;
  decode)
    [ -n "$lattices" ] || { echo "$me: --method decode needs --lattices <decode-dir>" >&2; exit 1; }
    ls "$lattices"/lat.*.gz >/dev/null 2>&1 || { echo "$me: no lat.*.gz in $lattices" >&2; exit 1; }
    [ -f "$lattices/scoring_kaldi/best_wer" ] || [ -n "$lmwt" ] || {
      echo "$me: no $lattices/scoring_kaldi/best_wer (score it, or give --lmwt and --wip)" >&2; exit 1; }
    [ -z "$gmm_model" ] && gmm_model=$nnetdir/final.mdl
    opts+=(--lattices "$lattices" --gmm-model "$gmm_model")
    [ -n "$lmwt" ] && opts+=(--lmwt "$lmwt")
    [ -n "$wip" ] && opts+=(--wip "$wip") ;;
  oracle)
    [ -n "$ali_dir" ] || { echo "$me: --method oracle needs --ali-dir <dir>" >&2; exit 1; }
    ls "$ali_dir"/ali.*.gz >/dev/null 2>&1 || { echo "$me: no ali.*.gz in $ali_dir" >&2; exit 1; }
    if [ -z "$gmm_model" ]; then
      gmm_model=$ali_dir/final.mdl
      [ -f "$gmm_model" ] || gmm_model=$nnetdir/final.mdl
    fi
    opts+=(--ali-dir "$ali_dir" --gmm-model "$gmm_model") ;;
  *) echo "$me: --method must be teacher, decode or oracle, got '$method'" >&2; exit 1 ;;
esac
if [ "$method" != teacher ]; then
  [ -f "$gmm_model" ] || { echo "$me: no such file $gmm_model (--gmm-model)" >&2; exit 1; }
fi
opts+=(--params "$params" --epochs "$epochs" --lr "$lr" --optimizer "$optimizer"
       --batch-size "$batch_size" --kl-weight "$kl_weight" --min-frames "$min_frames"
       --protocol "$protocol" --seed "$seed" --teacher-cache-mb "$teacher_cache_mb"
       ${device:+--device "$device"} --num-threads "$num_threads")

mkdir -p "$dir/log"
echo "$me: adapting $params of $model per speaker of $data ($method targets, $protocol protocol)"
$cmd "$dir/log/adapt.log" pykd adapt-speakers "${opts[@]}" "$data" "$dir" \
  || { echo "$me: adaptation failed, see $dir/log/adapt.log" >&2; exit 1; }
grep -E "left unadapted|WARNING" "$dir/log/adapt.log" || true
echo "$me: done: $(grep -c $'\tadapted$' "$dir/adapt_stats.tsv") speakers adapted" \
  "($(grep -c $'\tskipped' "$dir/adapt_stats.tsv" || true) skipped), see $dir/adapt_stats.tsv"
