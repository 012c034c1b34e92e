#!/usr/bin/env bash
# Kaldi-style feature extraction (interface of Kaldi's steps/make_fbank.sh / make_mfcc.sh).
# steps_kd/make_mfcc.sh runs this script with PYKD_FEAT_KIND=mfcc.
set -euo pipefail

kind=${PYKD_FEAT_KIND:-fbank}
case "$kind" in
  fbank) fbank_config=conf/fbank.conf ;;
  mfcc) mfcc_config=conf/mfcc.conf ;;
  *) echo "$0: PYKD_FEAT_KIND must be fbank or mfcc, not '$kind'" >&2; exit 1 ;;
esac
script=make_$kind.sh
me=$(dirname "$0")/$script
nj=4
cmd=run.pl
compress=true
write_utt2num_frames=true

help_message="Usage: steps_kd/$script [options] <data-dir> [<log-dir> [<$kind-dir>]]
 e.g.: steps_kd/$script --nj 8 data/train exp/make_$kind/train $kind
Computes $kind features of <data-dir>/wav.scp (+ segments) in <nj> parallel jobs, one per piece
of utils/split_data.sh <data-dir> <nj>, writing <$kind-dir>/raw_${kind}_<name>.JOB.{ark,scp}
(<name> = basename of <data-dir>), then <data-dir>/feats.scp and utt2num_frames (sorted).
Unreadable recordings/segments are skipped and reported; fails if fewer than 95% succeeded.
Defaults: <log-dir> = <data-dir>/log, <$kind-dir> = <data-dir>/data.
With PYKD_KALDI=1 (path.sh, real Kaldi present) Kaldi's binaries do the work.
Options:
  --nj <n>                     # number of parallel jobs (default: $nj; at most one per speaker)
  --cmd <run.pl|queue.pl ...>  # job runner (default: $cmd)
  --$kind-config <file>        # Kaldi option file (default: conf/$kind.conf)
  --compress <true|false>      # Kaldi-compress the features (default: $compress)
  --write-utt2num-frames <true|false>  # write <data-dir>/utt2num_frames (default: $write_utt2num_frames)"

[ -f ./path.sh ] && . ./path.sh
. utils/parse_options.sh
. steps_kd/lib.sh
kd_check_options "$0" nj:pos_int compress:bool write_utt2num_frames:bool

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
data=$1
logdir=${2:-$data/log}
featdir=${3:-$data/data}
config_var=${kind}_config
config=${!config_var}
name=$(basename "$data")

kd_require_files "$me" "$data/wav.scp" "$data/utt2spk" "$config"
case "$compress" in true|false) ;; *) echo "$me: --compress must be true or false" >&2; exit 1 ;; esac

# Outputs of an earlier run describe the old features: keep them aside (as Kaldi does).
for f in feats.scp utt2num_frames; do
  if [ -f "$data/$f" ]; then
    mkdir -p "$data/.backup"
    echo "$me: moving $data/$f to $data/.backup"
    mv "$data/$f" "$data/.backup/"
  fi
done
utils/validate_data_dir.sh --no-text --no-feats "$data"

mkdir -p "$logdir" "$featdir"
featdir=$(cd "$featdir" && pwd)  # feats.scp holds absolute paths, as in Kaldi

# split_data.sh keeps each speaker in one piece, so there are at most #speakers pieces.
nj=$(kd_num_jobs "$me" "$nj" "$data")
utils/split_data.sh "$data" "$nj"
sdata=$data/split$nj

echo "$me: computing $kind features for $name ($nj jobs, config $config, backend $([ "${PYKD_KALDI:-0}" = 1 ] && echo kaldi || echo pykd))"
out=$featdir/raw_${kind}_$name
if [ "${PYKD_KALDI:-0}" = 1 ]; then
  nf_opt=
  $write_utt2num_frames && nf_opt="--write-num-frames=ark,t:$logdir/utt2num_frames_$name.JOB"
  if [ -f "$data/segments" ]; then
    $cmd JOB=1:"$nj" "$logdir/make_${kind}_$name.JOB.log" \
      extract-segments "scp,p:$sdata/JOB/wav.scp" "$sdata/JOB/segments" ark:- \| \
      compute-$kind-feats --verbose=2 "--config=$config" ark:- ark:- \| \
      copy-feats "--compress=$compress" $nf_opt ark:- "ark,scp:$out.JOB.ark,$out.JOB.scp"
  else
    $cmd JOB=1:"$nj" "$logdir/make_${kind}_$name.JOB.log" \
      compute-$kind-feats --verbose=2 "--config=$config" "scp,p:$sdata/JOB/wav.scp" ark:- \| \
      copy-feats "--compress=$compress" $nf_opt ark:- "ark,scp:$out.JOB.ark,$out.JOB.scp"
  fi
else
  compress_opt=
  $compress && compress_opt=--compress
  $cmd JOB=1:"$nj" "$logdir/make_${kind}_$name.JOB.log" \
    pykd compute-feats --kind "$kind" --config "$config" $compress_opt \
      --utt2num-frames "$logdir/utt2num_frames_$name.JOB" \
      "$sdata/JOB" "$out.JOB.ark" "$out.JOB.scp"
fi

# Merge the pieces (sorted, written through a temp file so a failure leaves no partial file).
for n in $(seq "$nj"); do cat "$out.$n.scp"; done | LC_ALL=C sort > "$data/feats.scp.tmp"
mv "$data/feats.scp.tmp" "$data/feats.scp"
if $write_utt2num_frames; then
  for n in $(seq "$nj"); do cat "$logdir/utt2num_frames_$name.$n"; done \
    | LC_ALL=C sort > "$data/utt2num_frames.tmp"
  mv "$data/utt2num_frames.tmp" "$data/utt2num_frames"
  rm -f "$logdir"/utt2num_frames_"$name".*
fi

nf=$(wc -l < "$data/feats.scp")
nu=$(wc -l < "$data/utt2spk")
if [ "$nf" -ne "$nu" ]; then
  echo "$me: $((nu - nf)) of $nu utterances failed (no features); consider utils/fix_data_dir.sh $data"
  grep -h -i -E "skipping|WARNING" "$logdir"/make_"${kind}"_"$name".*.log | head -n 10 || true
fi
if [ "$nf" -lt $((nu - nu / 20)) ]; then
  echo "$me: less than 95% of the features were generated ($nf of $nu); probably a serious error" >&2
  exit 1
fi
echo "$me: succeeded creating $kind features for $name ($nf utterances)"
