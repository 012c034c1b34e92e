#!/usr/bin/env bash
# pykd's subset_data_dir.sh: same interface as Kaldi's utils/subset_data_dir.sh (written from
# scratch for pykd; the work is done by _kdlib.py, Python 3 stdlib-only).
set -euo pipefail
usage="Usage: $0 [--first|--last|--speakers|--per-spk|--shortest] <src-data-dir> <num-utt> <dest-data-dir>
   or: $0 --utt-list <utt-list> <src-data-dir> <dest-data-dir>
   or: $0 --spk-list <spk-list> <src-data-dir> <dest-data-dir>
 Creates a data directory with a subset of the utterances (and the speakers/recordings they need):
  (default)    <num-utt> utterances evenly spread over the source
  --first      the first <num-utt> utterances (in sorted order)
  --last       the last <num-utt> utterances
  --speakers   whole speakers, evenly spread, until about <num-utt> utterances
  --per-spk    <num-utt> utterances of every speaker
  --shortest   the <num-utt> shortest (needs utt2num_frames, utt2dur or segments)
  --utt-list   the utterances listed (first field) in <utt-list>
  --spk-list   the utterances of the speakers listed in <spk-list>"
mode=default; list=
while [ $# -gt 0 ]; do
  case "$1" in
    --first|--last|--speakers|--per-spk|--shortest) mode=${1#--}; shift ;;
    --utt-list|--spk-list)
      [ $# -ge 2 ] || { echo "$usage" >&2; exit 1; }
      mode=${1#--}; list=$2; shift 2 ;;
    --help|-h) echo "$usage" >&2; exit 0 ;;
    --*) echo "$0: unknown option $1" >&2; echo "$usage" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ "$mode" = utt-list ] || [ "$mode" = spk-list ]; then
  [ $# -eq 2 ] || { echo "$usage" >&2; exit 1; }
  src=$1; arg=$list; dest=$2
  [ -f "$list" ] || { echo "$0: no such file $list" >&2; exit 1; }
else
  [ $# -eq 3 ] || { echo "$usage" >&2; exit 1; }
  src=$1; arg=$2; dest=$3
  [[ "$arg" =~ ^[0-9]+$ ]] || { echo "$0: invalid number of utterances '$arg'" >&2; exit 1; }
fi
[ -f "$src/utt2spk" ] || { echo "$0: no such file $src/utt2spk" >&2; exit 1; }
[ "$(readlink -f "$src")" != "$(readlink -f "$dest")" ] || { echo "$0: source and destination are the same" >&2; exit 1; }
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
mkdir -p "$dest"
KD_SCRIPT=subset_data_dir.sh exec python3 "$here/_kdlib.py" subset "$mode" "$arg" "$src" "$dest"
