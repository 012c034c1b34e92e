#!/usr/bin/env bash
# Monophone GMM-HMM training, interface of Kaldi's steps/train_mono.sh:
#   steps_kd/train_mono.sh [options] <data-dir> <lang-dir> <exp-dir>
# With PYKD_KALDI=1 (path.sh found a built Kaldi) Kaldi's own steps/train_mono.sh runs with the
# same arguments; otherwise `pykd train-mono` (kaldi-hmm-gmm, Kaldi's maths) does the work.
set -euo pipefail
orig_args=("$@")

nj=4
cmd=run.pl
totgauss=1000
num_iters=40
max_iter_inc=30
boost_silence=1.0
realign_iters="1 2 3 4 5 6 7 8 9 10 12 14 16 18 20 23 26 29 32 35 38"
power=0.25
cmvn_opts=
careful=false
stage=-4

help_message="Usage: steps_kd/train_mono.sh [options] <data-dir> <lang-dir> <exp-dir>
 e.g.: steps_kd/train_mono.sh --nj 4 --cmd run.pl data/train data/lang exp/mono
Flat-start monophone training: gmm-init-mono, equal alignment, <num-iters> EM passes with
realignment at <realign-iters> and linear mixing-up to <totgauss> Gaussians.
Writes <exp-dir>/{final.mdl,tree,ali.N.gz,num_jobs,cmvn_opts,log/} (N = 1..nj, data split by
speaker with utils/split_data.sh). The alignment jobs of every realignment run through --cmd
(\$cmd JOB=1:nj log/align.<iter>.JOB.log ...), so queue.pl/slurm.pl spread them.
Options:
  --nj <n>                  # parallel jobs (default: $nj; at most one per speaker)
  --cmd <run.pl|queue.pl>   # job runner (default: $cmd)
  --totgauss <n>            # target number of Gaussians (default: $totgauss)
  --num-iters <n>           # EM iterations (default: $num_iters)
  --max-iter-inc <n>        # last iteration that adds Gaussians (default: $max_iter_inc)
  --boost-silence <f>       # factor on silence likelihoods when aligning (default: $boost_silence)
  --realign-iters <list>    # iterations that realign (default: \"$realign_iters\")
  --power <f>               # mixing-up exponent (default: $power)
  --cmvn-opts <opts>        # apply-cmvn options (default: none)
  --careful <true|false>    # careful alignment (default: $careful)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" nj:pos_int totgauss:pos_int num_iters:pos_int max_iter_inc:pos_int boost_silence:pos_float power:nonneg_float careful:bool stage:int

kd_check_num_args 3 $#
data=$1
lang=$2
dir=$3
me=steps_kd/train_mono.sh

kd_begin_output_dir "$me" "$dir"
kd_use_kaldi_script "$me" steps/train_mono.sh "${orig_args[@]}"

kd_require_files "$me" "$data/feats.scp" "$data/cmvn.scp" "$data/text" "$data/utt2spk" "$data/spk2utt" \
  "$lang/L.fst" "$lang/topo" "$lang/words.txt" "$lang/phones/sets.int" \
  "$lang/phones/disambig.int" "$lang/phones/optional_silence.csl"
nj=$(kd_num_jobs "$me" "$nj" "$data")

mkdir -p "$dir/log"
utils/split_data.sh "$data" "$nj"
echo "$me: training a monophone system in $dir ($nj jobs, $num_iters iterations, $totgauss Gaussians)"
pykd train-mono --nj "$nj" --cmd "$cmd" --num-iters "$num_iters" --max-iter-inc "$max_iter_inc" \
  --totgauss "$totgauss" --boost-silence "$boost_silence" --realign-iters "$realign_iters" \
  --power "$power" --cmvn-opts "$cmvn_opts" --careful "$careful" "$data" "$lang" "$dir"
tail -n 1 "$dir/log/train.log"
kd_end_output_dir "$dir"
echo "$me: done training the monophone system in $dir"
