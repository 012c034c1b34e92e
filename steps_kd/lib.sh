# Helpers shared by the steps_kd scripts; sourced after option parsing:  . steps_kd/lib.sh
# Each takes the calling script's name first, for its messages. (Kaldi's scripts repeat these
# lines inline; one copy here keeps our messages and rules the same across the steps.)

# kd_check_num_args <wanted> <got>: print the script's $help_message and exit 1 unless equal.
kd_check_num_args() {
  [ "$2" -eq "$1" ] && return 0
  printf '%s\n' "$help_message" >&2
  exit 1
}

# kd_use_kaldi_script <me> <steps/script.sh> [arg...]: with PYKD_KALDI=1 (path.sh found a built
# Kaldi) exec Kaldi's own egs/wsj/s5/<steps/script.sh> with these arguments; else return.
kd_use_kaldi_script() {
  local me=$1 script=$2
  shift 2
  [ "${PYKD_KALDI:-0}" = 1 ] || return 0
  echo "$me: PYKD_KALDI=1: running Kaldi's $script"
  "$PYKD_ROOT/$script" "$@" || exit $?   # the recipe's steps/ link (path.sh)
  [ -n "${KD_OUTPUT_DIR:-}" ] && kd_end_output_dir "$KD_OUTPUT_DIR"
  exit 0
}

# kd_require_files <me> <file>...: exit 1 naming the first file that does not exist.
kd_require_files() {
  local me=$1 f
  shift
  for f in "$@"; do
    [ -f "$f" ] || { echo "$me: no such file $f" >&2; exit 1; }
  done
}

# kd_num_jobs <me> <nj> <data-dir>: print <nj>, checked to be a positive integer and lowered to
# the number of speakers (data is split by speaker). Use as: nj=$(kd_num_jobs "$me" "$nj" "$data")
kd_num_jobs() {
  local me=$1 nj=$2 data=$3 nspk
  [[ "$nj" =~ ^[1-9][0-9]*$ ]] || { echo "$me: --nj must be a positive integer, got '$nj'" >&2; exit 1; }
  nspk=$(wc -l < "$data/spk2utt")
  if [ "$nj" -gt "$nspk" ]; then
    echo "$me: reducing --nj from $nj to the number of speakers, $nspk" >&2
    nj=$nspk
  fi
  echo "$nj"
}

# kd_check_graph_pdfs <me> <graph-dir> <final.mdl>: exit 1 when the graph's num_pdfs (written by
# utils/mkgraph.sh) is not the model's: a graph made for another tree.
kd_check_graph_pdfs() {
  local me=$1 graphdir=$2 mdl=$3 mdl_pdfs
  [ -f "$graphdir/num_pdfs" ] || return 0
  mdl_pdfs=$(python3 -c "import sys; from pykd.kaldi.model_io import read_transition_model as r; print(r(sys.argv[1]).num_pdfs)" "$mdl")
  if [ "$(cat "$graphdir/num_pdfs")" != "$mdl_pdfs" ]; then
    echo "$me: $graphdir has $(cat "$graphdir/num_pdfs") pdfs, $mdl $mdl_pdfs: graph of another model" >&2
    exit 1
  fi
}

# kd_job_output_ok <file.gz>: true when one job's output exists and is a complete gzip file.
kd_job_output_ok() {
  [ -f "$1" ] && gzip -t "$1" 2>/dev/null
}

# kd_job_outputs_complete <dir> <name>: true when <dir>/<name>.N.gz exist for every job of
# <dir>/num_jobs (or 1..N without a gap when there is no num_jobs) and each is a complete gzip
# file; otherwise false, with what is wrong on stdout.
kd_job_outputs_complete() {
  local dir=$1 name=$2 nj j f
  if [ -f "$dir/num_jobs" ]; then
    nj=$(cat "$dir/num_jobs")
  else
    nj=$(find "$dir" -maxdepth 1 -name "$name.*.gz" | wc -l)
  fi
  [[ "$nj" =~ ^[1-9][0-9]*$ ]] || { echo "no $name.N.gz job outputs in $dir"; return 1; }
  for j in $(seq "$nj"); do
    f=$dir/$name.$j.gz
    kd_job_output_ok "$f" && continue
    [ -f "$f" ] || { echo "$f missing (num_jobs $nj): a job did not finish; re-run it"; return 1; }
    echo "$f is truncated or corrupt: its job did not finish; re-run it"
    return 1
  done
}

