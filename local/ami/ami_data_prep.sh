#!/usr/bin/env bash
# AMI data preparation: audio + NXT manual annotations -> Kaldi data dirs
#   <data-dir>/<mic>/{train,dev,eval}/{wav.scp,segments,text,utt2spk,spk2utt,
#                                       reco2file_and_channel,stats.txt}
# on the official full-corpus ASR split (dev 18 meetings, eval 16, train the rest but IB4005).
# Ids follow Kaldi's egs/ami/s5b (see docs/ami.md).
set -euo pipefail
[ -f ./path.sh ] && . ./path.sh

mic=ihm            # ihm | sdm1
annotations=       # ami_public_manual_1.6.x folder or .zip (default: found inside <ami-dir>)
max_words=30       # split transcriber segments with more words than this
keep_truncated=false

help_message="Usage: $0 [options] <ami-dir> <data-dir>
 <ami-dir> holds amicorpus/<MEET>/audio/<MEET>.Headset-<N>.wav (IHM), <MEET>.Array1-01.wav (SDM)
           and, unless --annotations is given, ami_public_manual_1.6.x/ (or its .zip).
e.g.: $0 --mic ihm /corpora/ami data
Options:
  --mic <ihm|sdm1>          # microphone condition (default: $mic)
  --annotations <path>      # annotations folder or zip (default: inside <ami-dir>)
  --max-words <n>           # split longer segments (default: $max_words)
  --keep-truncated <bool>   # keep truncated words in the text (default: $keep_truncated)"

. utils/parse_options.sh

if [ $# -ne 2 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
ami_dir=$1
data_dir=$2

case "$mic" in ihm|sdm[1-8]) ;; *) echo "$0: --mic must be ihm or sdm1, got '$mic'" >&2; exit 1;; esac
[ -d "$ami_dir/amicorpus" ] || { echo "$0: no amicorpus/ folder in '$ami_dir'" >&2; exit 1; }
if [ -n "$annotations" ] && [ ! -e "$annotations" ]; then
  echo "$0: annotations '$annotations' not found" >&2; exit 1
fi

opts=(--ami-dir "$ami_dir" --mic "$mic" --data-dir "$data_dir" --max-words "$max_words")
[ -n "$annotations" ] && opts+=(--annotations "$annotations")
[ "$keep_truncated" = true ] && opts+=(--keep-truncated)

mkdir -p "$data_dir/local/ami"
log=$data_dir/local/ami/data_prep_$mic.log
echo "$0: preparing AMI $mic data in $data_dir/$mic (log: $log)"
pykd ami-data-prep "${opts[@]}" 2>&1 | tee "$log"
for split in train dev eval; do
  if [ -d "$data_dir/$mic/$split" ]; then
    utils/validate_data_dir.sh --no-feats "$data_dir/$mic/$split"
  fi
done
echo "$0: AMI $mic data preparation succeeded"
