#!/usr/bin/env bash
# Knowledge distillation over seeds: the teacher, the CE student and the KD student (run.sh
# stages 8-9) trained and decoded once per seed, then the results table (stage 11) with the
# table over seeds (mean +- sd, paired KD - CE per seed, share of the gap closed, the paired
# bootstrap probability that KD is better: pykd/report/bootstrap.py). When the
# recipe has untranscribed audio (run.sh --untrans-minutes M, stages 1 and 4), each seed also
# trains stage 10's KD student on transcribed + untranscribed audio, and with --kd-speed-perturb
# "0.9 1.1" (passed on to run.sh) the KD student on train + its speed-perturbed copies; the
# results get a table over seeds for each.
#   local/run_seeds.sh [--seeds "1 2 3"] [--main-seed 1] [run.sh options]
# The main seed's networks are the recipe's own (exp/dnn, exp/hdnn_ce, exp/hdnn_kd: stages 8-9
# as run.sh runs them, kept when already trained); each other seed's go to exp/seeds/seed<N>/.
# Needs run.sh stages 1-7. Every other option goes to run.sh unchanged (e.g. --nj, --corpus).
set -euo pipefail

seeds="1 2 3"
main_seed=1   # run.sh's --seed of the main systems

help_message="Usage: $0 [--seeds \"1 2 3\"] [--main-seed N] [run.sh options]"
run_opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds=$2; shift 2 ;;
    --main-seed) main_seed=$2; shift 2 ;;
    --help|-h) echo "$help_message"; exit 0 ;;
    *) run_opts+=("$1"); shift ;;
  esac
done
. ./steps_kd/lib.sh
kd_check_options "$0" main_seed:int
for s in $seeds; do
  [[ "$s" =~ ^-?[0-9]+$ ]] || { echo "$0: --seeds: '$s' is not an integer" >&2; exit 1; }
done
[ "$(echo $seeds | wc -w)" -ge 2 ] || { echo "$0: --seeds needs two or more seeds, got '$seeds'" >&2; exit 1; }

for s in $seeds; do
  dir=exp/seeds/seed$s
  [ "$s" = "$main_seed" ] && dir=exp
  echo "$0: seed $s -> $dir/{dnn,hdnn_ce,hdnn_kd[,hdnn_kd_untrans]}"
  ./run.sh --skip-install true "${run_opts[@]}" --stage 8 --stop-stage 10 --seed "$s" --nnet-exp "$dir"
done
./run.sh --skip-install true "${run_opts[@]}" --stage 11 --stop-stage 11
