#!/usr/bin/env bash
# Sequence training (sMBR by default; MPFE, MMI) of an acoustic network on denominator lattices,
# as Kaldi nnet1's steps/nnet/train_mpe.sh; optionally regularised by a teacher's posteriors
# (L = (1-q) L_seq/frames + q CE(teacher)), optionally updating only an HDNN's shared gates.
#   steps_kd/train_seq.sh [options] <data-dir> <lang-dir> <nnet-dir> <ali-dir> <denlat-dir> <out-dir>
set -euo pipefail

me=steps_kd/train_seq.sh
cmd=run.pl
criterion=smbr
acwt=0.1
lm_scale=1.0
boost=0.0
one_silence_class=true
drop_frames=true
teacher=
teacher_posts=
kd_q=0.5
kd_temperature=1.0
params=all
optimizer=sgd
lr=
momentum=0.0
epochs=4
utts_per_step=    # empty: pykd train-seq's default
precision=        # empty: pykd train-seq's default (float32)
seed=0
shuffle=true
checkpoint_every=200
model=
mdl=
device=           # empty: pykd's default (auto: cuda when torch sees a GPU)
num_threads=1
resume=false

help_message="Usage: $me [options] <data-dir> <lang-dir> <nnet-dir> <ali-dir> <denlat-dir> <out-dir>
 e.g.: $me data/train_fbank data/lang exp/dnn exp/tri1_ali exp/dnn_denlats exp/dnn_smbr
       $me --teacher exp/dnn_smbr/final.pt --kd-q 0.5 data/train_fbank data/lang exp/hdnn_kd \\
         exp/tri1_ali exp/hdnn_kd_denlats exp/hdnn_smbr_kd
