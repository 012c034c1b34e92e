#!/usr/bin/env bash
# run.sh stage 12: sequence training of the CE/KD networks, with the teacher as regulariser of
# the student (Kaldi habit: a long stage is a local/run_*.sh of its own).
#   local/run_seq.sh [options] <data>     e.g. local/run_seq.sh --criteria "smbr mmi" data
# <data>: the corpus' data root (data, or data/<mic> for AMI) with train_fbank, dev_fbank,
# eval_fbank and train/text; needs exp/tri1{,_ali}, exp/dnn and exp/hdnn_kd (stages 7, 8, 10).
# Writes data/lang_ug, exp/tri1/graph_ug, exp/{dnn,hdnn_kd}_denlats and per criterion the
# networks of --nets (see local/recipe_lib.sh seq_dir), decoded after every epoch.
set -euo pipefail

nj=2
decode_nj=2
train_cmd=run.pl
decode_cmd=run.pl
decode_opts=
seed=1
num_threads=0
criteria=smbr         # of smbr mmi mpfe (sMBR: the paper's)
nets="teacher student student_kd student_gates"
epochs=2
kd_q=0.5              # student seq+KD: L = (1-q) L_seq + q CE(teacher sequence-trained the same way)
gates_lr=0.05         # SGD lr of the gates-only student
teacher_precision=    # the teacher's matrix products (empty: pykd's; auto: bfloat16 on AMX CPUs, CUDA)
decode_epochs=false   # also decode dev after every epoch but the last (a learning curve)

help_message="Usage: $0 [options] <data>
Options: --nj N --decode-nj N --train-cmd CMD --decode-cmd CMD --decode-opts \"OPTS\" --seed N
  --num-threads N --criteria \"$criteria\" --nets \"$nets\" --epochs N --kd-q Q
  --gates-lr LR --teacher-precision auto|float32|bfloat16 --decode-epochs true|false"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
. local/recipe_lib.sh
kd_check_options "$0" nj:pos_int decode_nj:pos_int seed:int num_threads:nonneg_int epochs:pos_int \
  kd_q:nonneg_float gates_lr:pos_float decode_epochs:bool 'teacher_precision:float32|bfloat16|auto?'
kd_check_num_args 1 $#
data=$1
kd_check_seq_choice "$0" "$criteria" "$nets"
for f in exp/dnn/final.pt exp/hdnn_kd/final.pt exp/tri1/final.mdl; do
  [ -f "$f" ] || { echo "$0: needs $f (run.sh stages 7, 8 and 10)" >&2; exit 1; }
done

# decode_seq <dir>: dev after every epoch (the last one = final.pt) and eval with final.pt:
# <dir>/decode_dev_ep<N>, <dir>/decode_dev, <dir>/decode_eval (dev and eval at once).
decode_seq() {
  local dir=$1 n
  if [ "$decode_epochs" = true ]; then
    for n in $(seq 1 $((epochs - 1))); do
      steps_kd/decode_nnet.sh --nj "$decode_nj" --cmd "$decode_cmd" $decode_opts --gmm-dir exp/tri1 \
        --model "$dir/epoch$n.pt" exp/tri1/graph "$data/dev_fbank" "$dir" "$dir/decode_dev_ep$n"
    done
  fi
  decode_dev_eval "$dir" "$dir/decode_SET"
}

# Denominator lattices through a unigram-LM graph, with each initial network; all criteria share
# them.
steps_kd/make_unigram_lang.sh "$data/train/text" data/lang data/lang_ug
utils/mkgraph.sh data/lang_ug exp/tri1 exp/tri1/graph_ug
denlat_sys=""
case " $nets " in *" teacher "*) denlat_sys=dnn ;; esac
case " $nets " in *" student"*) denlat_sys="$denlat_sys hdnn_kd" ;; esac
for sys in $denlat_sys; do
  steps_kd/make_denlats.sh --nj "$nj" --cmd "$decode_cmd" --gmm-dir exp/tri1 \
    "$data/train_fbank" exp/tri1/graph_ug exp/$sys exp/${sys}_denlats
done

seq_opts=(--cmd "$train_cmd" --epochs "$epochs" --seed "$seed" --num-threads "$num_threads")
student_inputs=("$data/train_fbank" data/lang exp/hdnn_kd exp/tri1_ali exp/hdnn_kd_denlats)
for crit in $criteria; do
  for net in $nets; do
    # skipped when finished, continued from its checkpoint after a kill (train_once)
    dir=$(seq_dir $net $crit)
    case $net in
      teacher) args=(${teacher_precision:+--precision "$teacher_precision"} "$data/train_fbank"
                     data/lang exp/dnn exp/tri1_ali exp/dnn_denlats) ;;
      student) args=("${student_inputs[@]}") ;;
      # The paper's setting: the student is sequence-trained with the sequence-trained teacher's
      # posteriors as regulariser.
      # (its top-k posteriors over train cached once, read like alignments)
      student_kd)
        steps_kd/make_teacher_posts.sh --cmd "$train_cmd" --num-threads "$num_threads" \
          exp/dnn_$crit/final.pt "$data/train_fbank" exp/dnn_$crit/posts_train
        args=(--teacher-posts exp/dnn_$crit/posts_train --kd-q "$kd_q" "${student_inputs[@]}") ;;
      # Only the student's shared gates (W_T, b_T, W_C, b_C: 11% of its parameters) are updated.
      student_gates) args=(--params gates --lr "$gates_lr" "${student_inputs[@]}") ;;
    esac
    train_once "$dir" final.pt steps_kd/train_seq.sh "${seq_opts[@]}" --criterion $crit \
      "${args[@]}" "$dir"
  done
  for net in $nets; do
    decode_seq "$(seq_dir $net $crit)"
    declare_system seq "$(seq_dir $net $crit)"
  done
done
echo "$0: done"
