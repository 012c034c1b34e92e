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

help_message="Usage: $me [options] <teacher.pt> <data-dir> <out-dir>
 e.g.: $me exp/dnn/final.pt data/train_fbank exp/dnn/posts_train
Writes <out-dir>/{post.ark,post.scp,info.json,log/teacher_posts.log}; info.json gives k, the
probability mass kept and the bytes per frame. A KD student trains on it with
steps_kd/train_nnet.sh --teacher-posts <out-dir>.
Options:
  --cmd <run.pl|queue.pl ...>   # job runner (default: $cmd)
  --top-k <n>                   # pdfs kept per frame (default: pykd's, 20)
  --device <cpu|cuda|auto>      # (default: pykd's, auto)
  --num-threads <n>             # torch CPU threads (default: $num_threads)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" 'top_k:pos_int?' num_threads:nonneg_int

kd_check_num_args 3 $#
teacher=$1
data=$2
dir=$3

kd_require_files "$me" "$teacher" "$data/feats.scp"
mkdir -p "$dir/log"
# up to date (same teacher bytes, same data dir, features not newer, same k): nothing to do
if [ -f "$dir/info.json" ] && [ -f "$dir/post.scp" ] && [ "$dir/post.scp" -nt "$data/feats.scp" ]; then
  sha=$(sha256sum "$teacher" | cut -d' ' -f1)
  if grep -q "\"teacher_sha256\": \"$sha\"" "$dir/info.json" \
     && grep -q "\"data\": \"$data\"" "$dir/info.json" \
     && { [ -z "$top_k" ] || grep -q "\"top_k\": $top_k," "$dir/info.json"; }; then
    echo "$me: $dir is up to date (teacher $teacher, $data): not recomputed"
    exit 0
  fi
fi
opts=(${top_k:+--top-k "$top_k"} ${device:+--device "$device"} --num-threads "$num_threads")
echo "$me: posteriors of $teacher over $data into $dir"
$cmd "$dir/log/teacher_posts.log" pykd teacher-posts "${opts[@]}" "$teacher" "$data" "$dir" \
  || { echo "$me: failed, see $dir/log/teacher_posts.log" >&2; exit 1; }
grep -h "teacher posteriors of" "$dir/log/teacher_posts.log" | sed "s|^.*INFO ([a-z_.]*) |$me: |"
