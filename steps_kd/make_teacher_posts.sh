#!/usr/bin/env bash
# Cache a teacher's posteriors for knowledge distillation: the top-k pdfs of every frame of a
# data dir, as a Kaldi Posterior table (Kaldi's copy-post reads it), so that a KD student reads
# them like alignments instead of running the teacher on every batch (pykd teacher-posts).
set -euo pipefail

me=steps_kd/make_teacher_posts.sh
cmd=run.pl
top_k=            # default: pykd teacher-posts' (pykd/train/options.py)
device=           # empty: pykd's default (auto)
num_threads=1
loglikes_dir=     # also write the teacher's log-likelihoods of the same forward pass here
prior_counts=     # with --loglikes-dir (default: prior.counts beside <teacher.pt>)
prior_scale=1.0
ensemble_with=    # more teachers' checkpoints (space-separated): the targets are all the teachers' mean

help_message="Usage: $me [options] <teacher.pt> <data-dir> <out-dir>
 e.g.: $me exp/dnn/final.pt data/train_fbank exp/dnn/posts_train
Writes <out-dir>/{post.ark,post.scp,info.json,log/teacher_posts.log}; info.json gives k, the
probability mass kept and the bytes per frame. A KD student trains on it with
steps_kd/train_nnet.sh --teacher-posts <out-dir>.
Options:
  --cmd <run.pl|queue.pl ...>   # job runner (default: $cmd)
  --top-k <n>                   # pdfs kept per frame (default: pykd's, 20)
  --device <cpu|cuda|auto>      # (default: pykd's, auto)
  --num-threads <n>             # torch CPU threads (default: $num_threads)
  --loglikes-dir <dir>          # also the log-likelihoods of the same forward pass:
                                # <dir>/loglikes.{ark,scp} (e.g. for steps_kd/make_denlats.sh
                                # --loglikes <dir>, instead of a second pass over the data)
  --prior-counts <file>         # with --loglikes-dir (default: prior.counts beside <teacher.pt>)
  --prior-scale <f>             # with --loglikes-dir (default: $prior_scale)
  --ensemble-with \"<a.pt> ...\"   # more teachers (same features and pdfs, e.g. the teachers of other
                                # seeds): the targets are the mean of all the teachers' posteriors"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" 'top_k:pos_int?' num_threads:nonneg_int prior_scale:nonneg_float

kd_check_num_args 3 $#
teacher=$1
data=$2
dir=$3

# shellcheck disable=SC2206
ensemble=($ensemble_with)
kd_require_files "$me" "$teacher" "$data/feats.scp" "${ensemble[@]}"
[ -z "$prior_counts" ] && prior_counts=$(dirname "$teacher")/prior.counts
if [ -n "$loglikes_dir" ] && kd_nonzero "$prior_scale"; then
  kd_require_files "$me" "$prior_counts"
fi
mkdir -p "$dir/log"
same_ensemble() {  # info.json names the --ensemble-with teachers' bytes, no more, no fewer
  local t
  [ "$(grep -c '"teacher_sha256"' "$dir/info.json")" -eq $(( ${#ensemble[@]} + 1 )) ] || return 1
  for t in "${ensemble[@]}"; do
    grep -q "\"teacher_sha256\": \"$(sha256sum "$t" | cut -d' ' -f1)\"" "$dir/info.json" || return 1
  done
}
# up to date (same teacher bytes and ensemble, same data dir, features not newer, same k, the
# log-likelihoods asked for there): nothing to do
if [ -f "$dir/info.json" ] && [ -f "$dir/post.scp" ] && [ "$dir/post.scp" -nt "$data/feats.scp" ] \
   && { [ -z "$loglikes_dir" ] || [ -f "$loglikes_dir/loglikes.scp" ]; }; then
  sha=$(sha256sum "$teacher" | cut -d' ' -f1)
  if grep -q "\"teacher_sha256\": \"$sha\"" "$dir/info.json" \
     && grep -q "\"data\": \"$data\"" "$dir/info.json" \
     && { [ -z "$top_k" ] || grep -q "\"top_k\": $top_k," "$dir/info.json"; } \
     && same_ensemble \
     && { [ -z "$loglikes_dir" ] || grep -q "\"dir\": \"$loglikes_dir\"" "$dir/info.json"; }; then
    echo "$me: $dir is up to date (teacher $teacher, $data): not recomputed"
    exit 0
  fi
fi
opts=(${top_k:+--top-k "$top_k"} ${device:+--device "$device"} --num-threads "$num_threads")
for t in "${ensemble[@]}"; do opts+=(--ensemble-with "$t"); done
if [ -n "$loglikes_dir" ]; then
  opts+=(--loglikes-dir "$loglikes_dir" --prior-scale "$prior_scale" --prior-counts "$prior_counts")
fi
echo "$me: posteriors of $teacher${ensemble_with:+ (ensemble with $ensemble_with)} over $data into $dir${loglikes_dir:+ (log-likelihoods into $loglikes_dir)}"
$cmd "$dir/log/teacher_posts.log" pykd teacher-posts "${opts[@]}" "$teacher" "$data" "$dir" \
  || { echo "$me: failed, see $dir/log/teacher_posts.log" >&2; exit 1; }
grep -h "teacher posteriors of" "$dir/log/teacher_posts.log" | sed "s|^.*INFO ([a-z_.]*) |$me: |"
