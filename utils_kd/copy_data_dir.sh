#!/usr/bin/env bash
# pykd's copy_data_dir.sh: same interface as Kaldi's utils/copy_data_dir.sh (written from scratch
# for pykd; the work is done by _kdlib.py, Python 3 stdlib-only).
set -euo pipefail
usage="Usage: $0 [options] <src-data-dir> <dest-data-dir>
 Copies a data directory, optionally renaming utterances and speakers (recording ids are kept).
Options:
  --utt-prefix <p>    prefix for utterance ids (default: none)
  --utt-suffix <s>    suffix for utterance ids
  --spk-prefix <p>    prefix for speaker ids
  --spk-suffix <s>    suffix for speaker ids
  --validate-opts <o> options for validate_data_dir.sh on the result"
utt_prefix=
utt_suffix=
spk_prefix=
spk_suffix=
validate_opts=
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/parse_options.sh"
[ $# -eq 2 ] || { echo "$usage" >&2; exit 1; }
src=$1; dest=$2
[ -f "$src/utt2spk" ] || { echo "$0: no such file $src/utt2spk" >&2; exit 1; }
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
mkdir -p "$dest"
KD_SCRIPT=copy_data_dir.sh python3 "$here/_kdlib.py" copy "$src" "$dest" \
  "$utt_prefix" "$utt_suffix" "$spk_prefix" "$spk_suffix"
[ -f "$dest/feats.scp" ] || validate_opts="$validate_opts --no-feats"
[ -f "$dest/text" ] || validate_opts="$validate_opts --no-text"
[ -f "$dest/wav.scp" ] || validate_opts="$validate_opts --no-wav"
# shellcheck disable=SC2086
"$here/validate_data_dir.sh" $validate_opts "$dest"
