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
  --cmd <run.pl|queue.pl>   # job runner for Kaldi's script (default: $cmd)
  --beam <f>                # alignment beam (default: $beam)
  --retry-beam <f>          # beam for the retry (default: $retry_beam)
  --careful <true|false>    # careful alignment (default: $careful)
  --boost-silence <f>       # factor on silence likelihoods (default: $boost_silence)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh

if [ $# -ne 4 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
data=$1
lang=$2
srcdir=$3
dir=$4
me=steps_kd/align_si.sh

if [ "${PYKD_KALDI:-0}" = 1 ]; then
  echo "$me: PYKD_KALDI=1: running Kaldi's steps/align_si.sh"
  exec "$KALDI_ROOT/egs/wsj/s5/steps/align_si.sh" "${orig_args[@]}"
fi

for f in "$data/feats.scp" "$data/cmvn.scp" "$data/text" "$data/utt2spk" "$data/spk2utt" \
         "$lang/L.fst" "$lang/topo" "$lang/words.txt" "$lang/phones/disambig.int" \
         "$srcdir/final.mdl" "$srcdir/tree"; do
  [ -f "$f" ] || { echo "$me: no such file $f" >&2; exit 1; }
done
[[ "$nj" =~ ^[1-9][0-9]*$ ]] || { echo "$me: --nj must be a positive integer, got '$nj'" >&2; exit 1; }
nspk=$(wc -l < "$data/spk2utt")
if [ "$nj" -gt "$nspk" ]; then
  echo "$me: reducing --nj from $nj to the number of speakers, $nspk"
  nj=$nspk
fi

mkdir -p "$dir/log"
utils/split_data.sh "$data" "$nj"
echo "$me: aligning data in $data using model from $srcdir, putting alignments in $dir"
pykd align --nj "$nj" --beam "$beam" --retry-beam "$retry_beam" --careful "$careful" \
  --boost-silence "$boost_silence" "$data" "$lang" "$srcdir" "$dir"
echo "$me: done aligning data."
