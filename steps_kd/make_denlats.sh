#!/usr/bin/env bash
# Denominator lattices for sequence training, as Kaldi nnet1's steps/nnet/make_denlats.sh:
# decode the training data with the current network through a graph with a weak (unigram) LM.
#   steps_kd/make_denlats.sh [options] <data-dir> <lang-or-graph-dir> <nnet-dir> <denlat-dir>
# Output (Kaldi nnet1's layout, random access): <denlat-dir>/lat.N.ark + lat.N.scp, lat.scp.
set -euo pipefail

nj=4
cmd=run.pl
acwt=0.1
beam=13.0
lattice_beam=7.0
max_active=5000
gmm_dir=          # final.mdl (+ tree to build a graph) of the network's pdfs (default: <nnet-dir>)
model=            # default <nnet-dir>/final.pt
prior_scale=1.0
device=           # empty: pykd's default (auto: cuda when torch sees a GPU)
num_threads=1
keep_loglikes=false
loglikes=         # a dir with the network's loglikes.scp over <data-dir>, computed before
stage=0

help_message="Usage: steps_kd/make_denlats.sh [options] <data-dir> <lang-or-graph-dir> <nnet-dir> <denlat-dir>
 e.g.: steps_kd/make_denlats.sh --gmm-dir exp/tri1 data/train_fbank exp/tri1/graph_ug exp/dnn exp/dnn_denlats
       steps_kd/make_denlats.sh --gmm-dir exp/tri1 data/train_fbank data/lang exp/dnn exp/dnn_denlats
<lang-or-graph-dir>: a graph dir with HCLG.fst (built from a unigram lang, e.g. with
steps_kd/make_unigram_lang.sh + utils/mkgraph.sh), or a lang dir: then, as Kaldi does, a unigram
G over <data-dir>/text goes to <denlat-dir>/lang and its graph to <denlat-dir>/dengraph
(needs <gmm-dir>/tree). <data-dir>: fbank feats.scp, cmvn.scp, text; <nnet-dir>: final.pt,
prior.counts. Writes <denlat-dir>/lat.N.ark, lat.N.scp, lat.scp (utt lat.N.ark:offset, for random
access), num_jobs, log/decode_den.N.log. Utterances that reach no final state get no lattice (named
in the log; train-seq skips and counts them).
Options:
  --nj <n>                  # parallel jobs, split by speaker (default: $nj)
  --cmd <run.pl|queue.pl>   # job runner (default: $cmd)
  --acwt <f>                # acoustic scale; affects only pruning (default: $acwt)
  --beam <f>                # decoding beam (default: $beam)
  --lattice-beam <f>        # lattice beam (default: $lattice_beam)
  --max-active <n>          # max active states (Kaldi's decoder; default: $max_active)
  --gmm-dir <dir>           # final.mdl (and tree) of the network's pdfs (default: <nnet-dir>)
  --model <final.pt>        # network (default: <nnet-dir>/final.pt)
  --prior-scale <f>         # (default: $prior_scale)
  --device <cpu|cuda|auto>  # forward pass (default: pykd's, auto)
  --num-threads <n>         # torch threads per job (default: $num_threads)
  --keep-loglikes <bool>    # keep <denlat-dir>/loglikes (default: $keep_loglikes)
  --loglikes <dir>          # the network's log-likelihoods over <data-dir> already written
                            # (<dir>/loglikes.scp at this --prior-scale, e.g. by
                            # steps_kd/make_teacher_posts.sh --loglikes-dir): stage 1 splits
                            # them by job instead of running the network again
  --stage <n>               # 0: graph, 1: loglikes, 2: decode (default: $stage)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" nj:pos_int acwt:pos_float beam:pos_float lattice_beam:pos_float max_active:pos_int prior_scale:nonneg_float num_threads:nonneg_int keep_loglikes:bool stage:int

kd_check_num_args 4 $#
data=$1
langgraph=$2
nnetdir=$3
dir=$4
me=steps_kd/make_denlats.sh
[ -z "$gmm_dir" ] && gmm_dir=$nnetdir
[ -z "$model" ] && model=$nnetdir/final.pt
mdl=$gmm_dir/final.mdl

kd_require_files "$me" "$data/feats.scp" "$data/utt2spk" "$data/spk2utt" "$model" "$mdl"
mkdir -p "$dir/log"

if [ -f "$langgraph/HCLG.fst" ]; then
  graphdir=$langgraph
elif [ -f "$langgraph/L.fst" ] && [ -f "$langgraph/words.txt" ]; then
  graphdir=$dir/dengraph
  if [ "$stage" -le 0 ]; then
    for f in "$data/text" "$gmm_dir/tree"; do
      [ -f "$f" ] || { echo "$me: no such file $f (needed to build the unigram graph)" >&2; exit 1; }
    done
    echo "$me: unigram LM of $data/text -> $dir/lang -> $graphdir"
    steps_kd/make_unigram_lang.sh --lm-dir "$dir/lm" "$data/text" "$langgraph" "$dir/lang"
    utils/mkgraph.sh "$dir/lang" "$gmm_dir" "$graphdir"
  fi
