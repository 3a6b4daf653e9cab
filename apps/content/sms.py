"""SMS length in segments: GSM 03.38 7-bit when every character allows it, else UCS-2.

https://en.wikipedia.org/wiki/GSM_03.38 — a single message holds 160 GSM-7 characters or 70
UCS-2 code units; a multi-part one 153 or 67 per part (the rest is the concatenation header).
Extension characters (€, [, ], {, }, …) take two GSM-7 positions.
"""

import math
from dataclasses import dataclass

GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsCount:
    characters: int
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # GSM-7 positions or UTF-16 code units
    segments: int


def segments(text: str) -> SmsCount:
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in text):
        units = sum(2 if c in GSM_EXTENDED else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2  # an emoji is two code units
        single, multi, encoding = 70, 67, "UCS-2"
    count = 0 if units == 0 else 1 if units <= single else math.ceil(units / multi)
    return SmsCount(characters=len(text), encoding=encoding, units=units, segments=count)
