#!/usr/bin/env bash
# Scoring of lattices in the spirit of Kaldi's steps/score_kaldi.sh, plus sclite reports:
#   steps_kd/score.sh [options] <data-dir> <lang-or-graph-dir> <decode-dir>
# With PYKD_KALDI=1 Kaldi's own steps/score_kaldi.sh runs with the same arguments.
set -euo pipefail
orig_args=("$@")

cmd=run.pl
stage=0
min_lmwt=7
max_lmwt=17
word_ins_penalty=0.0,0.5,1.0
decode_mbr=false
non_scored_words=

help_message="Usage: steps_kd/score.sh [options] <data-dir> <lang-or-graph-dir> <decode-dir>
 e.g.: steps_kd/score.sh data/dev exp/tri1/graph exp/tri1/decode_dev
For each LM weight and word insertion penalty: best path of <decode-dir>/lat.*.gz ->
scoring_kaldi/penalty_<WIP>/<LMWT>.txt, WER against <data-dir>/text -> wer_<LMWT>_<WIP>;
scoring_kaldi/best_wer (Kaldi's format); sclite reports of the best setting in
scoring_kaldi/sclite/ (.sys, .pra, .dtl).
Options:
  --min-lmwt <n>                 # (default: $min_lmwt)
  --max-lmwt <n>                 # (default: $max_lmwt)
  --word-ins-penalty <list>      # comma-separated (default: $word_ins_penalty)
  --non-scored-words <words>     # space-separated words dropped from ref and hyp
                                 # (default: !SIL <sil> <SIL> <eps> <s> </s>)
  --cmd <run.pl|queue.pl>        # accepted for Kaldi compatibility (scoring runs locally)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" stage:int min_lmwt:pos_int max_lmwt:pos_int decode_mbr:bool

kd_check_num_args 3 $#
data=$1
lang_or_graph=$2
dir=$3
me=steps_kd/score.sh

kd_check_job_outputs "$me" "$dir" lat   # before either scorer: never score a partial decode
kd_use_kaldi_script "$me" steps/score_kaldi.sh "${orig_args[@]}"
[ "$decode_mbr" = true ] && echo "$me: --decode-mbr true is not supported; using best paths" >&2

kd_require_files "$me" "$data/text" "$lang_or_graph/words.txt"

mkdir -p "$dir/scoring_kaldi/log"
log=$dir/scoring_kaldi/log/score.log
extra=()
[ -n "$non_scored_words" ] && extra=(--non-scored-words "$non_scored_words")
if [ "$stage" -le 0 ]; then
  if ! pykd score-kaldi --min-lmwt "$min_lmwt" --max-lmwt "$max_lmwt" \
      --word-ins-penalty "$word_ins_penalty" "${extra[@]}" \
      "$data" "$lang_or_graph" "$dir" > "$log" 2>&1; then
    echo "$me: scoring failed; see $log:" >&2
    tail -n 5 "$log" >&2
    exit 1
  fi
fi
cat "$dir/scoring_kaldi/best_wer"
