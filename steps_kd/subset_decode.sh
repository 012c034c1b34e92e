#!/usr/bin/env bash
# Copyright 2026 pykd authors. Apache 2.0.
# The decode of a subset of a decoded data dir, without decoding again: the source decode's
# lattices of the subset's utterances (lattice-copy --include), scored over the same LM weights
# and word insertion penalties as the source (read off its wer_<LMWT>_<WIP> files).
#   steps_kd/subset_decode.sh [options] <subset-data-dir> <graph-dir> <src-decode-dir> <out-decode-dir>
# The lattices are those a decode of the subset would write: a network decode is per utterance
# (its log-likelihoods depend on the utterance's features, its speaker's CMVN stats, which a
# subset keeps, and the model). With PYKD_KALDI=1 Kaldi's lattice-copy does the copy.
set -euo pipefail

cmd=run.pl

help_message="Usage: steps_kd/subset_decode.sh [options] <subset-data-dir> <graph-dir> <src-decode-dir> <out-decode-dir>
 e.g.: steps_kd/subset_decode.sh data/dev_fbank_half exp/tri1/graph exp/hdnn_kd/decode_dev exp/hdnn_kd/decode_dev_half
Options:
  --cmd <run.pl|queue.pl>   # scoring (default: $cmd)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_num_args 4 $#
data=$1
graphdir=$2
src=$3
dir=$4
me=steps_kd/subset_decode.sh

kd_require_files "$me" "$data/utt2spk" "$data/text" "$graphdir/words.txt" "$src/num_jobs"
kd_check_job_outputs "$me" "$src" lat
wips=$(find "$src" -maxdepth 1 -name 'wer_*_*' -printf '%f\n' | cut -d_ -f3 | sort -u -n | paste -sd,)
lmwts=$(find "$src" -maxdepth 1 -name 'wer_*_*' -printf '%f\n' | cut -d_ -f2 | sort -n | uniq)
[ -n "$wips" ] || { echo "$me: $src is not scored (no wer_<LMWT>_<WIP> files)" >&2; exit 1; }

mkdir -p "$dir/log"
rm -f "$dir"/wer_* "$dir"/lat.*.gz "$dir/num_jobs"
rm -rf "$dir/scoring_kaldi"
nj=$(cat "$src/num_jobs")
lats=()
for j in $(seq "$nj"); do lats+=("$src/lat.$j.gz"); done
if [ "${PYKD_KALDI:-0}" = 1 ]; then
  copy=(lattice-copy "--include=$data/utt2spk")
else
  copy=(pykd lattice-copy --include "$data/utt2spk")
fi
"${copy[@]}" "ark:gunzip -c ${lats[*]}|" "ark:|gzip -c > $dir/lat.1.gz" 2> "$dir/log/lattice_copy.log" \
  || { cat "$dir/log/lattice_copy.log" >&2; rm -f "$dir/lat.1.gz"; echo "$me: lattice-copy failed" >&2; exit 1; }
# lattice-copy (Kaldi's and ours) logs "Wrote N out of M utterances." for a subset
copied=$(grep -o 'Wrote [0-9]* out of' "$dir/log/lattice_copy.log" | awk '{print $2}')
want=$(wc -l < "$data/utt2spk")
[ "${copied:-0}" = "$want" ] || { rm -f "$dir/lat.1.gz"
  echo "$me: $src has lattices for ${copied:-0} of the $want utterances of $data" >&2; exit 1; }
echo 1 > "$dir/num_jobs"
echo "$me: the lattices of $want utterances of $src copied to $dir"
steps_kd/score.sh --cmd "$cmd" --min-lmwt "$(head -1 <<< "$lmwts")" --max-lmwt "$(tail -1 <<< "$lmwts")" \
  --word-ins-penalty "$wips" "$data" "$graphdir" "$dir"
[ -f "$dir/scoring_kaldi/best_wer" ] && echo "$me: $(cat "$dir/scoring_kaldi/best_wer")"
echo "$me: done"
