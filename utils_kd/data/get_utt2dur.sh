#!/usr/bin/env bash
# pykd's data/get_utt2dur.sh: same interface and output as Kaldi's utils/data/get_utt2dur.sh
# (written from scratch for pykd; durations come from wav headers via Python's wave module or
# soundfile, or from segments; the work is done by ../_kdlib.py).
set -euo pipefail
usage="Usage: $0 [options] <data-dir>
 Writes <data-dir>/utt2dur (\"utt duration-in-seconds\"): end-start from segments if present,
 else from the audio headers of wav.scp entries (files or commands ending in '|').
 Does nothing if utt2dur already covers every utterance.
Options (accepted for compatibility with Kaldi; jobs run in one process):
  --nj <n>  --cmd <cmd>  --read-entire-file <true|false>  --frame-shift <s>"
nj=4
cmd=run.pl
read_entire_file=false
frame_shift=0.01
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../parse_options.sh"
[ $# -eq 1 ] || { echo "$usage" >&2; exit 1; }
data=$1
[ -f "$data/utt2spk" ] || { echo "$0: no such file $data/utt2spk" >&2; exit 1; }
if [ ! -f "$data/segments" ] && [ ! -f "$data/wav.scp" ]; then
  echo "$0: $data has neither segments nor wav.scp" >&2; exit 1
fi
: "$nj" "$cmd" "$read_entire_file" "$frame_shift"
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
KD_SCRIPT=get_utt2dur.sh exec python3 "$here/../_kdlib.py" utt2dur "$data"
