# Sourced by run.sh and every steps_kd/local script (Kaldi convention).
# Sets up: the project venv, `utils` (Kaldi's when KALDI_ROOT has a built Kaldi, else ours),
# Kaldi binaries when present, IRSTLM and sclite from Debian, and LC_ALL=C as Kaldi requires.
PYKD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYKD_ROOT

# utils/: Kaldi's own when a built Kaldi is present, otherwise pykd's compatible minimal set.
if [ -n "${KALDI_ROOT:-}" ] && [ -x "$KALDI_ROOT/src/featbin/compute-fbank-feats" ]; then
  __pykd_utils_target="$KALDI_ROOT/egs/wsj/s5/utils"
  export PYKD_KALDI=1
  export PATH="$KALDI_ROOT/src/bin:$KALDI_ROOT/src/featbin:$KALDI_ROOT/src/gmmbin:$KALDI_ROOT/src/latbin:$KALDI_ROOT/src/fstbin:$KALDI_ROOT/src/lmbin:$KALDI_ROOT/src/nnetbin:$KALDI_ROOT/tools/openfst/bin:$PATH"
else
  __pykd_utils_target="utils_kd"
  export PYKD_KALDI=0
fi
if [ "$(readlink "$PYKD_ROOT/utils" 2>/dev/null)" != "$__pykd_utils_target" ]; then
  ln -sfn "$__pykd_utils_target" "$PYKD_ROOT/utils"
fi
unset __pykd_utils_target
# Kaldi's steps/ (its scripts call steps/... and utils/... relative to the recipe dir): only with Kaldi.
if [ "$PYKD_KALDI" = 1 ] && [ "$(readlink "$PYKD_ROOT/steps" 2>/dev/null)" != "$KALDI_ROOT/egs/wsj/s5/steps" ]; then
  ln -sfn "$KALDI_ROOT/egs/wsj/s5/steps" "$PYKD_ROOT/steps"
fi

if [ -f "$PYKD_ROOT/.venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  . "$PYKD_ROOT/.venv/bin/activate"
fi
export IRSTLM=/usr/lib/irstlm
export PATH="$PYKD_ROOT/utils:$PYKD_ROOT/steps_kd:$IRSTLM/bin:/usr/lib/sctk/bin:$PATH"
export LC_ALL=C
export PYTHONUNBUFFERED=1