# kd_check_job_outputs <me> <dir> <name>: exit 1 naming the problem unless the job outputs are
# complete (kd_job_outputs_complete): a killed job's partial output must not be read as a result.
kd_check_job_outputs() {
  local problem
  problem=$(kd_job_outputs_complete "$2" "$3") || { echo "$1: $problem" >&2; exit 1; }
}

# kd_check_options <me> <var>:<type> ...: exit 1 naming the option (--var-name) when the value of
# shell variable <var> does not fit <type>, so a typo fails where it is parsed instead of deep
# inside a step (or not at all). Types: int, nonneg_int, pos_int, float, nonneg_float, pos_float,
# bool, or a list of allowed words a|b|c. An empty value is allowed only for types ending in '?'.
kd_check_options() {
  local me=$1 spec name type value ok want
  shift
  for spec in "$@"; do
    name=${spec%%:*}
    type=${spec#*:}
    value=${!name-}
    if [[ "$type" == *\? ]]; then
      type=${type%\?}
      [ -z "$value" ] && continue
    fi
    ok=true
    case "$type" in
      int) want="an integer"; [[ "$value" =~ ^-?[0-9]+$ ]] || ok=false ;;
      nonneg_int) want="an integer >= 0"; [[ "$value" =~ ^[0-9]+$ ]] || ok=false ;;
      pos_int) want="an integer > 0"; [[ "$value" =~ ^0*[1-9][0-9]*$ ]] || ok=false ;;
      float|nonneg_float|pos_float)
        want="a number"
        [[ "$value" =~ ^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ ]] || ok=false
        if $ok && [ "$type" = nonneg_float ]; then
          want="a number >= 0"; awk -v x="$value" 'BEGIN { exit !(x >= 0) }' || ok=false
        elif $ok && [ "$type" = pos_float ]; then
          want="a number > 0"; awk -v x="$value" 'BEGIN { exit !(x > 0) }' || ok=false
        fi ;;
      bool) want="true or false"; [[ "$value" == true || "$value" == false ]] || ok=false ;;
      *) want="one of ${type//|/, }"; [[ "|$type|" == *"|$value|"* ]] || ok=false ;;
    esac
    $ok || { echo "$me: --${name//_/-} must be $want, got '$value'" >&2; exit 1; }
  done
}

# kd_check_speed_factors <me> <option> <factors>: exit 1 naming --<option> unless every word of
# <factors> is a speed factor (a positive number other than 1, as sox's speed effect takes it).
kd_check_speed_factors() {
  local f
  for f in $3; do
    awk -v f="$f" 'BEGIN { exit !(f ~ /^[0-9]*\.?[0-9]+$/ && f > 0 && f != 1) }' || {
      echo "$1: --$2 must list speed factors (positive, not 1), got '$3'" >&2
      exit 1
    }
  done
}

# kd_nonzero <number>: true when the number (e.g. a --prior-scale, "0", "0.0", "1.0") is not zero.
kd_nonzero() {
  awk -v x="$1" 'BEGIN { exit !(x + 0 != 0) }'
}

# kd_inputs_stamp <option-string> <file>...: one line identifying a step's inputs (each file's
# path, size and modification time, and the options), kept in <out-dir>/.inputs to tell a re-run
# with the same inputs (whose finished outputs can be kept) from one with new inputs.
kd_inputs_stamp() {
  local opts=$1 f
  shift
  printf '%s' "$opts"
  for f in "$@"; do
    [ -e "$f" ] && printf ' %s:%s' "$f" "$(stat -L -c '%s:%Y' "$f")"
  done
  echo
}

