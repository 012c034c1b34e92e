#!/usr/bin/env python3
# pykd's utt2spk_to_spk2utt.pl: Python 3 (stdlib-only) version of Kaldi's script of the same name
# and interface; written from scratch for pykd.
"""Usage: utt2spk_to_spk2utt.pl [utt2spk ...] > spk2utt

Reads "utt spk" lines (files or stdin) and writes "spk utt1 utt2 ..." lines, speakers in order of
first appearance, utterances in input order."""

import sys


def main(argv: list[str]) -> int:
    if any(a.startswith("-") and a != "-" for a in argv):
        print(__doc__, file=sys.stderr)
        return 1
    spk2utts: dict[str, list[str]] = {}
    for name in argv or ["-"]:
        handle = sys.stdin if name == "-" else open(name, encoding="utf-8")
        with handle:
            for lineno, line in enumerate(handle, 1):
                fields = line.split()
                if len(fields) != 2:
                    print(
                        f"utt2spk_to_spk2utt.pl: bad line {name}:{lineno}: {line.rstrip()}",
                        file=sys.stderr,
                    )
                    return 1
                spk2utts.setdefault(fields[1], []).append(fields[0])
    out = sys.stdout
    for spk, utts in spk2utts.items():
        out.write(spk + " " + " ".join(utts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
