#!/usr/bin/env bash
# run.sh stage 13: speaker adaptation of the KD student's shared gates, per dev/eval speaker.
#   local/run_adapt.sh [options] <data>     e.g. local/run_adapt.sh --methods "teacher decode" data
# Protocols: "same" (adapt and test on the same utterances) and "split" (adapt on the first half
# of a speaker's utterances, test on the second half). Methods: teacher = the teacher's
# posteriors (unsupervised KD), decode = the student's own first-pass best path, oracle = forced
# alignments of the reference (for reference only). Needs exp/hdnn_kd decoded (stage 9),
# exp/dnn (stage 8) and exp/tri1.
set -euo pipefail

nj=2
decode_nj=2
train_cmd=run.pl
decode_cmd=run.pl
decode_opts=
methods="teacher decode"   # oracle: the supervised bound, an option
epochs=3
base=exp/hdnn_kd

help_message="Usage: $0 [options] <data>
Options: --nj N --decode-nj N --train-cmd CMD --decode-cmd CMD --decode-opts \"OPTS\"
  --methods \"$methods\" --epochs N --base DIR (default: $base)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
. local/recipe_lib.sh
kd_check_options "$0" nj:pos_int decode_nj:pos_int epochs:pos_int
kd_check_num_args 1 $#
data=$1
for m in $methods; do
  case $m in teacher|decode|oracle) ;; *) echo "$0: unknown adaptation method '$m'" >&2; exit 1 ;; esac
done
[ -f $base/decode_dev/scoring_kaldi/best_wer ] || { echo "$0: needs $base decoded (run.sh stage 9)" >&2; exit 1; }

dev_setting=$(awk '{print $NF}' $base/decode_dev/scoring_kaldi/best_wer | sed 's|.*/wer_||')
# adapt_set <dev|eval>: every method and protocol on one set, then its decodes. dev and eval
# run at once (for_sets) when the machine has more than one core: each adaptation is one
# single-threaded process.
adapt_set() {
  local x=$1 protocol sfx m half first_m targets
  case " $methods " in
    # the teacher's top-k posteriors over the set, once: every teacher-method run reads them
    *" teacher "*) steps_kd/make_teacher_posts.sh --cmd "$train_cmd" exp/dnn/final.pt \
                     "$data/${x}_fbank" exp/dnn/posts_$x ;;
  esac
  case " $methods " in
    *" oracle "*) steps_kd/align_si.sh --nj "$nj" --cmd "$train_cmd" "$data/$x" data/lang exp/tri1 \
                    exp/tri1_ali_$x ;;
  esac
  for protocol in same split; do
    sfx=$x; [ $protocol = split ] && sfx=split_$x
    for m in $methods; do
      case $m in
        teacher) targets=(--teacher-posts exp/dnn/posts_$x) ;;
        # first-pass best path at dev's LM weight / penalty (eval is not used for tuning)
        decode) targets=(--lattices $base/decode_$x --gmm-model exp/tri1/final.mdl
                         --lmwt "${dev_setting%_*}" --wip "${dev_setting#*_}") ;;
        oracle) targets=(--ali-dir exp/tri1_ali_$x --gmm-model exp/tri1/final.mdl) ;;
      esac
      steps_kd/adapt_hdnn.sh --cmd "$train_cmd" --method $m "${targets[@]}" \
        --epochs "$epochs" --protocol $protocol "$data/${x}_fbank" $base $base/adapt_${m}_$sfx
    done
  done
  # Test data: all utterances (same) and the second halves (split; the same for every method).
  half=$data/${x}_fbank_half
  first_m=${methods%% *}
  utils/subset_data_dir.sh --utt-list $base/adapt_${first_m}_split_$x/test_utts \
    "$data/${x}_fbank" $half
  # the SI network on the second halves: the lattices of its full-set decode (stage 9), not decoded again
  steps_kd/subset_decode.sh --cmd "$decode_cmd" $half exp/tri1/graph $base/decode_$x $base/decode_${x}_half
  for m in $methods; do
    steps_kd/decode_nnet.sh --nj "$decode_nj" --cmd "$decode_cmd" $decode_opts --gmm-dir exp/tri1 \
      --spk-params $base/adapt_${m}_$x exp/tri1/graph "$data/${x}_fbank" $base $base/decode_${x}_adapt_$m
    steps_kd/decode_nnet.sh --nj "$decode_nj" --cmd "$decode_cmd" $decode_opts --gmm-dir exp/tri1 \
      --spk-params $base/adapt_${m}_split_$x exp/tri1/graph $half $base $base/decode_${x}_half_adapt_$m
  done
}
for_sets adapt_set dev eval
declare_system adapt $base $methods
echo "$0: done"
