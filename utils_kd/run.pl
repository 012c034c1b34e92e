#!/usr/bin/env python3
# pykd's run.pl: a Python 3 (stdlib-only) re-implementation of the interface of Kaldi's local job
# runner utils/run.pl (the name keeps .pl so recipes work with Kaldi's utils/ or ours).
# Written from scratch for pykd.
"""Usage: run.pl [options] [JOB=1:N] <log-file> <command...>

Runs <command> through bash with stdout and stderr appended to <log-file>. With a job range
(any variable name, e.g. JOB=1:4 or SPLIT=2:3 or JOB=3), the variable's name is replaced by the
job number in the log file name and in the command, and the jobs run in parallel.
The log file gets a header ("# <command>", "# Started at <date>", "#") and a footer
("# Accounting: time=<s> threads=1", "# Ended (code <rc>) at <date>, elapsed time <s> seconds").
Exit status 1 if any job failed ("run.pl: K / N failed, log is in <log-file with * for JOB>"
on stderr). Options and the job range may come in either order.

Options:
  --max-jobs-run N (or -tc N)  run at most N jobs at the same time (default: all at once;
                     Kaldi's run.pl defaults to the number of CPUs)
  --mem X, --num-threads N, --gpu N, --config F, -V, ...  accepted and ignored (queue.pl options)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

_procs: set[subprocess.Popen] = set()
_lock = threading.Lock()
_stopping = threading.Event()


def die(msg: str) -> None:
    print(f"run.pl: {msg}", file=sys.stderr)
    sys.exit(1)


def usage() -> None:
    print(__doc__, file=sys.stderr)
    sys.exit(1)


def quote_arg(arg: str) -> str:
    """Join arguments like Kaldi: a word without whitespace goes verbatim (so a '|' argument is a
    pipe), one with whitespace is double-quoted, or single-quoted if it contains a double quote."""
    if arg and not re.search(r"\s", arg):
        return arg
    if '"' in arg:
        return "'" + arg + "'"
    return '"' + arg + '"'


def now() -> str:
    return time.strftime("%a %b %e %H:%M:%S %Z %Y")


def run_job(logfile: str, cmd: str) -> int:
    if _stopping.is_set():
        return 1
    os.makedirs(os.path.dirname(logfile) or ".", exist_ok=True)
    with open(logfile, "w", encoding="utf-8") as log:
        log.write(f"# {cmd}\n# Started at {now()}\n#\n")
        log.flush()
        start = time.time()
        proc = subprocess.Popen(
            ["bash", "-c", cmd], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        with _lock:
            _procs.add(proc)
        rc = proc.wait()
        with _lock:
            _procs.discard(proc)
        elapsed = int(round(time.time() - start))
        code = f"code {rc}" if rc >= 0 else f"code 0; signal {-rc}"
        log.write(f"# Accounting: time={elapsed} threads=1\n")
        log.write(f"# Ended ({code}) at {now()}, elapsed time {elapsed} seconds\n")
    return rc


def _on_signal(signum: int, _frame: object) -> None:
    _stopping.set()
    with _lock:
        for proc in list(_procs):
            try:
                proc.send_signal(signum)
            except ProcessLookupError:
                pass
    sys.exit(128 + signum)


def parse_options(args: list[str]) -> tuple[int, str, int, int]:
    """Consume leading options and the job range (they may be interleaved, as in Kaldi).

    Returns (max_jobs, job variable or "", first job, last job).
    """
    max_jobs, jobvar, start, end = -1, "", 1, 1
    for _ in range(2):
        while len(args) >= 2 and args[0].startswith("-"):
            opt = args.pop(0)
            name, eq, value = opt.partition("=")
            if name == "-V":  # qsub option without a value
                continue
            if not eq:
                value = args.pop(0)
            if name in ("--max-jobs-run", "-tc"):
                if not value.isdigit() or int(value) < 1:
                    die(f"invalid option --max-jobs-run '{value}' (expects a positive integer)")
                max_jobs = int(value)
            elif name == "-pe" and args:  # "-pe smp 5": two values
                args.pop(0)
            # every other option (--mem, --num-threads, --gpu, --config, ...) is for queue.pl
        if args:
            m = re.fullmatch(r"([A-Za-z_]\w*)=(\d+)(?::(\d+))?", args[0])
            if m:
                args.pop(0)
                jobvar, start = m.group(1), int(m.group(2))
                end = int(m.group(3)) if m.group(3) is not None else start
                if start < 1 or end < start:
                    die(f"invalid job range {m.group(0)} (need 1 <= start <= end)")
    return max_jobs, jobvar, start, end


def main(argv: list[str]) -> int:
    args = list(argv)
    max_jobs, jobvar, start, end = parse_options(args)
    if len(args) < 2:
        usage()
    logfile, words = args[0], args[1:]
    if jobvar and end > start and jobvar not in logfile:
        die(
            f"you are trying to run a parallel job but you are putting the output into just one "
            f"log file ({logfile})"
        )
    cmd = " ".join(quote_arg(w) for w in words)
    jobs = []
    for job in range(start, end + 1):
        if jobvar:
            jobs.append((logfile.replace(jobvar, str(job)), cmd.replace(jobvar, str(job))))
        else:
            jobs.append((logfile, cmd))
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    workers = len(jobs) if max_jobs < 0 else min(max_jobs, len(jobs))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        codes = list(pool.map(lambda j: run_job(*j), jobs))
    failed = sum(1 for c in codes if c != 0)
    if failed:
        if len(jobs) == 1:
            print(f"run.pl: job failed, log is in {jobs[0][0]}", file=sys.stderr)
        else:
            pattern = logfile.replace(jobvar, "*") if jobvar else logfile
            print(f"run.pl: {failed} / {len(jobs)} failed, log is in {pattern}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
