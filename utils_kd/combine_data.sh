#!/usr/bin/env bash
# pykd's combine_data.sh: same interface as Kaldi's utils/combine_data.sh (written from scratch
# for pykd; the work is done by _kdlib.py, Python 3 stdlib-only).
set -euo pipefail
usage="Usage: $0 [--extra-files '<f1> <f2>'] [--skip-fix true|false] <dest-data-dir> <src-data-dir1> <src-data-dir2> ...
 Concatenates the files of the source data directories (a file is combined only if every source
 has it; sources without segments get whole-recording segments if others have segments), then
 runs fix_data_dir.sh on the result unless --skip-fix true. Utterance ids must be unique."
extra_files=
skip_fix=false
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/parse_options.sh"
[ $# -ge 2 ] || { echo "$usage" >&2; exit 1; }
dest=$1; shift
for src in "$@"; do
  [ "$(readlink -f "$src")" != "$(readlink -f "$dest")" ] || { echo "$0: destination $dest is also a source" >&2; exit 1; }
  [ -f "$src/utt2spk" ] || { echo "$0: no such file $src/utt2spk" >&2; exit 1; }
done
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
mkdir -p "$dest"
KD_SCRIPT=combine_data.sh python3 "$here/_kdlib.py" combine "$extra_files" "$dest" "$@"
if ! $skip_fix; then
  "$here/fix_data_dir.sh" "$dest"
fi
