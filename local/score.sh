#!/usr/bin/env bash
# The recipe's scoring hook, Kaldi convention: Kaldi's steps/decode.sh (and other steps/ scripts)
# score through local/score.sh [--cmd CMD] [options] <data-dir> <lang-or-graph-dir> <decode-dir>.
# Ours is steps_kd/score.sh, which hands over to Kaldi's steps/score_kaldi.sh when PYKD_KALDI=1.
exec steps_kd/score.sh "$@"
