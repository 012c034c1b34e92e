#!/usr/bin/env bash
# pykd's validate_data_dir.sh: same interface as Kaldi's utils/validate_data_dir.sh (written from
# scratch for pykd). The checks live in pykd/io/validate.py ("pykd validate-data-dir").
set -euo pipefail
usage="Usage: $0 [--no-feats] [--no-text] [--no-wav] [--no-spk-sort] [--non-print] <data-dir>
 Checks a Kaldi data directory: C-sorted unique keys, utt2spk/spk2utt consistent, every utterance
 has a non-empty transcript (text), audio (wav.scp, or segments -> recording in wav.scp) and
 features (feats.scp), no extra keys, cmvn.scp covers the speakers.
  --no-feats     do not require feats.scp      --no-text   do not require text
  --no-wav       do not require wav.scp        --no-spk-sort  do not require speaker ids to sort
                                                  like the utterances (speaker-id prefixes)"
opts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-feats|--no-text|--no-wav|--no-spk-sort|--non-print) opts+=("$1"); shift ;;
    --help|-h) echo "$usage" >&2; exit 0 ;;
    --*) echo "$0: unknown option $1" >&2; echo "$usage" >&2; exit 1 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || { echo "$usage" >&2; exit 1; }
[ -d "$1" ] || { echo "$0: no such directory $1" >&2; exit 1; }
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
if command -v pykd >/dev/null 2>&1; then
  exec pykd validate-data-dir "${opts[@]}" "$1"
elif [ -x "$here/../.venv/bin/pykd" ]; then
  exec "$here/../.venv/bin/pykd" validate-data-dir "${opts[@]}" "$1"
else
  PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m pykd.cli validate-data-dir "${opts[@]}" "$1"
fi
