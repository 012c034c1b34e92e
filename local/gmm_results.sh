#!/usr/bin/env bash
# Markdown table of the GMM systems' WERs with the model sizes. Per set, the LM weight / word
# insertion penalty with the best WER (steps_kd/score.sh's scoring_kaldi/best_wer) is shown with
# sclite's WER for that setting (scoring_kaldi/sclite/*.sys, "Sum/Avg" Err column).
#   local/gmm_results.sh exp/mono exp/tri1 [...] > RESULTS.md
set -euo pipefail
[ -f ./path.sh ] && . ./path.sh
if [ $# -lt 1 ]; then
  echo "Usage: $0 <system-dir> [<system-dir> ...]" >&2; exit 1
fi
echo "# Results"
echo
echo "WER (%) from sclite at the best LM weight / word insertion penalty of each set"
echo "(LMWT 7..17 x WIP 0.0,0.5,1.0; setting in brackets). Written by \`local/gmm_results.sh\`"
echo "(run.sh stage 7)."
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
    # best_wer ends in .../wer_<LMWT>_<WIP>; sclite's report for it is hyp_lmwt<L>_wip<P>.sys
    setting=$(awk '{print $NF}' "$best" | sed 's|.*/wer_||')
    sys_file=$sys/decode_$x/scoring_kaldi/sclite/hyp_lmwt${setting%_*}_wip${setting#*_}.sys
    [ -f "$sys_file" ] || { echo "$0: $sys_file missing (sclite report)" >&2; exit 1; }
    wer=$(awk '/Sum\/Avg/ {print $(NF-2)}' "$sys_file")
    row="$row | $wer ($setting)"
  done
  echo "$row |"
done
