#!/usr/bin/env bash
# Train a back-off n-gram LM (default: 3-gram, modified Kneser-Ney) with IRSTLM.
set -euo pipefail

order=3
smoothing=improved-kneser-ney
prune_threshold=
words=
unk="<unk>"
text_format=kaldi
dev_text=

help_message="Usage: $0 [options] <train-text> <lm-dir>
 e.g.: $0 --words data/lang/words.txt data/train/text data/local/lm
Writes <lm-dir>/lm.arpa.gz (IRSTLM build-lm.sh + compile-lm), log in <lm-dir>/log/train_lm.log.
Options:
  --order <n>                # n-gram order (default: $order)
  --smoothing <s>            # build-lm.sh -s (default: $smoothing)
  --prune-threshold <t>      # prune-lm --threshold, e.g. 1e-7 (default: no pruning)
  --words <words.txt>        # map words not in this symbol table to --unk (default: no mapping)
  --unk <sym>                # OOV symbol (default: $unk)
  --text-format kaldi|plain  # kaldi: first field is the utterance id (default: $text_format)
  --dev-text <text>          # also write <lm-dir>/perplexity.txt on this text (same format)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" order:pos_int 'prune_threshold:nonneg_float?'

kd_check_num_args 2 $#
text=$1
dir=$2

[ -f "$text" ] || { echo "$0: no such file $text" >&2; exit 1; }
[ -z "$words" ] || [ -f "$words" ] || { echo "$0: no such file $words" >&2; exit 1; }
[ -z "$dev_text" ] || [ -f "$dev_text" ] || { echo "$0: no such file $dev_text" >&2; exit 1; }
case "$text_format" in
  kaldi) fmt_opt=(--kaldi-text) ;;
  plain) fmt_opt=() ;;
  *) echo "$0: --text-format must be kaldi or plain, got '$text_format'" >&2; exit 1 ;;
esac
command -v build-lm.sh >/dev/null || { echo "$0: IRSTLM build-lm.sh not on PATH (path.sh)" >&2; exit 1; }

mkdir -p "$dir/log"
opts=(--order "$order" --smoothing "$smoothing" --unk "$unk" --log "$dir/log/train_lm.log")
[ -n "$prune_threshold" ] && opts+=(--prune-threshold "$prune_threshold")
[ -n "$words" ] && opts+=(--words "$words")

echo "$0: training $order-gram $smoothing LM on $text"
if ! pykd train-lm "${opts[@]}" "${fmt_opt[@]}" "$text" "$dir/lm.arpa.gz"; then
  echo "$0: LM training failed; see $dir/log/train_lm.log" >&2
  exit 1
fi

if [ -n "$dev_text" ]; then
  pykd lm-eval --unk "$unk" "${fmt_opt[@]}" "$dir/lm.arpa.gz" "$dev_text" > "$dir/perplexity.txt.tmp"
  mv "$dir/perplexity.txt.tmp" "$dir/perplexity.txt"
  cat "$dir/perplexity.txt"
fi
echo "$0: wrote $dir/lm.arpa.gz"
