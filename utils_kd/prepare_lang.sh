#!/usr/bin/env bash
# pykd's utils/prepare_lang.sh: same interface and same output files as Kaldi's
# (egs/wsj/s5/utils/prepare_lang.sh); the work is done by `pykd prepare-lang`.

# Options (Kaldi's defaults).
num_sil_states=5
num_nonsil_states=3
position_dependent_phones=true
share_silence_phones=false
sil_prob=0.5
phone_symbol_table=""
# Accepted for compatibility; only their defaults are supported.
num_extra_phone_disambig_syms=1
extra_word_disambig_syms=""
unk_fst=""

help_message="Usage: utils/prepare_lang.sh [options] <dict-src-dir> <oov-dict-entry> <tmp-dir> <lang-dir>
e.g.: utils/prepare_lang.sh data/local/dict \"<unk>\" data/local/lang_tmp data/lang
<dict-src-dir> should contain: lexicon.txt (or lexiconp.txt), silence_phones.txt,
  nonsilence_phones.txt, optional_silence.txt, and optionally extra_questions.txt.
options:
  --num-sil-states <n>               # default 5: HMM states of silence phones
  --num-nonsil-states <n>            # default 3: HMM states of non-silence phones
  --position-dependent-phones (true|false)  # default true: _B/_E/_I/_S word-position phones
  --share-silence-phones (true|false)       # default false: one pdf set for all silence phones
  --sil-prob <p>                     # default 0.5: optional-silence probability in L.fst
  --phone-symbol-table <phones.txt>  # default none: reuse an existing phone numbering"

set -euo pipefail
[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh

if [ $# -ne 4 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
srcdir=$1
oov_word=$2
tmpdir=$3
dir=$4

[ "$num_extra_phone_disambig_syms" = 1 ] || { echo "$0: only --num-extra-phone-disambig-syms 1 is supported" >&2; exit 1; }
[ -z "$extra_word_disambig_syms" ] || { echo "$0: --extra-word-disambig-syms is not supported" >&2; exit 1; }
[ -z "$unk_fst" ] || { echo "$0: --unk-fst is not supported" >&2; exit 1; }
[ -d "$srcdir" ] || { echo "$0: no such directory $srcdir" >&2; exit 1; }
if [ -n "$phone_symbol_table" ] && [ ! -f "$phone_symbol_table" ]; then
  echo "$0: no such file $phone_symbol_table" >&2; exit 1
fi

opts=(--position-dependent-phones "$position_dependent_phones"
      --share-silence-phones "$share_silence_phones"
      --sil-prob "$sil_prob"
      --num-sil-states "$num_sil_states" --num-nonsil-states "$num_nonsil_states")
[ -n "$phone_symbol_table" ] && opts+=(--phone-symbol-table "$phone_symbol_table")

mkdir -p "$dir" "$tmpdir"
pykd prepare-lang "${opts[@]}" "$srcdir" "$oov_word" "$tmpdir" "$dir"
echo "$0: SUCCESS [prepared lang directory $dir]"
