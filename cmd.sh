# Job runners, Kaldi convention: every parallel step runs "$train_cmd JOB=1:N log/x.JOB.log cmd ...".
# run.pl runs the jobs on this machine. On a cluster, with Kaldi installed, use Kaldi's
# queue.pl (SGE) or slurm.pl and its conf/queue.conf, e.g.:
#   export train_cmd="queue.pl --mem 4G"; export decode_cmd="queue.pl --mem 4G"
#   export train_cmd="slurm.pl --mem 4G"
export train_cmd="run.pl"
export decode_cmd="run.pl"
# Cap on concurrently running jobs for run.pl (pykd's run.pl and Kaldi's both accept --max-jobs-run).
export cpu_cmd="run.pl"
