#!/usr/bin/env bash
# pykd recipe: embedded meeting corpus (default) or AMI, Kaldi style.
#   ./run.sh [--stage N] [--stop-stage M] [--corpus embedded|ami] [--size default|tiny|double] ...
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
decode_nj=           # jobs per dev/eval decode (empty: --nj shared by dev and eval, which decode at
                     # once on 2+ cores: nj / 2 each, at least 1)
decode_opts=         # extra options of every dev/eval decode (GMM and networks), e.g.
                     # "--beam 8 --lattice-beam 4" for a quick smoke run (defaults: Kaldi's)
nnet_lattice_beam=6  # lattice beam of the networks' dev/eval decodes (before --decode-opts; Kaldi's
                     # nnet default is 8: 6 gave the same WERs for 4 systems in ~75% of the time)
# Networks (stages 8-11). Empty configs: chosen by corpus (see below).
teacher_config=      # default: conf/teacher_dnn.yaml (AMI, 6x2048) | conf/teacher_dnn_small.yaml
student_config=conf/student_hdnn.yaml
nnet_train_config=conf/train_nnet.yaml
teacher_batch_size=  # the teacher's mini-batch (empty: the train config's; 512 with
                     # --teacher-precision auto trains ~2.5x faster)
teacher_precision=   # the teacher's matrix products in CE (stage 8), empty: pykd's default
                     # (float32); auto = bfloat16 where the device has it natively (AMX CPUs,
                     # CUDA) (docs/training.md; README: why it is not the default)
seq_teacher_precision=auto  # the same in its sequence training (stage 12): bfloat16 where native
                     # (~3x faster epochs, the float32 objective and WERs; docs/sequence.md)
nnet_max_epochs=     # override the max epochs of the train config (e.g. 2 for a smoke run)
student_epochs=14    # the students (stages 9-10) train this many epochs, the first
student_keep_lr_epochs=6  # this many at the initial lr, then halving it every epoch (newbob's
                     # rejection of a worse epoch kept); empty student_epochs: the train config's
                     # newbob stop, whose early stops made a seed's student a lottery (issue 16)
kd_p=1.0             # KD weight p: L = (1-p) CE(hard) + p CE(teacher)
kd_temperature=1.0
nnet_device=auto     # torch device for training: auto | cpu | cuda
nnet_threads=0       # torch CPU threads for training (0: torch's default)
nnet_procs=1         # DDP processes per CE/KD training run (torchrun; one per GPU)
nnet_data_on_device=false  # CE/KD training holds its training set on the device (GPU)
nnet_exp=exp         # where stages 8-10 put dnn, hdnn_ce, hdnn_kd[_untrans|_sp] (local/run_seeds.sh: per seed)
# Sequence training (stage 12) and speaker adaptation (stage 13).
seq_criteria=smbr    # sequence criteria (smbr mmi mpfe): teacher, student, student+KD,
                     # student gates only, each (sMBR: the paper's; "smbr mmi" adds MMI)
seq_nets="teacher student student_kd student_gates"  # which networks stage 12 sequence-trains
seq_epochs=2         # epochs (nnet1 uses 4 on AMI; 2 is the best sMBR setting on the embedded dev set)
seq_gates_lr=0.05    # SGD lr of the gates-only student (0.01, the all-parameter default, barely
                     # moved the gates: embedded dev 7.01 -> 6.83 sMBR; 0.05: 6.39)
seq_kd_q=0.5         # student seq+KD: L = (1-q) L_seq + q CE(teacher sequence-trained the same way)
                     # (several, e.g. "0.2 0.5 0.8": a sweep, one student each, to choose q on dev)
seq_decode_epochs=false  # also decode dev after every epoch but the last (a learning curve)
adapt_methods="teacher decode"   # HDNN gate adaptation targets (oracle: the supervised bound, an option)
adapt_epochs=3
untrans_minutes=0    # embedded: minutes of untranscribed speech (new speakers) for KD; 0 = none
kd_speed_perturb=    # stage 10: also a KD student on train + speed-perturbed copies of it that the
                     # teacher labels, e.g. "0.9 1.1" (Kaldi's factors); empty = none
