"""The official AMI full-corpus ASR partition (train / dev / eval), as data.

The corpus has 171 meetings. Dev (18) and eval (16) are the official full-corpus ASR lists;
train is every other meeting except IB4005, which the partition leaves out (its speakers
also appear in dev/eval).
"""

from __future__ import annotations

# Every meeting of the full AMI corpus (scenario ES/IS/TS and non-scenario EN/IB/IN); IS1002a and
# IS1005d do not exist.
ALL_MEETINGS: tuple[str, ...] = (
    "EN2001a", "EN2001b", "EN2001d", "EN2001e", "EN2002a", "EN2002b", "EN2002c", "EN2002d",
    "EN2003a", "EN2004a", "EN2005a", "EN2006a", "EN2006b", "EN2009b", "EN2009c", "EN2009d",
    "ES2002a", "ES2002b", "ES2002c", "ES2002d", "ES2003a", "ES2003b", "ES2003c", "ES2003d",
    "ES2004a", "ES2004b", "ES2004c", "ES2004d", "ES2005a", "ES2005b", "ES2005c", "ES2005d",
    "ES2006a", "ES2006b", "ES2006c", "ES2006d", "ES2007a", "ES2007b", "ES2007c", "ES2007d",
    "ES2008a", "ES2008b", "ES2008c", "ES2008d", "ES2009a", "ES2009b", "ES2009c", "ES2009d",
    "ES2010a", "ES2010b", "ES2010c", "ES2010d", "ES2011a", "ES2011b", "ES2011c", "ES2011d",
    "ES2012a", "ES2012b", "ES2012c", "ES2012d", "ES2013a", "ES2013b", "ES2013c", "ES2013d",
    "ES2014a", "ES2014b", "ES2014c", "ES2014d", "ES2015a", "ES2015b", "ES2015c", "ES2015d",
    "ES2016a", "ES2016b", "ES2016c", "ES2016d", "IB4001", "IB4002", "IB4003", "IB4004", "IB4005",
    "IB4010", "IB4011", "IN1001", "IN1002", "IN1005", "IN1007", "IN1008", "IN1009", "IN1012",
    "IN1013", "IN1014", "IN1016", "IS1000a", "IS1000b", "IS1000c", "IS1000d", "IS1001a", "IS1001b",
    "IS1001c", "IS1001d", "IS1002b", "IS1002c", "IS1002d", "IS1003a", "IS1003b", "IS1003c",
    "IS1003d", "IS1004a", "IS1004b", "IS1004c", "IS1004d", "IS1005a", "IS1005b", "IS1005c",
    "IS1006a", "IS1006b", "IS1006c", "IS1006d", "IS1007a", "IS1007b", "IS1007c", "IS1007d",
    "IS1008a", "IS1008b", "IS1008c", "IS1008d", "IS1009a", "IS1009b", "IS1009c", "IS1009d",
    "TS3003a", "TS3003b", "TS3003c", "TS3003d", "TS3004a", "TS3004b", "TS3004c", "TS3004d",
    "TS3005a", "TS3005b", "TS3005c", "TS3005d", "TS3006a", "TS3006b", "TS3006c", "TS3006d",
    "TS3007a", "TS3007b", "TS3007c", "TS3007d", "TS3008a", "TS3008b", "TS3008c", "TS3008d",
    "TS3009a", "TS3009b", "TS3009c", "TS3009d", "TS3010a", "TS3010b", "TS3010c", "TS3010d",
    "TS3011a", "TS3011b", "TS3011c", "TS3011d", "TS3012a", "TS3012b", "TS3012c", "TS3012d",
)  # fmt: skip

DEV: tuple[str, ...] = (
    "ES2011a", "ES2011b", "ES2011c", "ES2011d", "IB4001", "IB4002", "IB4003", "IB4004",
    "IB4010", "IB4011", "IS1008a", "IS1008b", "IS1008c", "IS1008d",
    "TS3004a", "TS3004b", "TS3004c", "TS3004d",
)  # fmt: skip

EVAL: tuple[str, ...] = (
    "EN2002a", "EN2002b", "EN2002c", "EN2002d", "ES2004a", "ES2004b", "ES2004c", "ES2004d",
    "IS1009a", "IS1009b", "IS1009c", "IS1009d", "TS3003a", "TS3003b", "TS3003c", "TS3003d",
)  # fmt: skip

# In the corpus, in no ASR split.
EXCLUDED: tuple[str, ...] = ("IB4005",)

TRAIN: tuple[str, ...] = tuple(
    m for m in ALL_MEETINGS if m not in DEV and m not in EVAL and m not in EXCLUDED
)

SPLITS: dict[str, tuple[str, ...]] = {"train": TRAIN, "dev": DEV, "eval": EVAL}


def split_of(meeting: str) -> str | None:
    """The split a meeting belongs to, or None (IB4005, or an id outside the corpus)."""
    for name, meetings in SPLITS.items():
        if meeting in meetings:
            return name
    return None
