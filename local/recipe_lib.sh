# Shell functions shared by run.sh and its local/run_*.sh stages; sourced:  . local/recipe_lib.sh

# train_once <dir> <final-file> <train-script> [options and arguments]: a model's training when
# its stage is (re-)run, by one rule for GMMs and networks. <dir>/.recipe_args records the
# command. Another command than the recorded one (or none): <dir> is moved aside to
# <dir>.previous and trained from the start. The same command: finished (<final-file> there, no
# .incomplete marker, not older than the last checkpoint): not trained again (remove <dir> to
# retrain); a network killed after a checkpoint: continued from it (--resume true); else trained
# from the start (GMM scripts move the killed run aside themselves).
train_once() {
  local dir=$1 final=$1/$2 script=$3 last=$1/checkpoints/last.pt cmd_line
  shift 3
  cmd_line="$script $*"
  if [ "$(cat "$dir/.recipe_args" 2>/dev/null)" != "$cmd_line" ]; then
    if [ -d "$dir" ]; then
      rm -rf "$dir.previous"
      mv "$dir" "$dir.previous"
      echo "$0: $dir was made by another command: moved aside to $dir.previous"
    fi
    mkdir -p "$dir"
    echo "$cmd_line" > "$dir/.recipe_args"
    "$script" "$@"
  elif [ -f "$final" ] && [ ! -f "$dir/.incomplete" ] && { [ ! -f "$last" ] || [ "$final" -nt "$last" ]; }; then
    echo "$0: $final is complete: not trained again (remove $dir to retrain)"
  elif [ -f "$last" ]; then
    "$script" --resume true "$@"
  else
    "$script" "$@"
  fi
  echo "$cmd_line" > "$dir/.recipe_args"   # (GMM scripts start from an empty dir)
}

# declare_system <kind> <dir> [args]: record a finished system in exp/systems.txt, the list the
# results report reads (pykd/report/systems.py: gmm, nnet, seq, kd-pair, adapt). A line of the
# same kind and first directory is replaced in place, so re-running a stage declares it once and
# the tables keep the stages' order.
declare_system() {
  local file=exp/systems.txt
  mkdir -p exp
  touch "$file"
  awk -v k="$1" -v d="$2" -v line="$*" '
    $1 == k && $2 == d { if (!done) print line; done = 1; next }
    { print }
    END { if (!done) print line }' "$file" > "$file.tmp"
  mv "$file.tmp" "$file"
}

# seq_dir <net> <criterion> [<nnet-exp> [<q>]]: the experiment dir of one sequence-trained network
# under <nnet-exp> (default exp); a student_kd dir gets a _q<q> suffix when <q> is given (a sweep).
seq_dir() {
  local e=${3:-exp}
  case $1 in
    teacher) echo "$e/dnn_${2}" ;;
    student) echo "$e/hdnn_${2}" ;;
    student_kd) echo "$e/hdnn_${2}_kd${4:+_q$4}" ;;
    student_gates) echo "$e/hdnn_${2}_gates" ;;
  esac
}

# kd_check_seq_choice <me> "<criteria>" "<nets>": exit 1 naming an unknown criterion or network,
# or student_kd without the teacher it is regularised by.
kd_check_seq_choice() {
  local me=$1 crit net
  for crit in $2; do
    case $crit in smbr|mmi|mpfe) ;; *) echo "$me: unknown sequence criterion '$crit'" >&2; exit 1 ;; esac
  done
  for net in $3; do
    case $net in teacher|student|student_kd|student_gates) ;;
      *) echo "$me: unknown sequence-trained network '$net'" >&2; exit 1 ;; esac
  done
  case " $3 " in
    *" student_kd "*) case " $3 " in *" teacher "*) ;;
      *) echo "$me: student_kd needs teacher (its sequence-trained teacher)" >&2; exit 1 ;; esac ;;
  esac
}

# num_cores: the machine's cores (1 where nproc is missing).
num_cores() { nproc 2>/dev/null || echo 1; }

# sets_at_once: true when for_sets runs its sets at the same time (the machine has 2+ cores).
sets_at_once() { [ "$(num_cores)" -ge 2 ]; }

# for_sets <function> <set>...: "<function> <set>" for every set (or other item: stage 9's
# students, stage 12's), all at once as background jobs when sets_at_once (one after the other
# otherwise); fails if any failed.
# Decoding dev and eval together fills the cores that one decode leaves idle while its slowest
# job (or its single-process scoring) finishes.
for_sets() {
  local fn=$1 set pids=() rc=0 pid
  shift
  if ! sets_at_once; then
    for set in "$@"; do "$fn" "$set"; done
    return 0
  fi
  for set in "$@"; do
    "$fn" "$set" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || rc=1
  done
  return $rc
}

# decode_dev_eval <nnet-dir> <out-dir-pattern> [steps_kd/decode_nnet.sh options]: decode dev and
# eval (at once, for_sets) with the network of <nnet-dir> through tri1's graph into the pattern
# with SET replaced by dev / eval (e.g. exp/dnn/decode_SET). The one dev + eval network decode of
# the recipe's stages; reads the caller's $data, $decode_nj, $decode_cmd and $decode_opts.
decode_dev_eval() {
  decode_nnet_dir=$1 decode_out_pattern=$2
  shift 2
  decode_nnet_extra=("$@")
  for_sets decode_nnet_one dev eval
}
decode_nnet_one() {
  # shellcheck disable=SC2086
  steps_kd/decode_nnet.sh --nj "$decode_nj" --cmd "$decode_cmd" $decode_opts --gmm-dir exp/tri1 \
    "${decode_nnet_extra[@]}" exp/tri1/graph "$data/${1}_fbank" "$decode_nnet_dir" \
    "${decode_out_pattern//SET/$1}"
}
