#!/usr/bin/env bash
# Links Kaldi's shared recipe scripts (egs/wsj/s5/{steps,utils}) for this recipe dir:
#   tools/link_kaldi_scripts.sh <kaldi-root> <dest-dir>
# Prints the folder that holds the usable steps/ and utils/: Kaldi's own egs/wsj/s5 when its
# symbolic links are intact, otherwise <dest-dir>, a mirror of symbolic links (cp -rs) in which
# every plain-file stand-in of a link is replaced by a real link. Such stand-ins (a file holding
# only the link's target, e.g. utils/run.pl = "parallel/run.pl") are what git writes with
# core.symlinks=false and what copies that drop links leave; Kaldi's scripts then fail with
# "Permission denied" on run.pl or score_kaldi.sh. Kaldi's tree is never modified.
set -euo pipefail
[ $# -eq 2 ] || { echo "Usage: $0 <kaldi-root> <dest-dir>" >&2; exit 1; }
src=$(cd "$1/egs/wsj/s5" && pwd -P)
dest=$2

# is_stand_in <file>: a one-line file without newline, < 256 bytes, holding a relative path that
# exists beside the file.
is_stand_in() {
  local f=$1 target
  [ -f "$f" ] && [ ! -L "$f" ] && [ "$(stat -c %s "$f")" -lt 256 ] || return 1
  [ "$(wc -l < "$f")" -eq 0 ] || return 1
  target=$(cat "$f")
  [[ "$target" =~ ^[A-Za-z0-9_.][A-Za-z0-9_./-]*$ ]] && [ -e "$(dirname "$f")/$target" ]
}

# Kaldi's layout has utils/run.pl as a link to parallel/run.pl: intact links, use the tree as is.
if ! is_stand_in "$src/utils/run.pl"; then
  echo "$src"
  exit 0
fi
stamp="$dest/.source"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$src" ]; then
  echo "$dest"
  exit 0
fi
tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
cp -rs "$src/steps" "$src/utils" "$tmp/"
n=0
while IFS= read -r -d '' link; do
  original=$(readlink "$link")
  if is_stand_in "$original"; then
    ln -sfn "$(cat "$original")" "$link"   # relative: resolves inside the mirror, like Kaldi's
    n=$((n + 1))
  fi
done < <(find "$tmp" -type l -print0)
echo "$src" > "$tmp/.source"
rm -rf "$dest"
mv "$tmp" "$dest"
echo "$0: $src has $n plain-file stand-ins for symbolic links; linked a repaired mirror in $dest" >&2
echo "$dest"
