# Sourced by run.sh and every steps_kd/local script (Kaldi convention).
# Sets up: the project venv, `utils` (Kaldi's when KALDI_ROOT has a built Kaldi, else ours),
# Kaldi binaries when present, IRSTLM and sclite from Debian, and LC_ALL=C as Kaldi requires.
PYKD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYKD_ROOT

# utils/: Kaldi's own when a built Kaldi is present, otherwise pykd's compatible minimal set.
# steps/: Kaldi's (its scripts call steps/... and utils/... relative to the recipe dir), only
# with Kaldi. tools/link_kaldi_scripts.sh picks egs/wsj/s5, or a repaired mirror of it when the
# install's symbolic links were flattened into plain files.
if [ -n "${KALDI_ROOT:-}" ] && [ -x "$KALDI_ROOT/src/featbin/compute-fbank-feats" ]; then
  export PYKD_KALDI=1
  export PATH="$KALDI_ROOT/src/bin:$KALDI_ROOT/src/featbin:$KALDI_ROOT/src/gmmbin:$KALDI_ROOT/src/latbin:$KALDI_ROOT/src/fstbin:$KALDI_ROOT/src/lmbin:$KALDI_ROOT/src/nnetbin:$KALDI_ROOT/tools/openfst/bin:$PATH"
  __pykd_scripts=$("$PYKD_ROOT/tools/link_kaldi_scripts.sh" "$KALDI_ROOT" "$PYKD_ROOT/.kaldi_scripts")
  __pykd_utils_target="$__pykd_scripts/utils"
  if [ "$(readlink "$PYKD_ROOT/steps" 2>/dev/null)" != "$__pykd_scripts/steps" ]; then
    ln -sfn "$__pykd_scripts/steps" "$PYKD_ROOT/steps"
  fi
  unset __pykd_scripts
else
  __pykd_utils_target="utils_kd"
  export PYKD_KALDI=0
fi
if [ "$(readlink "$PYKD_ROOT/utils" 2>/dev/null)" != "$__pykd_utils_target" ]; then
  ln -sfn "$__pykd_utils_target" "$PYKD_ROOT/utils"
fi
unset __pykd_utils_target

if [ -f "$PYKD_ROOT/.venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  . "$PYKD_ROOT/.venv/bin/activate"
fi
export IRSTLM=/usr/lib/irstlm
export PATH="$PYKD_ROOT/utils:$PYKD_ROOT/steps_kd:$IRSTLM/bin:/usr/lib/sctk/bin:$PATH"
export LC_ALL=C
export PYTHONUNBUFFERED=1

# MKL (inside PyTorch: its float32 matrix products) runs generic kernels on x86 CPUs not made by
# Intel; the shim built by tools/install.sh lets it pick them by instruction set (AMD EPYC with
# AVX-512: the teacher's CE training 1.7x faster; docs/training.md, *Matrix products on AMD CPUs*).
# PYKD_MKL_VENDOR_SHIM=0 turns it off.
__pykd_shim="$PYKD_ROOT/pykd/io/_mkl_vendor.so"
if [ "${PYKD_MKL_VENDOR_SHIM:-1}" != 0 ] && [ -f "$__pykd_shim" ] \
   && grep -q -m1 'AuthenticAMD\|HygonGenuine' /proc/cpuinfo 2>/dev/null; then
  case ":${LD_PRELOAD:-}:" in
    *":$__pykd_shim:"*) ;;
    *) export LD_PRELOAD="$__pykd_shim${LD_PRELOAD:+:$LD_PRELOAD}" ;;
  esac
fi
unset __pykd_shim
