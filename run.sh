#!/usr/bin/env bash
# pykd recipe: embedded meeting corpus (default) or AMI, Kaldi style.
#   ./run.sh [--stage N] [--stop-stage M] [--corpus embedded|ami] [--size default|tiny] ...
# Each stage calls one local/, steps_kd/ or utils/ script and leaves its outputs as files
# under data/ and exp/, so any stage can be re-run, or done by real Kaldi instead.
set -euo pipefail

stage=0
stop_stage=100
corpus=embedded      # embedded | ami
size=default         # embedded corpus size: default | tiny
seed=1               # embedded corpus seed
corpus_dir=corpus    # where the embedded corpus' wavs go
ami_dir=             # AMI: folder with amicorpus/ and the annotations
ami_annotations=     # AMI: annotations folder or zip (default: found under --ami-dir)
mic=ihm              # AMI: ihm | sdm1
nj=2                 # parallel jobs
lm_order=3
lm_prune_threshold=  # e.g. 1e-7 to prune the LM (empty: no pruning)
tri_leaves=400       # tied states of the triphone GMM (~4000 at AMI scale)
tri_gauss=4000       # Gaussians of the triphone GMM
decode_nj=2
skip_install=false

help_message="Usage: $0 [options]
  --stage N / --stop-stage M   run stages N..M (default 0..100)
  --corpus embedded|ami        corpus (default: embedded)
  --size default|tiny          embedded corpus size (default: default)
  --seed N                     embedded corpus seed (default: 1)
  --ami-dir DIR --mic ihm|sdm1 AMI corpus copy and microphone
  --nj N                       parallel jobs (default: 2)
  --lm-prune-threshold X       prune the 3-gram LM (default: none)
  --tri-leaves N --tri-gauss N triphone GMM size (default: 400 / 4000)
Stages: 0 set-up, 1 data dirs, 2 dictionary + lang, 3 LM + lang_test,
        4 features (MFCC + CMVN for the GMM, fbank + CMVN for the networks),
        5 monophone GMM + graph + decode, 6 triphone GMM (tree) + graph + decode,
        7 triphone alignments of train (network targets) + GMM WER table"

cd "$(dirname "$0")"
. ./utils_kd/parse_options.sh   # our own; utils/ may not exist before path.sh runs

if ! $skip_install; then tools/install.sh; fi
. ./path.sh
. ./cmd.sh

case "$corpus" in
  embedded) data=data ;;
  ami) [ -n "$ami_dir" ] || { echo "$0: --corpus ami needs --ami-dir" >&2; exit 1; }
       data=data/$mic ;;
  *) echo "$0: unknown --corpus '$corpus' (embedded|ami)" >&2; exit 1 ;;
esac
sets="train dev eval"
mkdir -p exp
times=exp/stage_times.txt

# run_stage N "description" -> true when stage N is selected; records its wall time.
stage_start=0
begin_stage() {
  [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] || return 1
  echo "$0: ===== stage $1: $2 ($(date +%T)) ====="
  stage_start=$(date +%s)
}
end_stage() {
  local secs=$(( $(date +%s) - stage_start ))
  echo "$0: stage $1 took ${secs}s"
  echo -e "$(date +%F_%T)\t${corpus}/${size}\tstage $1\t$2\t${secs}s" >> "$times"
}

if begin_stage 1 "data directories"; then
  if [ "$corpus" = embedded ]; then
    local/embedded/make_corpus.sh --size "$size" --seed "$seed" --nj "$nj" "$corpus_dir" data
  else
    local/ami/ami_data_prep.sh --mic "$mic" ${ami_annotations:+--annotations "$ami_annotations"} \
      "$ami_dir" data
  fi
  for x in $sets; do utils/validate_data_dir.sh --no-feats "$data/$x"; done
  end_stage 1 "data directories"
fi

