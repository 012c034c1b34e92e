#!/usr/bin/env bash
# pykd's perturb_data_dir_speed.sh: same interface and output naming as Kaldi's
# utils/perturb_data_dir_speed.sh (written from scratch for pykd; the work is done by _kdlib.py,
# Python 3 stdlib-only).
set -euo pipefail
usage="Usage: $0 <factor> <src-data-dir> <dest-data-dir>
 e.g.: $0 0.9 data/train data/train_sp0.9
 A copy of a data dir whose audio plays <factor> times as fast (sox speed: tempo and pitch):
 utterance, speaker and recording ids get the prefix sp<factor>-, utt2dur / reco2dur / segments
 are scaled, utt2uniq maps each copy to its original. No features are copied."
[ $# -eq 3 ] || { echo "$usage" >&2; exit 1; }
factor=$1; src=$2; dest=$3
[[ "$factor" =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "$0: invalid speed factor '$factor'" >&2; exit 1; }
[ -f "$src/utt2spk" ] || { echo "$0: no such file $src/utt2spk" >&2; exit 1; }
[ -f "$src/wav.scp" ] || { echo "$0: no such file $src/wav.scp" >&2; exit 1; }
command -v sox >/dev/null || { echo "$0: sox is not on the PATH (the copies' wav.scp runs it)" >&2; exit 1; }
[ "$(readlink -f "$src")" != "$(readlink -f "$dest")" ] || { echo "$0: source and destination are the same" >&2; exit 1; }
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
rm -rf "$dest"; mkdir -p "$dest"
KD_SCRIPT=perturb_data_dir_speed.sh python3 "$here/_kdlib.py" perturb-speed "$factor" "$src" "$dest"
opts=(--no-feats); [ -f "$dest/text" ] || opts+=(--no-text)
"$here/validate_data_dir.sh" "${opts[@]}" "$dest" >/dev/null
