#!/usr/bin/env bash
# Tied-state triphone GMM training on MFCC + deltas (interface of Kaldi's steps/train_deltas.sh).
set -euo pipefail

orig_args=("$@")
me=steps_kd/train_deltas.sh
cmd=run.pl
stage=-4
num_iters=35
realign_iters="10 20 30"
max_iter_inc=25
beam=10
retry_beam=40
careful=false
boost_silence=1.0
power=0.25
split_thresh=300
cluster_thresh=-1
min_leaf_count=0
context_opts=
cmvn_opts=
delta_opts=

help_message="Usage: $me [options] <num-leaves> <tot-gauss> <data-dir> <lang-dir> <alignment-dir> <exp-dir>
 e.g.: $me 2000 10000 data/train data/lang exp/mono_ali exp/tri1
Builds a phonetic decision tree from the source alignments (questions from clustering the
lang's phone sets + extra_questions, likelihood-gain splitting up to <num-leaves>, leaf
clustering), initialises one Gaussian per tied state, converts the alignments to the new tree,
then runs EM with realignment, mixing up to <tot-gauss> Gaussians.
Writes <exp-dir>/{tree,final.mdl,final.occs,ali.N.gz,num_jobs,cmvn_opts,questions.int,log/}.
The tree-statistics and alignment jobs (one per <alignment-dir>/num_jobs, as in Kaldi) run
through --cmd (log/acc_tree.JOB.log, log/align.<iter>.JOB.log).
With PYKD_KALDI=1 (path.sh, real Kaldi present) Kaldi's own steps/train_deltas.sh runs instead.
Options:
  --cmd <run.pl|queue.pl ...>     # job runner (default: $cmd)
  --num-iters <n>                 # EM iterations (default: $num_iters)
  --realign-iters <\"i j ..\">      # iterations that realign (default: \"$realign_iters\")
  --max-iter-inc <n>              # last iteration that adds Gaussians (default: $max_iter_inc)
  --beam <b> --retry-beam <b>     # alignment beams (default: $beam / $retry_beam)
  --careful <true|false>          # careful alignment (default: $careful)
  --boost-silence <f>             # factor on optional-silence likelihoods (default: $boost_silence)
  --power <p>                     # Gaussian allocation exponent (default: $power)
  --split-thresh <t>              # pykd only: smallest gain of a split (build-tree --thresh; 300)
  --cluster-thresh <t>            # leaf-merging threshold, -1 = gain of the last split (default)
  --min-leaf-count <n>            # pykd only: frames a new tree leaf needs (default: 0, as Kaldi)
  --context-opts <opts>           # e.g. \"--context-width=3 --central-position=1\" (default)
  --stage <n>                     # accepted for compatibility; the builtin backend always runs all"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" stage:int num_iters:pos_int max_iter_inc:pos_int beam:pos_float retry_beam:pos_float careful:bool boost_silence:pos_float power:nonneg_float split_thresh:nonneg_float min_leaf_count:nonneg_int

kd_check_num_args 6 $#
numleaves=$1
totgauss=$2
data=$3
lang=$4
alidir=$5
dir=$6

if [ "${PYKD_KALDI:-0}" = 1 ]; then
  # Kaldi's script has no --min-leaf-count/--split-thresh: drop them, pass the rest as is.
  kaldi_args=()
  skip=false
  for a in "${orig_args[@]}"; do
    if $skip; then skip=false; continue; fi
    case "$a" in
      --min-leaf-count|--split-thresh) skip=true ;;
      --min-leaf-count=*|--split-thresh=*) ;;
      *) kaldi_args+=("$a") ;;
    esac
  done
  kd_begin_output_dir "$me" "$dir"
  "$PYKD_ROOT/steps/train_deltas.sh" "${kaldi_args[@]}" || exit $?
  kd_end_output_dir "$dir"
  exit 0
fi

kd_require_files "$me" "$alidir/final.mdl" "$alidir/ali.1.gz" "$alidir/num_jobs" "$data/feats.scp" \
  "$data/text" "$data/utt2spk" "$lang/topo" "$lang/L.fst" "$lang/phones/roots.int" \
  "$lang/phones/sets.int" "$lang/phones/extra_questions.int"
[[ "$numleaves" =~ ^[1-9][0-9]*$ ]] || { echo "$me: <num-leaves> must be a positive integer" >&2; exit 1; }
[[ "$totgauss" =~ ^[1-9][0-9]*$ ]] || { echo "$me: <tot-gauss> must be a positive integer" >&2; exit 1; }
[ -z "$delta_opts" ] || { echo "$me: --delta-opts is not supported by the builtin backend" >&2; exit 1; }
if [ -n "$cmvn_opts" ] && [ "$cmvn_opts" != "$(cat "$alidir/cmvn_opts" 2>/dev/null || true)" ]; then
  echo "$me: --cmvn-opts differs from $alidir/cmvn_opts; the builtin backend uses the latter" >&2
  exit 1
fi

context_width=3
central_position=1
for o in $context_opts; do
  case "$o" in
    --context-width=*) context_width=${o#*=} ;;
    --central-position=*) central_position=${o#*=} ;;
    *) echo "$me: unsupported --context-opts item '$o'" >&2; exit 1 ;;
  esac
done

kd_begin_output_dir "$me" "$dir"
echo "$me: training a triphone system ($numleaves leaves, $totgauss Gaussians) in $dir"
pykd train-deltas --cmd "$cmd" --num-iters "$num_iters" --realign-iters "$realign_iters" \
    --max-iter-inc "$max_iter_inc" --beam "$beam" --retry-beam "$retry_beam" --careful "$careful" \
    --boost-silence "$boost_silence" --power "$power" --split-thresh "$split_thresh" --cluster-thresh "$cluster_thresh" \
    --min-leaf-count "$min_leaf_count" --context-width "$context_width" \
    --central-position "$central_position" \
    "$numleaves" "$totgauss" "$data" "$lang" "$alidir" "$dir" >"$dir/log/train_deltas.log" 2>&1 \
  || { echo "$me: training failed, see $dir/log/train_deltas.log" >&2; exit 1; }

grep -E '^(num_leaves|num_gauss|tree_impr|align_like_per_frame) ' "$dir/log/summary.log" | tr '\n' ' '
echo
kd_end_output_dir "$dir"
echo "$me: done training triphone system in $dir"
