#!/usr/bin/env bash
# Speaker-independent alignment with a GMM model, interface of Kaldi's steps/align_si.sh:
#   steps_kd/align_si.sh [options] <data-dir> <lang-dir> <src-dir> <align-dir>
# With PYKD_KALDI=1 Kaldi's own steps/align_si.sh runs with the same arguments; otherwise
# `pykd align` (kaldi-hmm-gmm's aligner) does the work.
set -euo pipefail
orig_args=("$@")

nj=4
cmd=run.pl
beam=10
retry_beam=40
careful=false
boost_silence=1.0
use_graphs=false
stage=0

help_message="Usage: steps_kd/align_si.sh [options] <data-dir> <lang-dir> <src-dir> <align-dir>
 e.g.: steps_kd/align_si.sh --nj 4 --cmd run.pl data/train data/lang exp/mono exp/mono_ali
Aligns <data-dir> with <src-dir>/final.mdl and tree: writes <align-dir>/ali.N.gz (N = 1..nj,
split by speaker), final.mdl, tree, num_jobs, cmvn_opts and log/align.N.log. Utterances that do
not align with --beam are retried with --retry-beam, then skipped, counted and named in the log.
Options:
  --nj <n>                  # parallel jobs (default: $nj; at most one per speaker)
  --cmd <run.pl|queue.pl>   # job runner of the nj jobs (default: $cmd)
  --beam <f>                # alignment beam (default: $beam)
  --retry-beam <f>          # beam for the retry (default: $retry_beam)
  --careful <true|false>    # careful alignment (default: $careful)
  --boost-silence <f>       # factor on silence likelihoods (default: $boost_silence)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" nj:pos_int beam:pos_float retry_beam:pos_float careful:bool boost_silence:pos_float use_graphs:bool stage:int

kd_check_num_args 4 $#
data=$1
lang=$2
srcdir=$3
dir=$4
me=steps_kd/align_si.sh

kd_use_kaldi_script "$me" steps/align_si.sh "${orig_args[@]}"

kd_require_files "$me" "$data/feats.scp" "$data/cmvn.scp" "$data/text" "$data/utt2spk" "$data/spk2utt" \
  "$lang/L.fst" "$lang/topo" "$lang/words.txt" "$lang/phones/disambig.int" \
  "$srcdir/final.mdl" "$srcdir/tree"
nj=$(kd_num_jobs "$me" "$nj" "$data")

mkdir -p "$dir/log"
utils/split_data.sh "$data" "$nj"
echo "$me: aligning data in $data using model from $srcdir, putting alignments in $dir"
pykd align --nj "$nj" --cmd "$cmd" --beam "$beam" --retry-beam "$retry_beam" --careful "$careful" \
  --boost-silence "$boost_silence" "$data" "$lang" "$srcdir" "$dir"
echo "$me: done aligning data."
