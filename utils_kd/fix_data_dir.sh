#!/usr/bin/env bash
# pykd's fix_data_dir.sh: same interface as Kaldi's utils/fix_data_dir.sh (written from scratch
# for pykd; the work is done by _kdlib.py, Python 3 stdlib-only).
set -euo pipefail
usage="Usage: $0 [--utt-extra-files '<f1> <f2>'] [--spk-extra-files '<f1> <f2>'] <data-dir>
 Keeps only the utterances present in every per-utterance file (utt2spk, text, feats.scp,
 segments (whose recording is in wav.scp) or wav.scp, utt2dur, ...) whose speaker is in every
 per-speaker file (cmvn.scp, spk2gender); keeps only the speakers and recordings they need;
 sorts every file; regenerates spk2utt. The old files are kept in <data-dir>/.backup/.
 (Exact duplicate lines are dropped; an utterance with an empty transcript is kept.)"
utt_extra_files=
spk_extra_files=
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/parse_options.sh"
[ $# -eq 1 ] || { echo "$usage" >&2; exit 1; }
data=$1
[ -f "$data/utt2spk" ] || { echo "$0: no such file $data/utt2spk" >&2; exit 1; }
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
KD_SCRIPT=fix_data_dir.sh exec python3 "$here/_kdlib.py" fix "$data" "$utt_extra_files" "$spk_extra_files"
