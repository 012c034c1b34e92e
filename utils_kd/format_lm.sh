#!/usr/bin/env bash
# pykd's stand-in for Kaldi's utils/format_lm.sh (same arguments): copies a lang dir and adds
# G.fst compiled from an ARPA LM (kaldilm = Kaldi's arpa2fst, plus its redundant-state removal).
set -euo pipefail

max_order=-1

help_message="Usage: $0 [options] <lang-dir> <arpa-LM(.gz)> <lexicon> <out-dir>
 e.g.: $0 data/lang data/local/lm/lm.arpa.gz data/local/dict/lexicon.txt data/lang_test
Copies <lang-dir> (all files) to <out-dir> and adds G.fst (word ids of <lang-dir>/words.txt,
back-off arcs labelled #0, no <s>/</s> on arcs). Fails, naming them, if the ARPA has words
missing from words.txt.
Options:
  --max-order <n>    # highest n-gram order to use (default: all, -1)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh

if [ $# -ne 4 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
lang_dir=$1
lm=$2
lexicon=$3
out_dir=$4

for f in "$lang_dir/words.txt" "$lang_dir/phones.txt" "$lang_dir/L.fst" "$lm" "$lexicon"; do
  [ -f "$f" ] || { echo "$0: no such file $f" >&2; exit 1; }
done

echo "$0: formatting $lm into $out_dir (from $lang_dir)"
pykd format-lm --max-order "$max_order" "$lang_dir" "$lm" "$lexicon" "$out_dir"
echo "$0: done; G.fst is $out_dir/G.fst"
