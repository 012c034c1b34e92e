"""The systems a recipe declares for its results report (``exp/systems.txt``).

Each stage of ``run.sh`` declares what it has finished (``declare_system`` in
``local/recipe_lib.sh``), one line per system, so that the report needs no knowledge of the
recipe's directory names::

    gmm exp/mono                            # a GMM system: a row of the GMM table
    nnet exp/dnn                            # a network: a row of the network table
    seq exp/dnn_smbr                        # a sequence-trained network: a row + its epochs
    kd-pair exp/dnn exp/hdnn_ce exp/hdnn_kd # teacher, CE student, KD student: the KD paragraph
    kd-seed 2 exp/seeds/seed2/dnn ...       # the same three of one seed: the table over seeds
    kd-untrans-seed 2 T CE KD_UNTRANS       # the same with the KD student that also learnt from
                                            # untranscribed audio: its table over seeds
    kd-sp-seed 2 T CE KD_SP                 # ... from speed-perturbed copies of train: its table
    adapt exp/hdnn_kd teacher decode        # a network's speaker adaptation runs (methods)
    deploy exp/hdnn_kd/export               # exported models (fp32, int8) and their decodes

Blank lines and ``#`` comments are ignored; a directory listed twice counts once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pykd.train.options import ADAPT_METHODS


class SystemsFileError(ValueError):
    """A line of a systems file that cannot be used."""


@dataclass
class Systems:
    """What the report tabulates."""

    gmm: list[str] = field(default_factory=list)
    nnet: list[str] = field(default_factory=list)
    epochs: list[str] = field(default_factory=list)
    kd_pair: list[str] | None = None
    kd_seeds: dict[str, list[str]] = field(default_factory=dict)  # seed -> teacher, CE, KD
    # seed -> teacher, CE, KD student trained on transcribed + untranscribed audio
    kd_untrans_seeds: dict[str, list[str]] = field(default_factory=dict)
    # seed -> teacher, CE, KD student trained on train + its speed-perturbed copies
    kd_sp_seeds: dict[str, list[str]] = field(default_factory=dict)
    adapt: str | None = None
    adapt_methods: list[str] = field(default_factory=lambda: list(ADAPT_METHODS))
    deploy: list[str] = field(default_factory=list)

    def add_line(self, kind: str, args: list[str], where: str) -> None:
        """Add one declaration (``kind`` and its arguments); ``where`` names it in errors."""
        one_dir = {
            "gmm": [self.gmm], "nnet": [self.nnet], "seq": [self.nnet, self.epochs],
            "deploy": [self.deploy],
        }  # fmt: skip
        if kind in one_dir:
            if len(args) != 1:
                raise SystemsFileError(f"{where}: '{kind}' takes one directory, got {args}")
            for table in one_dir[kind]:
                if args[0] not in table:
                    table.append(args[0])
        elif kind == "kd-pair":
            if len(args) != 3:
                raise SystemsFileError(
                    f"{where}: 'kd-pair' takes TEACHER STUDENT_CE STUDENT_KD, got {args}"
                )
            self.kd_pair = args
        elif kind in ("kd-seed", "kd-untrans-seed", "kd-sp-seed"):
            if len(args) != 4:
                raise SystemsFileError(
                    f"{where}: '{kind}' takes SEED TEACHER STUDENT_CE STUDENT_KD, got {args}"
                )
            tables = {
                "kd-seed": self.kd_seeds,
                "kd-untrans-seed": self.kd_untrans_seeds,
                "kd-sp-seed": self.kd_sp_seeds,
            }
            tables[kind][args[0]] = args[1:]
        elif kind == "adapt":
            bad = [m for m in args[1:] if m not in ADAPT_METHODS]
            if not args or bad:
                raise SystemsFileError(
                    f"{where}: 'adapt' takes a directory and methods of "
                    f"{' '.join(ADAPT_METHODS)}, got {args}"
                )
            self.adapt = args[0]
            self.adapt_methods = args[1:] or list(ADAPT_METHODS)
        else:
            raise SystemsFileError(
                f"{where}: unknown system kind '{kind}' "
                "(gmm, nnet, seq, kd-pair, kd-seed, kd-untrans-seed, kd-sp-seed, adapt, deploy)"
            )

    def empty(self) -> bool:
        return not (
            self.gmm
            or self.nnet
            or self.epochs
            or self.kd_pair
            or self.kd_seeds
            or self.kd_untrans_seeds
            or self.kd_sp_seeds
            or self.adapt
            or self.deploy
        )


def read_systems(path: str | os.PathLike, into: Systems | None = None) -> Systems:
    """The declarations of ``path`` (added to ``into`` when given)."""
    systems = into if into is not None else Systems()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no systems file {p} (run.sh's stages write it)")
    for n, line in enumerate(p.read_text().splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if words:
            systems.add_line(words[0], words[1:], f"{p}:{n}")
    return systems
