#!/usr/bin/env bash
# AMI dictionary: the training-transcript word list (with counts) -> pykd prepare-dict
# (CMUdict pronunciations, G2P for words CMUdict lacks).
#   local/ami/ami_prepare_dict.sh data/ihm/train data/local/dict
set -euo pipefail
[ -f ./path.sh ] && . ./path.sh

min_count=1        # keep words seen at least this often in the training text

help_message="Usage: $0 [options] <train-data-dir> <dict-dir>
e.g.: $0 data/ihm/train data/local/dict
Writes <dict-dir>/../ami_train_words.txt ('word count', most frequent first) and the dict dir.
Options:
  --min-count <n>   # drop rarer training words (default: $min_count)"

. utils/parse_options.sh

if [ $# -ne 2 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
data=$1
dict=$2
[ -s "$data/text" ] || { echo "$0: '$data/text' missing or empty (run local/ami/ami_data_prep.sh)" >&2; exit 1; }
[[ "$min_count" =~ ^[0-9]+$ ]] || { echo "$0: --min-count must be a number" >&2; exit 1; }

words=$(dirname "$dict")/ami_train_words.txt
mkdir -p "$(dirname "$dict")"
cut -d' ' -f2- "$data/text" | tr ' ' '\n' | grep -v '^$' | LC_ALL=C sort | uniq -c | \
  awk -v m="$min_count" '$1 >= m {print $2, $1}' | LC_ALL=C sort -k2,2nr -k1,1 > "$words.tmp"
mv "$words.tmp" "$words"
[ -s "$words" ] || { echo "$0: no words left in $words" >&2; exit 1; }
echo "$0: $(wc -l < "$words") training words -> $words"
pykd prepare-dict --extra-lexicon local/ami/extra_lexicon.txt --words "$words" "$dict"
echo "$0: $(wc -l < "$dict/lexicon.txt") lexicon entries in $dict"