# kd_jobs_to_run <me> <dir> <name> <stamp> <nj>: before a step writes <dir>/<name>.N.gz for jobs
# 1..<nj> from the inputs identified by <stamp> (kd_inputs_stamp), prints the jobs to run:
#   none, when <dir>/.inputs is <stamp> and every job's output is complete (finished earlier);
#   the jobs whose output is missing or incomplete, when <dir>/.inputs.pending is <stamp> (a run
#     of the same inputs was killed: the jobs it finished are kept);
#   all of them otherwise, after removing the earlier run's outputs and scores, so a directory
#     never mixes two runs.
# Earlier scores are removed whenever a job is to run. Messages go to stderr.
kd_jobs_to_run() {
  local me=$1 dir=$2 name=$3 stamp=$4 nj=$5 j f todo=""
  if [ -f "$dir/.inputs" ] && [ "$(cat "$dir/.inputs")" = "$stamp" ] \
      && kd_job_outputs_complete "$dir" "$name" >/dev/null; then
    echo "$me: $dir has every $name.N.gz of these inputs: not redone (remove it to redo)" >&2
    return 0
  fi
  mkdir -p "$dir"
  if [ -f "$dir/.inputs.pending" ] && [ "$(cat "$dir/.inputs.pending")" = "$stamp" ]; then
    for j in $(seq "$nj"); do
      kd_job_output_ok "$dir/$name.$j.gz" || todo="$todo $j"
    done
    echo "$me: continuing the interrupted run of these inputs in $dir: job(s)${todo:- none} of $nj left" >&2
  else
    rm -f "$dir/.inputs" "$dir"/"$name".*.gz "$dir/num_jobs"
    echo "$stamp" > "$dir/.inputs.tmp" && mv "$dir/.inputs.tmp" "$dir/.inputs.pending"
    todo=" $(seq -s ' ' "$nj")"
  fi
  rm -f "$dir"/wer_*
  rm -rf "$dir/scoring_kaldi"
  echo "${todo# }"
}

# kd_finish_outputs <dir>: the step's outputs are complete: its stamp becomes current.
kd_finish_outputs() {
  mv "$1/.inputs.pending" "$1/.inputs"
}

# kd_job_list <me> <nj> "<jobs>": print the --jobs option's job numbers, checked to lie in 1..<nj>;
# an empty option means all of them. Use as: jobs=$(kd_job_list "$me" "$nj" "$jobs")
kd_job_list() {
  local me=$1 nj=$2 jobs=$3 j
  [ -z "$jobs" ] && jobs=$(seq -s ' ' "$nj")
  for j in $jobs; do
    [[ "$j" =~ ^[1-9][0-9]*$ ]] && [ "$j" -le "$nj" ] \
      || { echo "$me: --jobs must list job numbers in 1..$nj, got '$jobs'" >&2; exit 1; }
  done
  echo "$jobs"
}

# kd_run_jobs <cmd> "<jobs>" <log-with-JOB> <command...>: as `$cmd JOB=1:N <log> <command>`, for
# the listed job numbers only (a resumed step): one $cmd call per job, in parallel; fails when any
# job fails. All of 1..N: the one JOB=1:N call.
kd_run_jobs() {
  local cmd=$1 jobs=$2 j pids=() rc=0 n
  shift 2
  n=$(wc -w <<< "$jobs")
  [ "$n" -eq 0 ] && return 0
  if [ "$jobs" = "$(seq -s ' ' "$n")" ]; then
    $cmd JOB=1:"$n" "$@"
    return
  fi
  for j in $jobs; do
    $cmd JOB="$j:$j" "$@" &
    pids+=($!)
  done
  for j in "${pids[@]}"; do wait "$j" || rc=1; done
  return $rc
}

# kd_begin_output_dir <me> <dir>: a training step starts: an earlier run's <dir> (finished or
# killed) is moved aside to <dir>.previous (replacing an older one), so the new run never mixes
# with the old final.mdl, graph or decodes; <dir>/.incomplete marks the run until
# kd_end_output_dir <dir> removes it. (A dir holding only run.sh's .recipe_args counts as empty.)
kd_begin_output_dir() {
  local me=$1 dir=$2
  if [ -d "$dir" ] && [ -n "$(ls -A "$dir" | grep -vx '.recipe_args')" ]; then
    rm -rf "$dir.previous"
    mv "$dir" "$dir.previous"
    echo "$me: moved the earlier run's $dir aside to $dir.previous"
  fi
  mkdir -p "$dir/log"
  date > "$dir/.incomplete"
  KD_OUTPUT_DIR=$dir   # kd_use_kaldi_script ends it too
}

kd_end_output_dir() {
  rm -f "$1/.incomplete"
}