skip_install=false

help_message="Usage: $0 [options]
  --stage N / --stop-stage M   run stages N..M (default 0..100)
  --corpus embedded|ami        corpus (default: embedded)
  --size default|tiny|double   embedded corpus size (default: default; double: twice its train hours)
  --untrans-minutes M          embedded: also M minutes of untranscribed speech (new speakers,
                               new sentences); stage 10 then trains exp/hdnn_kd_untrans on
                               train + untrans with the teacher's posteriors (default: 0)
  --kd-speed-perturb \"F1 F2\"    stage 10 also trains exp/hdnn_kd_sp: KD on train + copies of it
                               played F1, F2 times as fast (sox speed; e.g. \"0.9 1.1\"), every
                               copy's targets the teacher's posteriors (default: none)
  --seed N                     embedded corpus seed (default: 1)
  --ami-dir DIR --mic ihm|sdm1 AMI corpus copy and microphone
  --nj N                       parallel jobs (default: 2)
  --decode-nj N                jobs per dev/eval decode (default: --nj / 2, dev and eval decoding
                               at once on 2+ cores; --nj on one core)
  --lm-prune-threshold X       prune the 3-gram LM (default: none)
  --tri-leaves N --tri-gauss N triphone GMM size (default: 400 / 4000)
  --decode-opts \"OPTS\"         extra options of every dev/eval decode (e.g. \"--beam 8\")
  --nnet-lattice-beam X        lattice beam of the networks' decodes (default: 6; Kaldi's: 8)
  --teacher-config YAML        teacher model (default: conf/teacher_dnn.yaml for AMI,
                               conf/teacher_dnn_small.yaml for the embedded corpus)
  --student-config YAML        student model (default: conf/student_hdnn.yaml)
  --nnet-train-config YAML     optimiser / newbob settings (default: conf/train_nnet.yaml)
  --nnet-max-epochs N          cap the training epochs of every network
  --student-epochs N           the students' fixed number of epochs (default: 14; empty: the
                               train config's newbob stop)
  --student-keep-lr-epochs N   of which at the initial lr before halving (default: 6)
  --teacher-batch-size N       the teacher's mini-batch in frames (default: the train config's)
  --teacher-precision P        the teacher's matrix products in stage 8: float32, bfloat16,
                               or auto (bfloat16 where the device multiplies it natively: AMX
                               CPUs, CUDA) (default: pykd's, float32)
  --seq-teacher-precision P    the same in stage 12's sequence training (default: auto)
  --kd-p P --kd-temperature T  knowledge distillation (default: 1.0 / 1.0)
  --nnet-device auto|cpu|cuda  training device (default: auto)
  --nnet-procs N               DDP processes per teacher/student training run, one per GPU
                               (torchrun --standalone; default: 1)
  --nnet-data-on-device BOOL   hold the training set on the GPU, splice and shuffle there
                               (AMI on a GPU; default: false)
  --nnet-exp DIR               stages 8-10 write DIR/{dnn,hdnn_ce,hdnn_kd[_untrans|_sp]}, stage 12 reads
                               them and writes its networks there too (default: exp;
                               others are extra seeds for the tables over seeds, run_seeds.sh)
  --seq-criteria \"CRITS\"       sequence-training criteria of stage 12, of smbr mmi mpfe
                               (default: smbr; \"smbr mmi\" adds the MMI systems)
  --seq-nets \"...\"            networks stage 12 trains per criterion (default: all of
                               teacher student student_kd student_gates; student_kd needs teacher)
  --seq-epochs N --seq-kd-q Q  their epochs (default: 2) and KD weight of student seq+KD (0.5;
                               \"0.2 0.5 0.8\": a sweep, <nnet-exp>/hdnn_smbr_kd_q<Q> each)
  --seq-gates-lr LR            learning rate of the gates-only student (default: 0.05)
  --seq-decode-epochs B        also decode dev after each earlier epoch (default: false)
  --adapt-methods "..."        gate adaptation targets, of teacher decode oracle (default: teacher
                               decode; oracle, adapted to the reference alignment, is the bound)
Stages (tools/install.sh runs first unless --skip-install true):
        1 data dirs, 2 dictionary + lang, 3 LM + lang_test, 4 features (MFCC + CMVN for the GMM, fbank + CMVN for the networks),
        5 monophone GMM + graph + decode, 6 triphone GMM (tree) + graph + decode,
        7 triphone alignments of train (network targets) + GMM WER table,
        8 teacher DNN (CE) + decode, 9 teacher posteriors, then the CE and the KD student HDNN
           (trained at once on 2+ cores) + decode, 10 with --untrans-minutes: the KD student on
           train + untranscribed audio, with --kd-speed-perturb: on train + its speed-perturbed
           copies, each decoded, 11 WER table RESULTS.md,
        12 sequence training: unigram graph, denominator lattices, then per criterion
           (sMBR; --seq-criteria \"smbr mmi\" adds MMI) teacher, student, student+KD, student gates only, decoded
           (after every epoch with --seq-decode-epochs true),
        13 speaker adaptation of the KD student's gates (two protocols),
        14 the KD student exported (one ONNX file, fp32 + int8) and decoded streaming, RESULTS.md again"

cd "$(dirname "$0")"
. ./utils_kd/parse_options.sh   # our own; utils/ may not exist before path.sh runs
. ./steps_kd/lib.sh
. ./local/recipe_lib.sh
kd_check_options "$0" stage:int stop_stage:int 'corpus:embedded|ami' 'size:default|tiny|double' seed:int \
  'mic:ihm|sdm1' nj:pos_int lm_order:pos_int 'lm_prune_threshold:nonneg_float?' tri_leaves:pos_int \
  tri_gauss:pos_int 'decode_nj:pos_int?' nnet_lattice_beam:pos_float 'nnet_max_epochs:pos_int?' kd_p:nonneg_float \
  'student_epochs:pos_int?' student_keep_lr_epochs:nonneg_int \
  kd_temperature:pos_float 'nnet_device:auto|cpu|cuda' nnet_threads:nonneg_int nnet_procs:pos_int \
  nnet_data_on_device:bool 'teacher_batch_size:pos_int?' 'teacher_precision:float32|bfloat16|auto?' \
  'seq_teacher_precision:float32|bfloat16|auto?' \
  seq_epochs:pos_int seq_gates_lr:pos_float seq_decode_epochs:bool \
  adapt_epochs:pos_int skip_install:bool untrans_minutes:nonneg_float
kd_check_speed_factors "$0" kd-speed-perturb "$kd_speed_perturb"

if ! $skip_install; then tools/install.sh; fi
if [ -z "$decode_nj" ]; then  # dev and eval share --nj where they decode at once (for_sets)
  decode_nj=$nj
  if sets_at_once; then decode_nj=$(( nj >= 2 ? nj / 2 : 1 )); fi
fi
# the networks' dev/eval decodes: the recipe's lattice beam, then the user's --decode-opts (which win)
nnet_decode_opts="--lattice-beam $nnet_lattice_beam${decode_opts:+ $decode_opts}"
. ./path.sh
. ./cmd.sh

case "$corpus" in
  embedded) data=data ;;
  ami) [ -n "$ami_dir" ] || { echo "$0: --corpus ami needs --ami-dir" >&2; exit 1; }
       data=data/$mic ;;
  *) echo "$0: unknown --corpus '$corpus' (embedded|ami)" >&2; exit 1 ;;