else
  echo "$me: $langgraph is neither a graph dir (HCLG.fst) nor a lang dir (L.fst, words.txt)" >&2
  exit 1
fi
kd_require_files "$me" "$graphdir/HCLG.fst" "$graphdir/words.txt"
kd_check_graph_pdfs "$me" "$graphdir" "$mdl"

# A re-run with the same network, graph, data and options keeps finished lattices (lat.scp is
# written last); otherwise all are made again.
[ -z "$loglikes" ] || kd_require_files "$me" "$loglikes/loglikes.scp"
stamp=$(kd_inputs_stamp "$acwt $beam $lattice_beam $max_active $prior_scale $nj" "$model" "$mdl" \
  "$graphdir/HCLG.fst" "$data/feats.scp" "$data/utt2spk")
if [ "$stage" -le 2 ] && [ -f "$dir/lat.scp" ] && [ "$(cat "$dir/.inputs" 2>/dev/null)" = "$stamp" ]; then
  echo "$me: $dir has the lattices of these inputs: not redone (remove it to redo)"
  stage=3
elif [ "$stage" -le 2 ]; then
  rm -f "$dir/.inputs" "$dir/lat.scp"
fi

if [ "$stage" -le 1 ] && [ -n "$loglikes" ]; then
  # the jobs' utterances (split by speaker, as make_loglikes.sh splits them) from the given table
  nj=$(kd_num_jobs "$me" "$nj" "$data")
  utils/split_data.sh "$data" "$nj"
  mkdir -p "$dir/loglikes"
  for j in $(seq "$nj"); do
    utils/filter_scp.pl "$data/split$nj/$j/feats.scp" "$loglikes/loglikes.scp" \
      > "$dir/loglikes/loglikes.$j.scp"
    n_have=$(wc -l < "$dir/loglikes/loglikes.$j.scp")
    n_want=$(wc -l < "$data/split$nj/$j/feats.scp")
    [ "$n_have" = "$n_want" ] || { echo "$me: $loglikes/loglikes.scp has $n_have of the $n_want utterances of job $j ($data/split$nj/$j)" >&2; exit 1; }
  done
  echo "$nj" > "$dir/loglikes/num_jobs"
  echo "$me: log-likelihoods of $data from $loglikes (not computed again)"
elif [ "$stage" -le 1 ]; then
  steps_kd/make_loglikes.sh --nj "$nj" --cmd "$cmd" --prior-scale "$prior_scale" \
    --model "$model" --gmm-model "$mdl" ${device:+--device "$device"} --num-threads "$num_threads" \
    "$data" "$nnetdir" "$dir/loglikes"
fi

if [ "$stage" -le 2 ]; then
  [ -f "$dir/loglikes/num_jobs" ] || { echo "$me: no $dir/loglikes/num_jobs (run stage 1)" >&2; exit 1; }
  nj=$(cat "$dir/loglikes/num_jobs")
  if [ "${PYKD_KALDI:-0}" = 1 ]; then
    latgen=(latgen-faster-mapped)
  else
    latgen=(pykd latgen-faster-mapped --check-best-path=false)
  fi
  rm -f "$dir"/lat.*.ark "$dir"/lat.*.scp "$dir/lat.scp"
  echo "$me: decoding $data with $graphdir/HCLG.fst into $dir (beam $beam, lattice beam $lattice_beam)"
  $cmd JOB=1:"$nj" "$dir/log/decode_den.JOB.log" \
    "${latgen[@]}" --beam="$beam" --lattice-beam="$lattice_beam" --acoustic-scale="$acwt" \
      --max-active="$max_active" --word-symbol-table="$graphdir/words.txt" \
      "$mdl" "$graphdir/HCLG.fst" "scp:$dir/loglikes/loglikes.JOB.scp" \
      "ark,scp:$dir/lat.JOB.ark,$dir/lat.JOB.scp"
  for j in $(seq "$nj"); do cat "$dir/lat.$j.scp"; done > "$dir/lat.scp.tmp"
  echo "$nj" > "$dir/num_jobs"
  mv "$dir/lat.scp.tmp" "$dir/lat.scp"
  echo "$stamp" > "$dir/.inputs"
  if [ "$keep_loglikes" != true ]; then
    rm -f "$dir"/loglikes/loglikes.*.ark "$dir"/loglikes/loglikes*.scp
  fi
fi
n_lat=$(wc -l < "$dir/lat.scp")
n_utt=$(wc -l < "$data/feats.scp")
echo "$me: done: $n_lat lattices for $n_utt utterances in $dir/lat.scp"
if [ "$n_lat" -lt "$n_utt" ]; then
  echo "$me: WARNING: $((n_utt - n_lat)) utterances have no lattice (see $dir/log/decode_den.*.log)" >&2
fi
