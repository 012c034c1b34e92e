#!/usr/bin/env bash
# Train a frame-level acoustic network (teacher DNN with CE, or HDNN student with KD), in the
# manner of Kaldi nnet1's steps/nnet/train.sh: pykd train-nnet, logged to <out-dir>/log/train.log.
set -euo pipefail

me=steps_kd/train_nnet.sh
cmd=run.pl
model_config=conf/teacher_dnn.yaml
train_config=
teacher=
teacher_posts=
kd_p=            # default: pykd train-nnet's (pykd/train/options.py)
kd_temperature=
lr=
max_epochs=
min_epochs=
keep_lr_epochs=
batch_size=
precision=        # default: pykd train-nnet's (float32)
buffer_frames=
seed=
device=           # empty: pykd's default (auto: cuda when torch sees a GPU)
data_on_device=false
num_threads=0
num_procs=1
resume=false

help_message="Usage: $me [options] <data-dir> <ali-dir> <gmm-dir> <out-dir>
 e.g.: $me --model-config conf/teacher_dnn.yaml data/train_fbank exp/tri1_ali exp/tri1 exp/dnn
       $me --model-config conf/student_hdnn.yaml --teacher exp/dnn/final.pt --kd-p 0.5 \\
         data/train_fbank exp/tri1_ali exp/tri1 exp/hdnn_kd
<data-dir>: fbank feats.scp (+ cmvn.scp, utt2spk); <ali-dir>: ali.*.gz; <gmm-dir>: final.mdl.
Writes <out-dir>/{final.pt,prior.counts,final.mdl,summary.json,learning_curve.png,checkpoints/,
log/train.log}; <out-dir> is then a valid <nnet-dir> for steps_kd/decode_nnet.sh.
Options:
  --cmd <run.pl|queue.pl ...>   # job runner (default: $cmd)
  --model-config <yaml>         # model: section (default: $model_config)
  --train-config <yaml>         # train: section (TrainConfig fields)
  --teacher <final.pt>          # train with knowledge distillation from this network
  --teacher-posts <dir>         # ... from its cached top-k posteriors (make_teacher_posts.sh)
  --kd-p <f>                    # KD weight p (default: pykd train-nnet's, see its --help)
  --kd-temperature <f>          # KD temperature (default: pykd train-nnet's)
  --lr <f> --max-epochs <n> --batch-size <n> --buffer-frames <n> --seed <n>  # overrides
  --min-epochs <n> --keep-lr-epochs <n>  # newbob overrides: no stop before n epochs; n epochs at
                                # the initial lr before halving may start
  --precision <float32|bfloat16|auto>  # matrix products in training; auto: bfloat16 where the
                                # device has native bfloat16 (AMX CPUs, CUDA) (default: pykd's)
  --device <cpu|cuda|auto>      # (default: pykd's, auto)
  --data-on-device <bool>       # hold the training set on the device (GPU), splice and shuffle
                                # there; streams when it does not fit (default: $data_on_device)
  --num-threads <n>             # torch CPU threads, 0 = torch default (default: $num_threads)
  --num-procs <n>               # DDP processes on this machine, one per GPU (or CPU share):
                                # torchrun --standalone --nproc-per-node n (default: $num_procs)
  --resume <bool>               # continue from <out-dir>/checkpoints (default: $resume)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" 'kd_p:nonneg_float?' 'kd_temperature:pos_float?' 'lr:pos_float?' 'max_epochs:pos_int?' 'min_epochs:nonneg_int?' 'keep_lr_epochs:nonneg_int?' 'batch_size:pos_int?' 'precision:float32|bfloat16|auto?' 'buffer_frames:pos_int?' 'seed:int?' num_threads:nonneg_int num_procs:pos_int resume:bool data_on_device:bool

kd_check_num_args 4 $#
data=$1
alidir=$2
gmmdir=$3
dir=$4

kd_require_files "$me" "$data/feats.scp" "$gmmdir/final.mdl" "$model_config" ${teacher:+"$teacher"} \
  ${teacher_posts:+"$teacher_posts/post.scp"} ${train_config:+"$train_config"}
[ -n "$teacher" ] && [ -n "$teacher_posts" ] && { echo "$me: give --teacher or --teacher-posts, not both" >&2; exit 1; }
ls "$alidir"/ali.*.gz >/dev/null 2>&1 || { echo "$me: no ali.*.gz in $alidir" >&2; exit 1; }

opts=(--model-config "$model_config" ${device:+--device "$device"} --num-threads "$num_threads")
[ -n "$train_config" ] && opts+=(--train-config "$train_config")
if [ -n "$teacher$teacher_posts" ]; then
  opts+=(${teacher:+--teacher "$teacher"} ${teacher_posts:+--teacher-posts "$teacher_posts"})
  [ -n "$kd_p" ] && opts+=(--kd-p "$kd_p")
  [ -n "$kd_temperature" ] && opts+=(--kd-temperature "$kd_temperature")
fi
[ -n "$lr" ] && opts+=(--lr "$lr")
[ -n "$max_epochs" ] && opts+=(--max-epochs "$max_epochs")
[ -n "$min_epochs" ] && opts+=(--min-epochs "$min_epochs")
[ -n "$keep_lr_epochs" ] && opts+=(--keep-lr-epochs "$keep_lr_epochs")
[ -n "$batch_size" ] && opts+=(--batch-size "$batch_size")
[ -n "$precision" ] && opts+=(--precision "$precision")
[ -n "$buffer_frames" ] && opts+=(--buffer-frames "$buffer_frames")
[ -n "$seed" ] && opts+=(--seed "$seed")
[ "$resume" = true ] && opts+=(--resume)
[ "$data_on_device" = true ] && opts+=(--data-on-device)

mkdir -p "$dir/log"
cp "$gmmdir/final.mdl" "$dir/final.mdl"
echo "$me: training $dir (log: $dir/log/train.log)"
launcher=(pykd)
if [ "$num_procs" -gt 1 ]; then
  command -v torchrun >/dev/null || { echo "$me: --num-procs $num_procs needs torchrun" >&2; exit 1; }
  launcher=(torchrun --standalone --nproc-per-node "$num_procs" --no-python pykd)
fi
$cmd "$dir/log/train.log" "${launcher[@]}" train-nnet "${opts[@]}" "$data" "$alidir" "$gmmdir" "$dir" \
  || { echo "$me: training failed, see $dir/log/train.log:" >&2
       grep -h " ERROR \| WARNING " "$dir/log/train.log" | tail -n 5 | sed "s|^|$me: |" >&2
       exit 1; }
# Warnings worth seeing without opening the log (utterances left out, ...).
grep -h " WARNING " "$dir/log/train.log" | sed "s|^|$me: |" >&2 || true
grep -E "parameters|finished" "$dir/log/train.log" || true
echo "$me: done, $dir/final.pt"