esac
sets="train dev eval"
if [ -z "$teacher_config" ]; then
  case "$corpus" in
    ami) teacher_config=conf/teacher_dnn.yaml ;;
    *) teacher_config=conf/teacher_dnn_small.yaml ;;
  esac
fi
mkdir -p exp
times=exp/stage_times.txt

# begin_stage N "description": true when stage N is selected (and starts its clock); end_stage N
# "description" records its wall time in exp/stage_times.txt.
stage_start=0
run_start=$(date +%s)
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

# RESULTS.md from every system the stages declared finished (exp/systems.txt), with the picture
# of KD against CE over seeds when local/run_seeds.sh declared seeds.
write_results() {
  local/results.sh --systems exp/systems.txt --seed-plot exp/kd_seeds.png > RESULTS.md.tmp
  mv RESULTS.md.tmp RESULTS.md
  cat RESULTS.md
}

if begin_stage 1 "data directories"; then
  if [ "$corpus" = embedded ]; then
    untrans_opts=()
    if [ "$untrans_minutes" != 0 ]; then
      untrans_opts=(--untrans-minutes "$untrans_minutes")
    else  # the untranscribed speech belongs to the run that asked for it
      rm -rf data/untrans data/untrans_fbank data/train_plus_untrans_fbank
    fi
    local/embedded/make_corpus.sh --size "$size" --seed "$seed" --nj "$nj" "${untrans_opts[@]}" \
      "$corpus_dir" data
  else
    local/ami/ami_data_prep.sh --mic "$mic" ${ami_annotations:+--annotations "$ami_annotations"} \
      "$ami_dir" data
  fi
  for x in $sets; do utils/validate_data_dir.sh --no-feats "$data/$x"; done
  [ -d "$data/untrans" ] && utils/validate_data_dir.sh --no-feats --no-text "$data/untrans"
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

