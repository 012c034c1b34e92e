#!/usr/bin/env bash
# Copyright 2026 pykd authors. Apache 2.0.
# Generate the embedded meeting corpus (flite + sox + noise, seeded) and its Kaldi data dirs.

set -euo pipefail

size=default
seed=1
nj=2
train_minutes=
dev_minutes=
eval_minutes=
untrans_minutes=

help_message="Usage: $0 [options] <corpus-dir> <data-dir>
 e.g.: $0 --size default --seed 1 --nj 2 corpus/embedded data
Writes <corpus-dir>/wav/{train,dev,eval}/*.wav, <data-dir>/{train,dev,eval}/ (wav.scp, text,
utt2spk, spk2utt, spk2gender, utt2dur) and <data-dir>/local/{lm/train_text.txt,
corpus_words.txt,corpus_speakers.txt,corpus_stats.txt}. Re-running reuses finished wavs.
wav.scp paths are written as <corpus-dir> is given: use a path relative to the recipe root.
Options:
  --size <tiny|default|double> # corpus size (default: $size; double: twice default's train)
  --seed <int>               # random seed (default: $seed)
  --nj <int>                 # parallel synthesis workers (default: $nj)
  --train-minutes <float>    # override the size's train minutes (likewise --dev-minutes,
                             # --eval-minutes)
  --untrans-minutes <float>  # also <data-dir>/untrans: untranscribed speech of new speakers
                             # (no text file; default: none)"

echo "$0 $*"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh

if [ $# -ne 2 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi

corpus_dir=$1
data_dir=$2

for tool in flite sox pykd; do
  command -v $tool >/dev/null || { echo "$0: '$tool' not found on PATH" >&2; exit 1; }
done
case "$size" in tiny|default|double) ;; *) echo "$0: bad --size '$size'" >&2; exit 1;; esac

opts=()
[ -n "$train_minutes" ] && opts+=(--train-minutes "$train_minutes")
[ -n "$dev_minutes" ] && opts+=(--dev-minutes "$dev_minutes")
[ -n "$eval_minutes" ] && opts+=(--eval-minutes "$eval_minutes")
[ -n "$untrans_minutes" ] && opts+=(--untrans-minutes "$untrans_minutes")

mkdir -p "$data_dir/local/log"
pykd make-embedded-corpus --size "$size" --seed "$seed" --nj "$nj" \
  --corpus-dir "$corpus_dir" --data-dir "$data_dir" "${opts[@]}" \
  2>&1 | tee "$data_dir/local/log/make_corpus.log"

echo "$0: embedded corpus ($size, seed $seed) in $corpus_dir, data dirs in $data_dir"
