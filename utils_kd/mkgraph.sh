#!/usr/bin/env bash
# pykd's stand-in for Kaldi's utils/mkgraph.sh (same arguments and outputs): builds the decoding
# graph HCLG.fst with kaldifst + kaldi_hmm_gmm, following Kaldi's recipe step for step
# (LG: det+min+push-special; CLG: compose-context; Ha; HCLGa: det, rm disambig, rmepslocal, min;
# HCLG: add-self-loops). With PYKD_KALDI=1 Kaldi's own utils/mkgraph.sh runs instead.
set -euo pipefail

transition_scale=1.0
self_loop_scale=0.1
remove_oov=false

help_message="Usage: utils/mkgraph.sh [options] <lang-dir> <model-dir> <graph-dir>
 e.g.: utils/mkgraph.sh data/lang_test exp/tri1 exp/tri1/graph
<lang-dir> needs L_disambig.fst, G.fst, words.txt, phones.txt, phones/{silence.csl,disambig.int};
<model-dir> needs tree and final.mdl. Writes <graph-dir>/HCLG.fst (OpenFst binary VectorFst; Kaldi's
decoders read VectorFst as well as ConstFst), words.txt, phones.txt, phones/, num_pdfs,
disambig_tid.int, and caches LG.fst / CLG_N_P.fst / ilabels_N_P in <lang-dir>/tmp (as Kaldi does).
Options:
  --remove-oov             # remove paths through the OOV word (<lang-dir>/oov.int) from G
  --transition-scale <f>   # scale on transition probabilities (default: $transition_scale)
  --self-loop-scale <f>    # scale on self-loop probabilities (default: $self_loop_scale)
Note: --mono, --left-biphone and --quinphone are deprecated and ignored (as in Kaldi)."

orig_args=("$@")
# Kaldi's flags without a value: handle them before parse_options.sh.
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --mono|--left-biphone|--quinphone)
      echo "$0: WARNING: the $1 option is deprecated and ignored." >&2; shift ;;
    --remove-oov)
      if [ $# -ge 2 ] && { [ "$2" = true ] || [ "$2" = false ]; }; then remove_oov=$2; shift 2
      else remove_oov=true; shift; fi ;;
    --remove-oov=*) remove_oov=${1#--remove-oov=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- ${args[@]+"${args[@]}"}

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh

if [ $# -ne 3 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
lang=$1
model_dir=$2
dir=$3

if [ "${PYKD_KALDI:-0}" = 1 ] && [ -x "${PYKD_ROOT:-.}/steps/../utils/mkgraph.sh" ]; then
  echo "$0: PYKD_KALDI=1: running Kaldi's utils/mkgraph.sh"
  exec "$(readlink -f "$PYKD_ROOT/steps")/../utils/mkgraph.sh" "${orig_args[@]}"
fi

for f in "$lang/L_disambig.fst" "$lang/G.fst" "$lang/phones.txt" "$lang/words.txt" \
         "$lang/phones/silence.csl" "$lang/phones/disambig.int" "$model_dir/final.mdl" \
         "$model_dir/tree"; do
  [ -f "$f" ] || { echo "$0: expected $f to exist" >&2; exit 1; }
done
case "$remove_oov" in true|false) ;; *) echo "$0: --remove-oov takes true/false" >&2; exit 1 ;; esac
oov_opt=
$remove_oov && oov_opt=--remove-oov

mkdir -p "$dir/log"
echo "$0: building $dir/HCLG.fst from $lang and $model_dir"
pykd mkgraph $oov_opt --transition-scale "$transition_scale" \
  --self-loop-scale "$self_loop_scale" "$lang" "$model_dir" "$dir" 2>&1 | tee "$dir/log/mkgraph.log"
echo "$0: done: $dir/HCLG.fst"