<data-dir>: fbank feats.scp, cmvn.scp, utt2spk; <lang-dir>: phones/silence.csl; <nnet-dir>:
final.pt, prior.counts; <ali-dir>: numerator ali.*.gz (+ final.mdl: the network's pdfs; GMM
alignments, or steps_kd/align_nnet.sh's); <denlat-dir>: steps_kd/make_denlats.sh's lat.scp (or
Kaldi's lat.N.gz). Writes <out-dir>/{final.pt,epoch<N>.pt,prior.counts,final.mdl,summary.json,
learning_curve.png,checkpoints/,log/train.log}; <out-dir> is a valid <nnet-dir> for
steps_kd/decode_nnet.sh (decode epoch N with --model <out-dir>/epoch<N>.pt).
Options:
  --criterion <smbr|mpfe|mmi>   # (default: $criterion)
  --acwt <f>                    # acoustic scale kappa (default: $acwt)
  --lm-scale <f>                # (default: $lm_scale)
  --boost <f>                   # boosted MMI (default: $boost)
  --one-silence-class <bool>    # sMBR: silence phones form one class (default: $one_silence_class)
  --drop-frames <bool>          # drop frames whose numerator pdf is not in the lattice (default: $drop_frames)
  --teacher <final.pt>          # KD regulariser from this network's posteriors
  --teacher-posts <dir>         # ... or from its cached top-k posteriors over <data-dir>
                                # (steps_kd/make_teacher_posts.sh)
  --kd-q <f>                    # its weight q, with --teacher(-posts) (default: $kd_q)
  --kd-temperature <f>          # (default: $kd_temperature)
  --params <all|gates>          # update all parameters or only an HDNN's gates (default: $params)
  --optimizer <sgd|adam>        # (default: $optimizer)
  --lr <f>                      # learning rate (default: pykd train-seq's, see docs/sequence.md)
  --momentum <f>                # SGD momentum (default: $momentum)
  --epochs <n>                  # (default: $epochs)
  --utts-per-step <n>           # utterances per update, one batched lattice forward-backward
                                # (1: nnet1's per-utterance updates; default: pykd train-seq's)
  --precision <float32|bfloat16|auto>  # the network's matrix products (auto: bfloat16 where the
                                # device has it natively: AMX CPUs, CUDA; default: pykd's)
  --seed <n> --shuffle <bool>   # utterance order per epoch (default: $seed, $shuffle)
  --checkpoint-every <n>        # utterances between checkpoints (default: $checkpoint_every)
  --model <final.pt>            # initial network (default: <nnet-dir>/final.pt)
  --mdl <final.mdl>             # transition model (default: <ali-dir>/final.mdl)
  --device <cpu|cuda|auto>      # (default: pykd's, auto)
  --num-threads <n>             # torch CPU threads, 0 = torch default (default: $num_threads)
  --resume <bool>               # continue from <out-dir>/checkpoints (default: $resume)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" 'criterion:smbr|mpfe|mmi' acwt:pos_float lm_scale:pos_float boost:nonneg_float one_silence_class:bool drop_frames:bool kd_q:nonneg_float kd_temperature:pos_float 'params:all|gates' 'optimizer:sgd|adam' 'lr:pos_float?' momentum:nonneg_float epochs:pos_int 'utts_per_step:pos_int?' 'precision:float32|bfloat16|auto?' seed:int shuffle:bool checkpoint_every:nonneg_int num_threads:nonneg_int resume:bool

kd_check_num_args 6 $#
data=$1
lang=$2
nnetdir=$3
alidir=$4
denlats=$5
dir=$6

[ -z "$model" ] && model=$nnetdir/final.pt
kd_require_files "$me" "$data/feats.scp" "$lang/phones/silence.csl" "$model" "$nnetdir/prior.counts" \
  ${teacher:+"$teacher"} ${teacher_posts:+"$teacher_posts/post.scp"} ${mdl:+"$mdl"}
ls "$alidir"/ali.*.gz >/dev/null 2>&1 || { echo "$me: no ali.*.gz in $alidir" >&2; exit 1; }
if [ ! -f "$denlats/lat.scp" ] && ! ls "$denlats"/lat.*.gz >/dev/null 2>&1; then
  echo "$me: no lat.scp or lat.N.gz in $denlats (steps_kd/make_denlats.sh)" >&2; exit 1
fi

opts=(--criterion "$criterion" --acwt "$acwt" --lm-scale "$lm_scale" --boost "$boost"
      --one-silence-class "$one_silence_class" --drop-frames "$drop_frames" --params "$params"
      --optimizer "$optimizer" --momentum "$momentum" --epochs "$epochs" --seed "$seed"
      --shuffle "$shuffle" --checkpoint-every "$checkpoint_every" --model "$model"
      ${device:+--device "$device"} --num-threads "$num_threads")
[ -n "$lr" ] && opts+=(--lr "$lr")
[ -n "$utts_per_step" ] && opts+=(--utts-per-step "$utts_per_step")
[ -n "$precision" ] && opts+=(--precision "$precision")
[ -n "$mdl" ] && opts+=(--mdl "$mdl")
[ -n "$teacher" ] && opts+=(--teacher "$teacher" --kd-q "$kd_q" --kd-temperature "$kd_temperature")
[ -n "$teacher_posts" ] && opts+=(--teacher-posts "$teacher_posts" --kd-q "$kd_q" \
  --kd-temperature "$kd_temperature")
[ "$resume" = true ] && opts+=(--resume)

mkdir -p "$dir/log"
echo "$me: $criterion training of $model into $dir (log: $dir/log/train.log)"
$cmd "$dir/log/train.log" pykd train-seq "${opts[@]}" "$data" "$lang" "$nnetdir" "$alidir" \
  "$denlats" "$dir" || { echo "$me: training failed, see $dir/log/train.log" >&2; exit 1; }
grep -E "epoch [0-9]+ done|finished" "$dir/log/train.log" || true
echo "$me: done, $dir/final.pt (per epoch: $dir/epoch*.pt)"
