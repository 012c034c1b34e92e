#!/usr/bin/env bash
# RESULTS.md: WER tables of the GMM and network systems (pykd results-table). The LM weight /
# word insertion penalty is tuned on the tune set (dev); the test set (eval) is scored with
# sclite at dev's setting, and eval's own best setting is shown beside it for comparison.
#   local/results.sh [--systems exp/systems.txt] [--gmm "exp/mono exp/tri1"] [--nnet "exp/dnn exp/hdnn_ce exp/hdnn_kd"]
#     [--kd-pair "exp/dnn exp/hdnn_ce exp/hdnn_kd"] [--epochs "exp/dnn_smbr exp/hdnn_smbr"]
#     [--adapt exp/hdnn_kd [--adapt-methods "teacher decode oracle"] [--adapt-tag TAG]]
#     [--seed-plot exp/kd_seeds.png] > RESULTS.md
set -euo pipefail

systems=
gmm=
nnet=
kd_pair=
epochs=
adapt=
adapt_methods=
adapt_tag=
seed_plot=
tune_set=dev
test_set=eval

help_message="Usage: local/results.sh [options] > RESULTS.md
Options:
  --systems <file>         # the systems run.sh's stages declared (exp/systems.txt; lines
                           # 'gmm DIR', 'nnet DIR', 'seq DIR', 'kd-pair T S_CE S_KD',
                           # 'adapt DIR [METHOD ...]'), added to the options below
  --gmm \"<dir> ...\"        # GMM system dirs (final.mdl, decode_<set>/scoring_kaldi)
  --nnet \"<dir> ...\"       # network dirs (final.pt, summary.json, decode_<set>/scoring_kaldi)
  --kd-pair \"<teacher> <student-ce> <student-kd>\"  # KD gain / teacher-student gap paragraph
  --epochs \"<dir> ...\"     # sequence-trained dirs: $tune_set WER per epoch (decode_<set>_ep<N>)
  --adapt <dir>            # network dir with speaker adaptation runs (adapt_<method>_<set>,
                           # decode_<set>_adapt_<method>; split: adapt_<method>_split_<set>,
                           # decode_<set>_half_adapt_<method>)
  --adapt-methods \"<m> ...\"  # of teacher decode oracle (default: all three)
  --adapt-tag <tag>        # adaptation dirs named with <method>_<tag> (default: none)
  --seed-plot <png>        # with tables over seeds (kd-seed lines): their KD - CE differences
                           # and paired bootstrap 95% intervals drawn to this PNG
  --tune-set <set>         # set the LMWT/WIP is tuned on (default: $tune_set)
  --test-set <set>         # set scored at the tune set's setting (default: $test_set)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh

if [ $# -ne 0 ] || [ -z "$systems$gmm$nnet$kd_pair$epochs$adapt" ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi

args=(--tune-set "$tune_set" --test-set "$test_set")
[ -n "$systems" ] && args+=(--systems "$systems")
read -r -a dirs <<< "$gmm"; [ ${#dirs[@]} -gt 0 ] && args+=(--gmm "${dirs[@]}")
read -r -a dirs <<< "$nnet"; [ ${#dirs[@]} -gt 0 ] && args+=(--nnet "${dirs[@]}")
read -r -a dirs <<< "$kd_pair"; [ ${#dirs[@]} -gt 0 ] && args+=(--kd-pair "${dirs[@]}")
read -r -a dirs <<< "$epochs"; [ ${#dirs[@]} -gt 0 ] && args+=(--epochs "${dirs[@]}")
if [ -n "$adapt" ]; then
  args+=(--adapt "$adapt")
  read -r -a methods <<< "$adapt_methods"
  [ ${#methods[@]} -gt 0 ] && args+=(--adapt-methods "${methods[@]}")
  [ -n "$adapt_tag" ] && args+=(--adapt-tag "$adapt_tag")
fi
[ -n "$seed_plot" ] && args+=(--seed-plot "$seed_plot")
# the whole table first, so that a missing file leaves no half-written RESULTS.md content
table=$(pykd results-table "${args[@]}")

echo "# Results"
echo
echo "WER (%) from sclite. The LM weight / word insertion penalty (GMMs: LMWT 7..17, networks: LMWT 4..15; x WIP 0.0,0.5,1.0)"
echo "is tuned on $tune_set; $test_set is scored at $tune_set's setting (setting in brackets)."
echo "\"$test_set best\" is $test_set's own best setting (an oracle, as Kaldi's best_wer reports it),"
echo "for comparison only. Written by \`local/results.sh\`."
echo
printf '%s\n' "$table"
