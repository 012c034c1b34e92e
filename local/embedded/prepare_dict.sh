#!/usr/bin/env bash
# Dictionary for the embedded corpus: CMUdict pronunciations of the corpus vocabulary
# (every generated word is in CMUdict; any that is not would be sent to G2P and listed in
# <dict-dir>/g2p_words.txt).
#   local/embedded/prepare_dict.sh <corpus-words.txt> <dict-dir>
set -euo pipefail
[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh

if [ $# -ne 2 ]; then
  echo "Usage: $0 <corpus-words.txt> <dict-dir>" >&2
  echo "e.g.: $0 data/local/corpus_words.txt data/local/dict" >&2
  exit 1
fi
words=$1
dict=$2
[ -s "$words" ] || { echo "$0: word list '$words' missing or empty" >&2; exit 1; }
# First CMUdict pronunciation only: flite speaks one pronunciation per word, and unused
# variants leave pdfs without data in a small corpus (see kaldi-ref/gmm/RESULTS.txt).
pykd prepare-dict --prons first --words "$words" "$dict"
echo "$0: $(wc -l < "$dict/lexicon.txt") lexicon entries in $dict"
