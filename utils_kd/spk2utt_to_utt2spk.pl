#!/usr/bin/env python3
# pykd's spk2utt_to_utt2spk.pl: Python 3 (stdlib-only) version of Kaldi's script of the same name
# and interface; written from scratch for pykd.
"""Usage: spk2utt_to_utt2spk.pl [spk2utt ...] > utt2spk

Reads "spk utt1 utt2 ..." lines (files or stdin) and writes one "utt spk" line per utterance,
in input order."""

import sys


def main(argv: list[str]) -> int:
    if any(a.startswith("-") and a != "-" for a in argv):
        print(__doc__, file=sys.stderr)
        return 1
    for name in argv or ["-"]:
        handle = sys.stdin if name == "-" else open(name, encoding="utf-8")
        with handle:
            for lineno, line in enumerate(handle, 1):
                fields = line.split()
                if len(fields) < 2:
                    print(
                        f"spk2utt_to_utt2spk.pl: bad line {name}:{lineno}: {line.rstrip()}",
                        file=sys.stderr,
                    )
                    return 1
                for utt in fields[1:]:
                    sys.stdout.write(f"{utt} {fields[0]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