# features_set <set>: MFCC + per-speaker CMVN for the GMM systems, and 40-dim log-mel fbank +
# per-speaker CMVN for the networks in a parallel data dir <set>_fbank.
features_set() {
  local x=$1
  steps_kd/make_mfcc.sh --nj "$nj" --cmd "$train_cmd" --mfcc-config conf/mfcc.conf \
    "$data/$x" exp/make_mfcc/$x mfcc
  steps_kd/compute_cmvn_stats.sh "$data/$x" exp/make_mfcc/$x mfcc
  utils/validate_data_dir.sh "$data/$x"
  rm -rf "$data/${x}_fbank"  # a fresh copy: stage 1 may have changed the set's utterances
  utils/copy_data_dir.sh "$data/$x" "$data/${x}_fbank"
  rm -f "$data/${x}_fbank/feats.scp" "$data/${x}_fbank/cmvn.scp"
  steps_kd/make_fbank.sh --nj "$nj" --cmd "$train_cmd" --fbank-config conf/fbank.conf \
    "$data/${x}_fbank" exp/make_fbank/$x fbank
  steps_kd/compute_cmvn_stats.sh "$data/${x}_fbank" exp/make_fbank/$x fbank
  utils/validate_data_dir.sh "$data/${x}_fbank"
}

if begin_stage 4 "features"; then
  # the sets at once (for_sets): their short jobs and serial checks fill each other's idle cores
  # shellcheck disable=SC2086
  for_sets features_set $sets
  if [ -d "$data/untrans" ]; then  # untranscribed speech: fbank for the networks only
    rm -rf "$data/untrans_fbank"  # another --untrans-minutes: other utterances
    utils/copy_data_dir.sh "$data/untrans" "$data/untrans_fbank"
    rm -f "$data/untrans_fbank/feats.scp" "$data/untrans_fbank/cmvn.scp"
    steps_kd/make_fbank.sh --nj "$nj" --cmd "$train_cmd" --fbank-config conf/fbank.conf \
      "$data/untrans_fbank" exp/make_fbank/untrans fbank
    steps_kd/compute_cmvn_stats.sh "$data/untrans_fbank" exp/make_fbank/untrans fbank
    utils/validate_data_dir.sh --no-text "$data/untrans_fbank"
  fi
  end_stage 4 "features"
fi

# decode_sets <system-dir>: graph exists; decode dev and eval (at once), score with sclite.
decode_sets() {
  gmm_sys=$1
  for_sets decode_gmm_set dev eval
}
decode_gmm_set() {
  steps_kd/decode.sh --nj "$decode_nj" --cmd "$decode_cmd" $decode_opts "$gmm_sys/graph" \
    "$data/$1" "$gmm_sys/decode_$1"
  cat "$gmm_sys/decode_$1/scoring_kaldi/best_wer"
}


