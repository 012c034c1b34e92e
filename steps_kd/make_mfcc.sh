#!/usr/bin/env bash
# Kaldi-style MFCC extraction (interface of Kaldi's steps/make_mfcc.sh):
#   steps_kd/make_mfcc.sh [--nj 4] [--cmd run.pl] [--mfcc-config conf/mfcc.conf]
#                         [--compress true] <data-dir> [<log-dir> [<mfcc-dir>]]
# The work is shared with steps_kd/make_fbank.sh (run with --help for the details).
set -euo pipefail
PYKD_FEAT_KIND=mfcc exec "$(dirname "${BASH_SOURCE[0]}")/make_fbank.sh" "$@"
