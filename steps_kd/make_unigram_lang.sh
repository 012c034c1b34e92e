#!/usr/bin/env bash
# Weak language model for denominator lattices (Kaldi's make_denlats.sh: a unigram over the
# training transcripts): maximum-likelihood unigram ARPA -> <out-lang> = <lang> + its G.fst.
#   steps_kd/make_unigram_lang.sh [options] <text> <lang-dir> <out-lang-dir>
# Then build its graph with utils/mkgraph.sh <out-lang-dir> exp/tri1 exp/tri1/graph_ug.
set -euo pipefail

oov=
lm_dir=
lexicon=

help_message="Usage: steps_kd/make_unigram_lang.sh [options] <text> <lang-dir> <out-lang-dir>
 e.g.: steps_kd/make_unigram_lang.sh data/train/text data/lang data/lang_ug
       utils/mkgraph.sh data/lang_ug exp/tri1 exp/tri1/graph_ug
<text>: Kaldi text (utt word ...); words outside <lang-dir>/words.txt count as the OOV word.
Writes <lm-dir>/lm.arpa.gz (p(w) = c(w)/N, p(</s>) = sentences/N) and <out-lang-dir> (a copy of
<lang-dir> with G.fst, via utils/format_lm.sh).
Options:
  --oov <word>        # OOV symbol (default: <lang-dir>/oov.txt)
  --lm-dir <dir>      # where the ARPA goes (default: <parent of out-lang>/local/lm_<out-lang name>)
  --lexicon <file>    # lexicon for utils/format_lm.sh (default: <lang-dir>/phones/align_lexicon.txt)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh

kd_check_num_args 3 $#
text=$1
lang=$2
out=$3
me=steps_kd/make_unigram_lang.sh

kd_require_files "$me" "$text" "$lang/words.txt" "$lang/L.fst"
[ -z "$oov" ] && oov=$(cat "$lang/oov.txt")
[ -z "$lm_dir" ] && lm_dir=$(dirname "$out")/local/lm_$(basename "$out")
[ -z "$lexicon" ] && lexicon=$lang/phones/align_lexicon.txt
[ -f "$lexicon" ] || { echo "$me: no such file $lexicon (--lexicon)" >&2; exit 1; }

mkdir -p "$lm_dir"
pykd make-unigram-arpa --words "$lang/words.txt" --oov "$oov" "$text" "$lm_dir/lm.arpa.gz"
utils/format_lm.sh "$lang" "$lm_dir/lm.arpa.gz" "$lexicon" "$out"
echo "$me: done: $out/G.fst (unigram of $text)"
