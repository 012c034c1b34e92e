"""A miniature AMI tree (audio + NXT annotations in the real formats) for the AMI tests.

Meetings: ES2002a (train), ES2011a (dev), EN2002a (eval), each with two headsets and the first
array mic (10 s of 16 kHz noise each), plus IB4005 (annotations only; in no split). In ES2002a
and EN2002a agent A wears Headset-1 and agent B Headset-0, and meetings.xml lists B first, so
mapping agents to headsets by order would be wrong.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import soundfile

ANNOTATIONS = "ami_public_manual_1.6.2"
SAMPLE_RATE = 16000
AUDIO_SECONDS = 10.0

# A words-file element: (tag, text, start, end, extra attributes).
W = tuple[str, str, float, float, dict[str, str]]


def w(text: str, start: float, end: float, **attrs: str) -> W:
    return ("w", text, start, end, attrs)


def punc(text: str, time: float) -> W:
    return ("w", text, time, time, {"punc": "true"})


def other(tag: str, start: float, end: float, **attrs: str) -> W:
    return (tag, "", start, end, attrs)


# meeting -> list of (agent, global_name, channel, words, segments); a segment is
# (transcriber_start, transcriber_end, [(first word index, last word index or None), ...]).
MEETINGS: dict[str, list[tuple[str, str, int, list[W], list]]] = {
    "ES2002a": [
        (
            "B",
            "MEE006",
            0,
            [
                w("Right", 5.00, 5.30),
                punc(",", 5.30),
                w("let's", 5.40, 5.60),
                w("start", 5.60, 5.90),
                w("the", 5.90, 6.00),
                w("meeting", 6.00, 6.40),
                punc(".", 6.40),
                w("We", 6.80, 6.90),
                w("have", 6.90, 7.10),
                w("a", 7.10, 7.15),
                w("lot", 7.15, 7.40),
                w("to", 7.40, 7.50),
                w("cover", 7.50, 7.80),
                punc(",", 7.80),
                w("today", 8.20, 8.60),
            ],
            [(4.95, 8.70, [(0, 14)])],
        ),
        (
            "A",
            "FEE005",
            1,
            [
                w("Okay", 0.50, 0.90),
                punc(".", 0.90),
                other("vocalsound", 1.00, 1.50, type="laugh"),
                w("so", 1.60, 1.80),
                w("we're", 1.80, 2.10),
                other("disfmarker", 2.10, 2.10),
                w("th", 2.10, 2.20, trunc="true"),
                w("the", 2.20, 2.30),
                w("X_M_L", 2.30, 2.90),
                w("mm-hmm", 3.00, 3.30),
                punc("?", 3.30),
                other("gap", 3.40, 3.80),
                other("vocalsound", 4.00, 4.20, type="cough"),
            ],
            [(0.45, 0.95, [(0, 1)]), (1.55, 3.35, [(3, 10)]), (4.00, 4.20, [(12, None)])],
        ),
    ],
    "ES2011a": [
        (
            "A",
            "FEO023",
            0,
            [
                w("Hello", 1.00, 1.40),
                w("ev", 1.50, 1.60, trunc="true"),
                w("everyone", 1.60, 2.00),
                punc("!", 2.00),
                w("Uh-huh", 2.60, 2.90),
                w("yeah", 2.90, 3.10),
                w("skipped", 3.20, 3.30),
                w("Anti-trust", 3.30, 3.90),
            ],
            [(0.90, 2.10, [(0, 3)]), (2.50, 4.00, [(4, 5), (7, None)])],
        ),
        ("B", "MEO024", 1, [w("Cool", 5.00, 5.50)], [(4.90, 5.60, [(0, None)])]),
    ],
    "EN2002a": [
        (
            "B",
            "MEE071",
            0,
            [w("Yeah", 2.00, 2.40), w("bye", 9.60, 10.20)],
            [(1.90, 2.50, [(0, None)]), (9.50, 10.40, [(1, None)])],
        ),
        (
            "A",
            "FEO070",
            1,
            [w("I", 1.00, 1.10), w("don't", 1.10, 1.40), w("know", 1.40, 1.80)],
            [(0.95, 1.85, [(0, 2)])],
        ),
    ],
    "IB4005": [("A", "MIE080", 0, [w("Hi", 1.00, 1.20)], [(0.90, 1.30, [(0, None)])])],
}

AUDIO_MEETINGS = ("ES2002a", "ES2011a", "EN2002a")


def _fmt(t: float) -> str:
    return f"{t:.2f}".rstrip("0").rstrip(".") if t != int(t) else f"{t:.1f}"


def words_xml(meeting: str, agent: str, words: list[W]) -> str:
    lines = [
        '<?xml version="1.0" encoding="ISO-8859-1" standalone="yes"?>',
        f'<nite:root nite:id="{meeting}.{agent}.words" xmlns:nite="http://nite.sourceforge.net/">',
    ]
    for i, (tag, text, start, end, attrs) in enumerate(words):
        extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
        head = (
            f'<{tag} nite:id="{meeting}.{agent}.words{i}" starttime="{_fmt(start)}" '
            f'endtime="{_fmt(end)}"{extra}'
        )
        lines.append(f"   {head}>{text}</{tag}>" if tag == "w" else f"   {head}/>")
    lines.append("</nite:root>")
    return "\n".join(lines) + "\n"


def segments_xml(meeting: str, agent: str, segments: list) -> str:
    lines = [
        '<?xml version="1.0" encoding="ISO-8859-1" standalone="yes"?>',
        f'<nite:root nite:id="{meeting}.{agent}.segs" xmlns:nite="http://nite.sourceforge.net/">',
    ]
    for k, (start, end, ranges) in enumerate(segments):
        lines.append(
            f'   <segment nite:id="{meeting}.sync.{agent}{k}" transcriber_start="{_fmt(start)}" '
            f'transcriber_end="{_fmt(end)}">'
        )
        for first, last in ranges:
            ref = f"{meeting}.{agent}.words.xml#id({meeting}.{agent}.words{first})"
            if last is not None:
                ref += f"..id({meeting}.{agent}.words{last})"
            lines.append(f'      <nite:child href="{ref}"/>')
        lines.append("   </segment>")
    lines.append("</nite:root>")
    return "\n".join(lines) + "\n"


def meetings_xml() -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
        '<nite:root nite:id="meetings" xmlns:nite="http://nite.sourceforge.net/">',
    ]
    for meeting, speakers in MEETINGS.items():
        lines.append(
            f'   <meeting nite:id="{meeting}.meeting" observation="{meeting}" type="fixture">'
        )
        for agent, name, channel, _, _ in speakers:
            lines.append(
                f'      <speaker nite:id="{meeting}.speaker.{agent}" nxt_agent="{agent}" '
                f'global_name="{name}" channel="{channel}" role="fixture"/>'
            )
        lines.append("   </meeting>")
    lines.append("</nite:root>")
    return "\n".join(lines) + "\n"


def _wav(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    samples = (rng.standard_normal(int(AUDIO_SECONDS * SAMPLE_RATE)) * 1000).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, SAMPLE_RATE, subtype="PCM_16")


def make_ami_tree(root: Path, *, zipped: bool = False) -> Path:
    """Write the miniature corpus under ``root`` (returned); annotations as folder or zip."""
    ann = root / ANNOTATIONS
    (ann / "corpusResources").mkdir(parents=True, exist_ok=True)
    (ann / "corpusResources" / "meetings.xml").write_text(meetings_xml(), encoding="utf-8")
    for meeting, speakers in MEETINGS.items():
        for agent, _, _, words, segments in speakers:
            for sub, text in (
                ("words", words_xml(meeting, agent, words)),
                ("segments", segments_xml(meeting, agent, segments)),
            ):
                path = ann / sub / f"{meeting}.{agent}.{sub}.xml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(text.encode("latin-1"))
    seed = 0
    for meeting in AUDIO_MEETINGS:
        audio = root / "amicorpus" / meeting / "audio"
        for _, _, channel, _, _ in MEETINGS[meeting]:
            _wav(audio / f"{meeting}.Headset-{channel}.wav", seed := seed + 1)
        _wav(audio / f"{meeting}.Array1-01.wav", seed := seed + 1)
    if zipped:  # like the distributed zip: words/, segments/, ... at the top level
        with zipfile.ZipFile(root / f"{ANNOTATIONS}.zip", "w") as zf:
            for path in sorted(ann.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(ann).as_posix())
        shutil.rmtree(ann)
    return root