# wait_mono_decode: wait for stage 5's background decode (if one runs), exit 1 if it failed.
mono_decode_pid=
wait_mono_decode() {
  [ -n "$mono_decode_pid" ] || return 0
  wait "$mono_decode_pid" || { echo "$0: the monophone decode (stage 5) failed" >&2; exit 1; }
  mono_decode_pid=
}

if begin_stage 5 "monophone GMM"; then
  train_once exp/mono final.mdl steps_kd/train_mono.sh --nj "$nj" --cmd "$train_cmd" "$data/train" \
    data/lang exp/mono
  utils/mkgraph.sh data/lang_test exp/mono exp/mono/graph
  if [ "$stop_stage" -ge 6 ] && sets_at_once; then
    # Kaldi habit: the decode runs in the background while stage 6 (which runs next: the stages
    # are a range) trains the triphones, whose single-process GMM updates leave a core idle;
    # stage 6 waits for it before its results.
    ( decode_sets exp/mono; declare_system gmm exp/mono ) &  # (a subshell: set -e holds)
    mono_decode_pid=$!
  else
    decode_sets exp/mono
    declare_system gmm exp/mono
  fi
  end_stage 5 "monophone GMM"
fi

if begin_stage 6 "triphone GMM"; then
  steps_kd/align_si.sh --nj "$nj" --cmd "$train_cmd" "$data/train" data/lang exp/mono exp/mono_ali
  train_once exp/tri1 final.mdl steps_kd/train_deltas.sh --cmd "$train_cmd" \
    "$tri_leaves" "$tri_gauss" "$data/train" data/lang exp/mono_ali exp/tri1
  utils/mkgraph.sh data/lang_test exp/tri1 exp/tri1/graph
  decode_sets exp/tri1
  wait_mono_decode  # (exp/systems.txt keeps mono before tri1)
  declare_system gmm exp/tri1
  end_stage 6 "triphone GMM"
fi

if begin_stage 7 "triphone alignments and GMM results"; then
  steps_kd/align_si.sh --nj "$nj" --cmd "$train_cmd" "$data/train" data/lang exp/tri1 exp/tri1_ali
  write_results
  end_stage 7 "triphone alignments and GMM results"
fi

# train_and_decode <out-dir> <model-config> [train_nnet.sh options]: a network on the fbank
# features with the tri1 alignments as targets, then decode dev and eval through tri1's graph.
train_and_decode() {
  local dir=$1 model_config=$2
  shift 2
  local opts=(--cmd "$train_cmd" --model-config "$model_config" --train-config "$nnet_train_config"
              --device "$nnet_device" --num-threads "$nnet_threads" --seed "$seed"
              --num-procs "$nnet_procs")
  [ -n "$nnet_max_epochs" ] && opts+=(--max-epochs "$nnet_max_epochs")
  [ "$nnet_data_on_device" = true ] && opts+=(--data-on-device true)
  train_once "$dir" final.pt steps_kd/train_nnet.sh "${opts[@]}" "$@" "${nnet_data:-$data/train_fbank}" \
    exp/tri1_ali exp/tri1 "$dir"
  decode_opts=$nnet_decode_opts decode_dev_eval "$dir" "$dir/decode_SET"
  # (networks trained at once leave it to their caller: exp/systems.txt has one writer at a time
  # and keeps the stages' order)
  [ "${nnet_declare:-true}" = true ] && declare_nnet "$dir"
  return 0
}

# declare_nnet <dir>: the main systems are rows of the network table; extra seeds only feed the
# table over seeds.
declare_nnet() {
  [ "$nnet_exp" = exp ] && declare_system nnet "$1"
  return 0
}

if begin_stage 8 "teacher DNN (CE)"; then
  train_and_decode "$nnet_exp/dnn" "$teacher_config" \
    ${teacher_batch_size:+--batch-size "$teacher_batch_size"} \
    ${teacher_precision:+--precision "$teacher_precision"}
  end_stage 8 "teacher DNN (CE)"
fi

