#!/usr/bin/env bash
# run.sh stage 10 with --kd-speed-perturb: speed-perturbed copies of the training utterances
# (Kaldi's sp<factor>- naming, sox's speed effect), with fbank + per-speaker CMVN, for the
# teacher to label. The held-out (CV) utterances of the networks are left out, so that no copy
# of a CV speaker is trained on. Made again only when the factors or the CV list change.
#   local/make_speed_perturbed.sh [options] <train-data> <cv-utts> <out-fbank-dir>
#   e.g. local/make_speed_perturbed.sh --factors "0.9 1.1" data/train exp/dnn/cv_utts data/train_sp_fbank
set -euo pipefail

factors="0.9 1.1"
nj=2
cmd=run.pl

help_message="Usage: $0 [--factors \"$factors\"] [--nj N] [--cmd CMD] <train-data> <cv-utts> <out-fbank-dir>"
[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" nj:pos_int
kd_check_num_args 3 $#
src=$1 cv_utts=$2 out=$3
kd_require_files "$0" "$src/wav.scp" "$src/utt2spk" "$cv_utts"
kd_check_speed_factors "$0" factors "$factors"
[ -n "$factors" ] || { echo "$0: --factors is empty" >&2; exit 1; }

stamp="factors: $factors; CV utterances: $(sort "$cv_utts" | md5sum | cut -d' ' -f1)"
if [ -f "$out/feats.scp" ] && [ "$(cat "$out/.made_from" 2>/dev/null)" = "$stamp" ]; then
  echo "$0: $out is up to date ($stamp)"
  exit 0
fi
tmp=$out.tmp
rm -rf "$tmp" "$out"
mkdir -p "$tmp"
awk 'NR == FNR { cv[$1] = 1; next } !($1 in cv) { print $1 }' "$cv_utts" "$src/utt2spk" \
  > "$tmp/train_utts"
utils/subset_data_dir.sh --utt-list "$tmp/train_utts" "$src" "$tmp/train_no_cv"
parts=()
for f in $factors; do
  utils/perturb_data_dir_speed.sh "$f" "$tmp/train_no_cv" "$tmp/sp$f"
  parts+=("$tmp/sp$f")
done
utils/combine_data.sh "$tmp/sp" "${parts[@]}"
rm -f "$tmp/sp/feats.scp" "$tmp/sp/cmvn.scp"
steps_kd/make_fbank.sh --nj "$nj" --cmd "$cmd" --fbank-config conf/fbank.conf "$tmp/sp" \
  "exp/make_fbank/$(basename "$out")" fbank
steps_kd/compute_cmvn_stats.sh "$tmp/sp" "exp/make_fbank/$(basename "$out")" fbank
utils/validate_data_dir.sh "$tmp/sp"
echo "$stamp" > "$tmp/sp/.made_from"
rm -rf "$tmp/sp/split"*
mv "$tmp/sp" "$out"
rm -rf "$tmp"
echo "$0: $(wc -l < "$out/utt2spk") speed-perturbed utterances (factors $factors) in $out"
