#!/usr/bin/env bash
# Markdown table of the GMM systems' sclite WERs (best LM weight / insertion penalty per set,
# from steps_kd/score.sh's scoring_kaldi/best_wer) with the model sizes.
#   local/gmm_results.sh exp/mono exp/tri1 [...] > RESULTS.md
set -euo pipefail
[ -f ./path.sh ] && . ./path.sh
if [ $# -lt 1 ]; then
  echo "Usage: $0 <system-dir> [<system-dir> ...]" >&2; exit 1
fi
echo "# Results"
echo
echo "WER (%) from sclite, best LM weight / word insertion penalty per set (Kaldi's best_wer);"
echo "written by \`local/gmm_results.sh\` (run.sh stage 7)."
echo
echo "| system | tied states (pdfs) | Gaussians | dev WER | eval WER |"
echo "|---|---|---|---|---|"
for sys in "$@"; do
  [ -f "$sys/final.mdl" ] || { echo "$0: $sys/final.mdl missing" >&2; exit 1; }
  info=$(python - "$sys/final.mdl" <<'PY'
import sys
from pykd.kaldi.model_io import model_info, read_model
tm, am = read_model(sys.argv[1])
info = model_info(tm, am)
print(info["pdfs"], info["gaussians"])
PY
)
  row="| $(basename "$sys") | ${info% *} | ${info#* }"
  for x in dev eval; do
    best=$sys/decode_$x/scoring_kaldi/best_wer
    [ -f "$best" ] || { echo "$0: $best missing (decode $x first)" >&2; exit 1; }
    row="$row | $(awk '{print $2}' "$best")"
  done
  echo "$row |"
done