if begin_stage 2 "dictionary and lang"; then
  if [ "$corpus" = embedded ]; then
    local/embedded/prepare_dict.sh data/local/corpus_words.txt data/local/dict
  else
    local/ami/ami_prepare_dict.sh "$data/train" data/local/dict
  fi
  utils/prepare_lang.sh data/local/dict "<unk>" data/local/lang_tmp data/lang
  pykd check-lang-text data/lang "$data/train/text"
  end_stage 2 "dictionary and lang"
fi

if begin_stage 3 "language model and lang_test"; then
  steps_kd/train_lm.sh --order "$lm_order" --words data/lang/words.txt \
    ${lm_prune_threshold:+--prune-threshold "$lm_prune_threshold"} \
    --dev-text "$data/dev/text" "$data/train/text" data/local/lm
  utils/format_lm.sh data/lang data/local/lm/lm.arpa.gz data/local/dict/lexicon.txt data/lang_test
  # (train_lm.sh printed the dev perplexity (SRILM-style, </s> counted) and OOV rate.)
  end_stage 3 "language model and lang_test"
fi

if begin_stage 4 "features"; then
  for x in $sets; do
    # MFCC + per-speaker CMVN for the GMM systems.
    steps_kd/make_mfcc.sh --nj "$nj" --cmd "$train_cmd" --mfcc-config conf/mfcc.conf \
      "$data/$x" exp/make_mfcc/$x mfcc
    steps_kd/compute_cmvn_stats.sh "$data/$x" exp/make_mfcc/$x mfcc
    utils/validate_data_dir.sh "$data/$x"
    # 40-dim log-mel fbank + per-speaker CMVN for the networks, in a parallel data dir.
    utils/copy_data_dir.sh "$data/$x" "$data/${x}_fbank"
    rm -f "$data/${x}_fbank/feats.scp" "$data/${x}_fbank/cmvn.scp"
    steps_kd/make_fbank.sh --nj "$nj" --cmd "$train_cmd" --fbank-config conf/fbank.conf \
      "$data/${x}_fbank" exp/make_fbank/$x fbank
    steps_kd/compute_cmvn_stats.sh "$data/${x}_fbank" exp/make_fbank/$x fbank
    utils/validate_data_dir.sh "$data/${x}_fbank"
  done
  end_stage 4 "features"
fi

# decode_sets <system-dir>: graph exists; decode dev and eval, score with sclite.
decode_sets() {
  local sys=$1 x
  for x in dev eval; do
    steps_kd/decode.sh --nj "$decode_nj" --cmd "$decode_cmd" "$sys/graph" "$data/$x" "$sys/decode_$x"
    cat "$sys/decode_$x/scoring_kaldi/best_wer"
  done
}

if begin_stage 5 "monophone GMM"; then
  steps_kd/train_mono.sh --nj "$nj" --cmd "$train_cmd" "$data/train" data/lang exp/mono
  utils/mkgraph.sh data/lang_test exp/mono exp/mono/graph
  decode_sets exp/mono
  end_stage 5 "monophone GMM"
fi

if begin_stage 6 "triphone GMM"; then
  steps_kd/align_si.sh --nj "$nj" --cmd "$train_cmd" "$data/train" data/lang exp/mono exp/mono_ali
  steps_kd/train_deltas.sh --nj "$nj" --cmd "$train_cmd" "$tri_leaves" "$tri_gauss" \
    "$data/train" data/lang exp/mono_ali exp/tri1
  utils/mkgraph.sh data/lang_test exp/tri1 exp/tri1/graph
  decode_sets exp/tri1
  end_stage 6 "triphone GMM"
fi

if begin_stage 7 "triphone alignments and GMM results"; then
  steps_kd/align_si.sh --nj "$nj" --cmd "$train_cmd" "$data/train" data/lang exp/tri1 exp/tri1_ali
  local/gmm_results.sh exp/mono exp/tri1 > RESULTS.md.tmp && mv RESULTS.md.tmp RESULTS.md
  cat RESULTS.md
  end_stage 7 "triphone alignments and GMM results"
fi

echo "$0: done (stages $stage..$stop_stage); stage times in $times"