# Stage 9: the two students, trained at the same time where the machine has two or more cores
# (each with half of them): a 0.3M-parameter student uses a second thread poorly (~25k frames/s
# on one, ~30k on two), so the pair takes little more than one. Each is then decoded.
train_student() {
  case $1 in
    ce) nnet_threads=$student_threads nnet_declare=false train_and_decode "$nnet_exp/hdnn_ce" \
          "$student_config" "${student_schedule[@]}" ;;
    kd) nnet_threads=$student_threads nnet_declare=false train_and_decode "$nnet_exp/hdnn_kd" \
          "$student_config" "${student_schedule[@]}" --teacher-posts "$teacher_dir/posts_train" \
          --kd-p "$kd_p" --kd-temperature "$kd_temperature" ;;
  esac
}
# the students' schedule (train_nnet.sh options): --student-epochs, capped by --nnet-max-epochs
student_schedule=()
if [ -n "$student_epochs" ]; then
  capped=$student_epochs
  if [ -n "$nnet_max_epochs" ] && [ "$nnet_max_epochs" -lt "$capped" ]; then capped=$nnet_max_epochs; fi
  student_schedule=(--min-epochs "$capped" --max-epochs "$capped" --keep-lr-epochs "$student_keep_lr_epochs")
fi

if begin_stage 9 "students HDNN (CE and KD)"; then
  teacher_dir=$nnet_exp/dnn
  [ -f "$teacher_dir/final.pt" ] || { echo "$0: stage 9 needs the teacher $teacher_dir/final.pt (stage 8)" >&2; exit 1; }
  # The teacher's posteriors over the training data, once (top 20 per frame): the student reads
  # them like alignments instead of running the teacher on every batch. Where stage 12 is to
  # sequence-train the teacher, the same pass writes its log-likelihoods over train for the
  # denominator lattices (frames x pdfs x 4 bytes, 0.5 GB here; local/run_seq.sh reads them,
  # then removes them).
  loglikes_opt=()
  if [[ " $seq_nets " == *" teacher "* ]]; then
    loglikes_opt=(--loglikes-dir "$teacher_dir/loglikes_train")
  fi
  steps_kd/make_teacher_posts.sh --cmd "$train_cmd" --device "$nnet_device" \
    --num-threads "$nnet_threads" "${loglikes_opt[@]}" "$teacher_dir/final.pt" "$data/train_fbank" \
    "$teacher_dir/posts_train"
  student_threads=$nnet_threads
  if [ "$nnet_threads" = 0 ] && sets_at_once; then student_threads=$(( $(num_cores) / 2 )); fi
  for_sets train_student ce kd
  declare_nnet "$nnet_exp/hdnn_ce"
  declare_nnet "$nnet_exp/hdnn_kd"
  kd_systems=("$teacher_dir" "$nnet_exp/hdnn_ce" "$nnet_exp/hdnn_kd")
  [ "$nnet_exp" = exp ] && declare_system kd-pair "${kd_systems[@]}"
  declare_system kd-seed "$seed" "${kd_systems[@]}"
  end_stage 9 "students HDNN (CE and KD)"
fi

# kd_on_extra_audio <name> <extra-fbank-dir> <declared kind>: the KD student <nnet_exp>/hdnn_kd_<name>
# on train + extra audio, all of it labelled by the teacher (its top-k posteriors over both, once);
# the extra utterances have no alignment and train from the teacher's posteriors alone (no CV,
# no priors). Decoded, and declared for the table over seeds.
kd_on_extra_audio() {
  local name=$1 extra=$2 kind=$3
  utils/combine_data.sh "$data/train_plus_${name}_fbank" "$data/train_fbank" "$extra"
  steps_kd/make_teacher_posts.sh --cmd "$train_cmd" --device "$nnet_device" \
    --num-threads "$nnet_threads" "$teacher_dir/final.pt" "$data/train_plus_${name}_fbank" \
    "$teacher_dir/posts_train_plus_$name"
  nnet_data=$data/train_plus_${name}_fbank train_and_decode "$nnet_exp/hdnn_kd_$name" \
    "$student_config" "${student_schedule[@]}" --teacher-posts "$teacher_dir/posts_train_plus_$name" --kd-p "$kd_p" \
    --kd-temperature "$kd_temperature"
  declare_system "$kind" "$seed" "$teacher_dir" "$nnet_exp/hdnn_ce" "$nnet_exp/hdnn_kd_$name"
}

