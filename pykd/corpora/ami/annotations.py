"""Read the AMI NXT manual annotations (``ami_public_manual_1.6.x``): meetings, words, segments.

The annotations may be an unzipped folder or the original zip; either way the root is the
folder that holds ``corpusResources/meetings.xml`` (searched for, so a zip with or without a
top-level folder both work).
"""

from __future__ import annotations

import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree as ET

log = logging.getLogger(__name__)

NITE_NS = "http://nite.sourceforge.net/"
NITE_ID = f"{{{NITE_NS}}}id"
NITE_CHILD = f"{{{NITE_NS}}}child"
MEETINGS_XML = "corpusResources/meetings.xml"


class AmiError(ValueError):
    """Bad AMI input; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Speaker:
    """One participant of a meeting (a row of meetings.xml)."""

    agent: str  # NXT agent letter A..E (names the words/segments files)
    global_name: str  # corpus-wide speaker id, e.g. FEE005
    channel: int  # headset number N of <MEET>.Headset-N.wav


@dataclass(frozen=True)
class Word:
    """One element of a words file (``w``, ``vocalsound``, ``disfmarker``, ``gap``, ...)."""

    id: str
    tag: str
    text: str
    start: float | None
    end: float | None
    punc: bool = False
    trunc: bool = False

    @property
    def is_lexical(self) -> bool:
        """A spoken word (not punctuation, not a vocal sound / disfluency marker / gap)."""
        return self.tag == "w" and not self.punc


@dataclass(frozen=True)
class Segment:
    """One transcriber segment: times and the word-id ranges of its children."""

    id: str
    start: float | None
    end: float | None
    ranges: tuple[tuple[str, str], ...]


_HREF = re.compile(r"#id\(([^)]+)\)(?:\.\.id\(([^)]+)\))?$")


class AnnotationSource:
    """Files of the annotation set, from a folder or a zip, addressed relative to its root."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            hits = sorted(self.path.rglob("meetings.xml"))
            hits = [h for h in hits if h.parent.name == "corpusResources"]
            if not hits:
                raise AmiError(f"{self.path}: no {MEETINGS_XML} under this folder")
            self._root = hits[0].parent.parent
            self._prefix = ""
        elif self.path.is_file():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except zipfile.BadZipFile as err:
                raise AmiError(f"{self.path}: not a readable zip ({err})") from err
            names = [n for n in self._zip.namelist() if n.endswith(MEETINGS_XML)]
            if not names:
                raise AmiError(f"{self.path}: zip has no {MEETINGS_XML}")
            self._prefix = min(names, key=len)[: -len(MEETINGS_XML)]
            self._names = set(self._zip.namelist())
        else:
            raise FileNotFoundError(f"AMI annotations not found: {self.path}")

    def describe(self, rel: str) -> str:
        """Human-readable location of a file (for messages)."""
        if self._zip is not None:
            return f"{self.path}:{self._prefix}{rel}"
        return str(self._root / rel)

    def exists(self, rel: str) -> bool:
        if self._zip is not None:
            return self._prefix + rel in self._names
        return (self._root / rel).is_file()

    def read(self, rel: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(self._prefix + rel)
        return (self._root / rel).read_bytes()

    def parse(self, rel: str) -> ET.Element:
        """Parse one XML file; a malformed file is an AmiError naming it."""
        try:
            return ET.fromstring(self.read(rel))
        except ET.ParseError as err:
            raise AmiError(f"{self.describe(rel)}: malformed XML: {err}") from err


def _time(elem: ET.Element, name: str, where: str) -> float | None:
    value = elem.get(name)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError as err:
        raise AmiError(f"{where}: element {elem.get(NITE_ID)}: bad {name}='{value}'") from err


def read_meetings(src: AnnotationSource) -> dict[str, dict[str, Speaker]]:
    """meetings.xml -> {meeting: {agent: Speaker}}."""
    where = src.describe(MEETINGS_XML)
    root = src.parse(MEETINGS_XML)
    meetings: dict[str, dict[str, Speaker]] = {}
    for meeting in root.iter("meeting"):
        name = meeting.get("observation")
        if not name:
            raise AmiError(f"{where}: <meeting> without observation attribute")
        speakers: dict[str, Speaker] = {}
        for spk in meeting.iter("speaker"):
            agent, global_name, channel = (
                spk.get("nxt_agent"),
                spk.get("global_name"),
                spk.get("channel"),
            )
            if not agent or not global_name or channel is None or not channel.isdigit():
                log.warning(
                    "%s: meeting %s: speaker without nxt_agent, global_name or numeric channel "
                    "(got %r, %r, %r); left out",
                    where,
                    name,
                    agent,
                    global_name,
                    channel,
                )
                continue
            speakers[agent] = Speaker(agent, global_name, int(channel))
        meetings[name] = speakers
    return meetings


def read_words(src: AnnotationSource, rel: str) -> list[Word]:
    """A words file -> its elements in document order (every element with a nite:id)."""
    where = src.describe(rel)
    root = src.parse(rel)
    words: list[Word] = []
    for elem in root:
        wid = elem.get(NITE_ID)
        if wid is None:
            continue
        tag = elem.tag.rsplit("}", 1)[-1]
        words.append(
            Word(
                id=wid,
                tag=tag,
                text=(elem.text or "").strip(),
                start=_time(elem, "starttime", where),
                end=_time(elem, "endtime", where),
                punc=elem.get("punc") == "true",
                trunc=elem.get("trunc") == "true",
            )
        )
    return words


def read_segments(src: AnnotationSource, rel: str) -> list[Segment]:
    """A segments file -> segments with transcriber times and word-id ranges."""
    where = src.describe(rel)
    root = src.parse(rel)
    segments: list[Segment] = []
    for elem in root.iter("segment"):
        ranges = []
        for child in elem.iter(NITE_CHILD):
            href = child.get("href", "").strip()
            match = _HREF.search(href)
            if match is None:
                raise AmiError(f"{where}: segment {elem.get(NITE_ID)}: bad href '{href}'")
            first, last = match.group(1), match.group(2) or match.group(1)
            ranges.append((first, last))
        segments.append(
            Segment(
                id=elem.get(NITE_ID, "?"),
                start=_time(elem, "transcriber_start", where),
                end=_time(elem, "transcriber_end", where),
                ranges=tuple(ranges),
            )
        )
    return segments


def segment_words(
    segment: Segment, words: list[Word], index: dict[str, int], where: str
) -> list[Word]:
    """The words-file elements a segment covers (inclusive id ranges, document order)."""
    out: list[Word] = []
    for first, last in segment.ranges:
        if first not in index or last not in index:
            missing = first if first not in index else last
            raise AmiError(f"{where}: segment {segment.id}: word id '{missing}' not found")
        lo, hi = index[first], index[last]
        if hi < lo:
            raise AmiError(f"{where}: segment {segment.id}: range {first}..{last} is reversed")
        out.extend(words[lo : hi + 1])
    return out


def words_file(meeting: str, agent: str) -> str:
    return str(PurePosixPath("words") / f"{meeting}.{agent}.words.xml")


def segments_file(meeting: str, agent: str) -> str:
    return str(PurePosixPath("segments") / f"{meeting}.{agent}.segments.xml")
