#!/usr/bin/env bash
# run.sh stage 12: sequence training of the CE/KD networks, with the teacher as regulariser of
# the student (Kaldi habit: a long stage is a local/run_*.sh of its own).
#   local/run_seq.sh [options] <data>     e.g. local/run_seq.sh --criteria "smbr mmi" data
# <data>: the corpus' data root (data, or data/<mic> for AMI) with train_fbank, dev_fbank,
# eval_fbank and train/text; needs exp/tri1{,_ali} and <nnet-exp>/{dnn,hdnn_kd} (stages 7-9;
# --nnet-exp exp/seeds/seedN: another seed's networks, local/run_seeds.sh). Writes data/lang_ug,
# exp/tri1/graph_ug, <nnet-exp>/{dnn,hdnn_kd}_denlats and per criterion the networks of --nets
# (see local/recipe_lib.sh seq_dir), each decoded. --kd-q with several values trains one
# student_kd per value (<nnet-exp>/hdnn_<crit>_kd_q<q>: a sweep, to choose q on dev).
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
                      # (several values, e.g. "0.2 0.5 0.8": one student each, a sweep)
nnet_exp=exp          # where the initial networks are and the sequence-trained ones go
gates_lr=0.05         # SGD lr of the gates-only student
teacher_precision=    # the teacher's matrix products (empty: pykd's; auto: bfloat16 on AMX CPUs, CUDA)
decode_epochs=false   # also decode dev after every epoch but the last (a learning curve)

help_message="Usage: $0 [options] <data>
Options: --nj N --decode-nj N --train-cmd CMD --decode-cmd CMD --decode-opts \"OPTS\" --seed N
  --num-threads N --criteria \"$criteria\" --nets \"$nets\" --epochs N --kd-q \"Q [Q...]\" --nnet-exp DIR
  --gates-lr LR --teacher-precision auto|float32|bfloat16 --decode-epochs true|false"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
. local/recipe_lib.sh
kd_check_options "$0" nj:pos_int decode_nj:pos_int seed:int num_threads:nonneg_int epochs:pos_int \
  gates_lr:pos_float decode_epochs:bool 'teacher_precision:float32|bfloat16|auto?'
kd_check_num_args 1 $#
data=$1
kd_check_seq_choice "$0" "$criteria" "$nets"
for q in $kd_q; do
  [[ "$q" =~ ^[0-9]*\.?[0-9]+$ ]] && awk -v q="$q" 'BEGIN { exit !(q <= 1) }' \
    || { echo "$0: --kd-q must list numbers in [0, 1], got '$kd_q'" >&2; exit 1; }
done
[ -n "$kd_q" ] || { echo "$0: --kd-q is empty" >&2; exit 1; }
for f in $nnet_exp/dnn/final.pt $nnet_exp/hdnn_kd/final.pt exp/tri1/final.mdl; do
  [ -f "$f" ] || { echo "$0: needs $f (run.sh stages 7-9)" >&2; exit 1; }
done
# net_runs <net> <crit>: one line "<dir> <q>" per network to train; student_kd has one per q
# (a sweep: <dir> gets a _q<q> suffix; a single q keeps the plain dir name), the others q "-".
kd_sweep=false
[ "$(wc -w <<< "$kd_q")" -gt 1 ] && kd_sweep=true
net_runs() {
  local q
  if [ "$1" != student_kd ]; then echo "$(seq_dir "$1" "$2" "$nnet_exp") -"; return; fi
  for q in $kd_q; do
    if $kd_sweep; then
      echo "$(seq_dir "$1" "$2" "$nnet_exp" "$q") $q"
    else
      echo "$(seq_dir "$1" "$2" "$nnet_exp") $q"
    fi
  done
}

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
  # the teacher's log-likelihoods over train from stage 9's pass (run.sh), where it wrote them
  # after the network was last trained: not computed a second time
  given=$nnet_exp/$sys/loglikes_train
  loglikes_opt=()
  if [ -f "$given/loglikes.scp" ] && [ "$given/loglikes.scp" -nt "$nnet_exp/$sys/final.pt" ]; then
    loglikes_opt=(--loglikes "$given")
  fi
  steps_kd/make_denlats.sh --nj "$nj" --cmd "$decode_cmd" --gmm-dir exp/tri1 "${loglikes_opt[@]}" \
    "$data/train_fbank" exp/tri1/graph_ug $nnet_exp/$sys $nnet_exp/${sys}_denlats
done
rm -rf $nnet_exp/dnn/loglikes_train  # (stage 12 is their only reader; like make_denlats.sh's own)

student_inputs=("$data/train_fbank" data/lang $nnet_exp/hdnn_kd exp/tri1_ali $nnet_exp/hdnn_kd_denlats)
teacher_dir=$nnet_exp/dnn
# The students train at the same time, one thread each, where the machine has 2+ cores (as the
# CE and KD students of stage 9): two single-thread runs take ~15% less wall time than the same
# two one after the other with two threads each, and give the same networks to rounding.
student_threads=$num_threads
if [ "$num_threads" = 0 ] && sets_at_once; then student_threads=1; fi

# train_seq_net "<net> <dir> <q>": one sequence-trained network of criterion $crit (skipped when
# finished, continued from its checkpoint after a kill: train_once).
train_seq_net() {
  local net dir q threads=$student_threads args
  read -r net dir q <<< "$1"
  case $net in
    teacher) threads=$num_threads
             args=(${teacher_precision:+--precision "$teacher_precision"} "$data/train_fbank"
                   data/lang $teacher_dir exp/tri1_ali ${teacher_dir}_denlats) ;;
    student) args=("${student_inputs[@]}") ;;
    student_kd) args=(--teacher-posts ${teacher_dir}_$crit/posts_train --kd-q "$q"
                      "${student_inputs[@]}") ;;
    # Only the student's shared gates (W_T, b_T, W_C, b_C: 11% of its parameters) are updated.
    student_gates) args=(--params gates --lr "$gates_lr" "${student_inputs[@]}") ;;
  esac
  train_once "$dir" final.pt steps_kd/train_seq.sh --cmd "$train_cmd" --epochs "$epochs" \
    --seed "$seed" --num-threads "$threads" --criterion $crit "${args[@]}" "$dir"
}

for crit in $criteria; do
  case " $nets " in *" teacher "*) train_seq_net "teacher $(net_runs teacher $crit)" ;; esac
  case " $nets " in *" student_kd "*)
    # the paper's setting: the student is sequence-trained with the sequence-trained teacher's
    # posteriors as regulariser (its top-k posteriors over train cached once, read like
    # alignments)
    steps_kd/make_teacher_posts.sh --cmd "$train_cmd" --num-threads "$num_threads" \
      ${teacher_dir}_$crit/final.pt "$data/train_fbank" ${teacher_dir}_$crit/posts_train ;;
  esac
  student_runs=()
  for net in $nets; do
    [ $net = teacher ] && continue
    mapfile -t runs < <(net_runs $net $crit)
    for run in "${runs[@]}"; do student_runs+=("$net $run"); done
  done
  [ ${#student_runs[@]} -eq 0 ] || for_sets train_seq_net "${student_runs[@]}"
  for net in $nets; do
    mapfile -t runs < <(net_runs $net $crit)
    for run in "${runs[@]}"; do
      dir=${run% *}
      decode_seq "$dir"
      # the main networks are rows of RESULTS.md; other seeds' are read by bench/seq_kd_q.py
      if [ "$nnet_exp" = exp ]; then declare_system seq "$dir"; fi
    done
  done
done
echo "$0: done"