if begin_stage 10 "students HDNN (KD from extra audio)"; then
  teacher_dir=$nnet_exp/dnn
  has_untrans=false
  [ -f "$data/untrans_fbank/feats.scp" ] && has_untrans=true
  if $has_untrans || [ -n "$kd_speed_perturb" ]; then
    [ -f "$teacher_dir/final.pt" ] || { echo "$0: stage 10 needs the teacher $teacher_dir/final.pt (stage 8)" >&2; exit 1; }
  else
    echo "$0: no extra audio for KD (run.sh --untrans-minutes M or --kd-speed-perturb \"0.9 1.1\"): nothing to do"
  fi
  # KD from untranscribed audio (stage 1's new speakers and sentences)
  if $has_untrans; then kd_on_extra_audio untrans "$data/untrans_fbank" kd-untrans-seed; fi
  if [ -n "$kd_speed_perturb" ]; then
    # KD from speed-perturbed copies of the transcribed audio: no new audio, the teacher labels
    # copies it has not seen; those of the CV speakers are not made (the CV split is the same
    # for every network and seed)
    local/make_speed_perturbed.sh --factors "$kd_speed_perturb" --nj "$nj" --cmd "$train_cmd" \
      "$data/train" "$teacher_dir/cv_utts" "$data/train_sp_fbank"
    kd_on_extra_audio sp "$data/train_sp_fbank" kd-sp-seed
  fi
  end_stage 10 "students HDNN (KD from extra audio)"
fi

if begin_stage 11 "WER table"; then
  write_results
  end_stage 11 "WER table"
fi

kd_check_seq_choice "$0" "$seq_criteria" "$seq_nets"
if begin_stage 12 "sequence training ($seq_criteria)"; then
  local/run_seq.sh --nj "$nj" --decode-nj "$decode_nj" --train-cmd "$train_cmd" \
    --decode-cmd "$decode_cmd" --decode-opts "$nnet_decode_opts" --seed "$seed" \
    --num-threads "$nnet_threads" --criteria "$seq_criteria" --nets "$seq_nets" \
    --epochs "$seq_epochs" --kd-q "$seq_kd_q" --gates-lr "$seq_gates_lr" --nnet-exp "$nnet_exp" \
    --teacher-precision "$seq_teacher_precision" --decode-epochs "$seq_decode_epochs" "$data"
  end_stage 12 "sequence training ($seq_criteria)"
fi

# Speaker adaptation of the KD student's shared gates (local/run_adapt.sh says how).
base=exp/hdnn_kd
if begin_stage 13 "speaker adaptation of the student's gates"; then
  local/run_adapt.sh --nj "$nj" --decode-nj "$decode_nj" --train-cmd "$train_cmd" \
    --decode-cmd "$decode_cmd" --decode-opts "$nnet_decode_opts" --methods "$adapt_methods" \
    --epochs "$adapt_epochs" --base $base "$data"
  end_stage 13 "speaker adaptation of the student's gates"
fi

# The KD student as one file for embedded devices (local/run_deploy.sh says what it holds).
if begin_stage 14 "deploy the KD student (ONNX fp32 + int8, streaming decode)"; then
  local/run_deploy.sh --decode-nj "$decode_nj" --train-cmd "$train_cmd" \
    --decode-cmd "$decode_cmd" --decode-opts "$nnet_decode_opts" --base $base "$data"
  end_stage 14 "deploy the KD student"
fi

if [ "$stage" -le 14 ] && [ "$stop_stage" -ge 12 ]; then
  write_results
fi

total=$(( $(date +%s) - run_start ))
printf '%s: done (stages %s..%s) in %ds (%d:%02d:%02d); stage times in %s\n' "$0" "$stage" \
  "$stop_stage" "$total" $((total / 3600)) $((total % 3600 / 60)) $((total % 60)) "$times"
