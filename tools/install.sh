#!/usr/bin/env bash
# Idempotent set-up for pykd: Debian tools + a Python venv with pinned dependencies.
# Called by run.sh and tools/test.sh; safe to run any number of times (a no-op when up to date).
#   tools/install.sh [--no-apt]
set -euo pipefail
cd "$(dirname "$0")/.."

no_apt=false
[ "${1:-}" = "--no-apt" ] && no_apt=true

# --- Debian tools: TTS (flite), audio effects (sox), scoring (sctk: sclite), LM (irstlm),
#     OpenFst command-line tools (libfst-tools: fstprint/fstinfo/fstconvert for inspecting graphs),
#     a C++ compiler (g++: pykd's lattice determinisation).
deb_packages=(flite sox sctk irstlm libfst-tools g++)
need_deb_binaries=(/usr/bin/flite /usr/bin/sox /usr/lib/sctk/bin/sclite /usr/lib/irstlm/bin/build-lm.sh /usr/bin/fstprint /usr/bin/g++)
missing=()
for i in "${!need_deb_binaries[@]}"; do
  [ -x "${need_deb_binaries[$i]}" ] || missing+=("${deb_packages[$i]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if $no_apt; then
    echo "$0: missing Debian packages: ${missing[*]} (--no-apt given)" >&2; exit 1
  elif [ "$(id -u)" = 0 ]; then
    echo "$0: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "$0: missing Debian packages: ${missing[*]}. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# --- Python venv with the pinned set (requirements.txt) and pykd itself (editable).
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "$0: $python is $("$python" --version 2>&1); pykd needs Python >= 3.10" >&2; exit 1
fi
# pykd's compiled helpers (pykd/decode/latdet.cpp -> _latdet.so: the decoder's search and lattice
# determinisation; pykd/train/adam.cpp -> _adam.so: Adam's update in one pass;
# pykd/io/mkl_vendor.cpp -> _mkl_vendor.so: MKL's fast kernels on AMD CPUs, preloaded by path.sh;
# needs a C++ compiler: Debian g++). A no-op when a library is newer than its source.
build_native() {
  for module in pykd.decode.latdet pykd.train.adam pykd.io.mkl_vendor; do
    .venv/bin/python -m "$module" >/dev/null \
      || { echo "$0: building $module's library failed (see above)" >&2; exit 1; }
  done
}
stamp=.venv/.pykd-install-stamp
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/pykd ]; then
  build_native
  exit 0
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
echo "$0: installing Python dependencies into .venv (pinned in requirements.txt)"
pip_log=$(mktemp)
if ! { .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt &&
       .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .; } >"$pip_log" 2>&1; then
  grep -v "^WARNING: Location" "$pip_log" >&2; rm -f "$pip_log"
  echo "$0: pip install failed (see above)" >&2; exit 1
fi
rm -f "$pip_log"
# Fail loudly if the pinned Kaldi wrappers do not import together (docs/design.md §2).
.venv/bin/python -c 'import kaldi_hmm_gmm, kaldifst, kaldi_decoder, kaldilm, kaldi_native_fbank, kaldiio, torch' \
  || { echo "$0: the Python dependencies do not import; see the errors above" >&2; exit 1; }
build_native
echo "$want" > "$stamp"
echo "$0: done"
