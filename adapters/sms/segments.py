"""SMS segments: how many billed parts a text becomes, and in which encoding.

A text that uses only the GSM-7 default alphabet and its extension table goes as GSM-7:
160 septets in one SMS, 153 per part once concatenated (the UDH takes the rest), and an
extension character costs two septets (escape + char) that never straddle two parts.
Anything else goes as UCS-2: 70 UTF-16 code units in one SMS, 67 per part, and a surrogate
pair (an emoji outside the BMP) is never split across parts.

https://www.twilio.com/docs/glossary/what-sms-character-limit
https://www.twilio.com/docs/glossary/what-is-gsm-7-character-encoding
3GPP TS 23.038 §6.2.1 (default alphabet and extension table)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# 3GPP TS 23.038 default alphabet, code points 0x00-0x7F in order (0x1B, the escape, left out).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each is sent as ESC + char, two septets.
GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")

LIMITS: dict[Encoding, tuple[int, int]] = {
    # encoding: (units in a single SMS, units per part of a concatenated SMS)
    "GSM-7": (160, 153),
    "UCS-2": (70, 67),
}


@dataclass(frozen=True)
class Segments:
    encoding: Encoding
    parts: tuple[str, ...]
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2) in the whole text

    @property
    def count(self) -> int:
        return len(self.parts)

    def describe(self) -> str:
        """E.g. "2 SMS segments (GSM-7)", the note a send leaves in the message history."""
        plural = "" if self.count == 1 else "s"
        return f"{self.count} SMS segment{plural} ({self.encoding})"


GSM7_ALL = GSM7_BASIC | GSM7_EXTENDED
# The same sets for scans in C, several times faster than a set lookup per character on a
# long numbered text: ASCII text (the common case) as bytes, where deleting every GSM-7
# character must leave nothing and what the extension table deletes is counted; any other
# text with regex classes.
_GSM7_ASCII = bytes(sorted(ord(c) for c in GSM7_ALL if c.isascii()))
_EXTENDED_ASCII = bytes(sorted(ord(c) for c in GSM7_EXTENDED if c.isascii()))
_NOT_GSM7 = re.compile("[^" + "".join(sorted(map(re.escape, GSM7_ALL))) + "]")
_EXTENDED = re.compile("[" + "".join(sorted(map(re.escape, GSM7_EXTENDED))) + "]")


def encoding_of(text: str) -> Encoding:
    if text.isascii():
        return "UCS-2" if text.encode().translate(None, _GSM7_ASCII) else "GSM-7"
    return "UCS-2" if _NOT_GSM7.search(text) else "GSM-7"


def unit_cost(char: str, encoding: Encoding) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) one character takes."""
    if encoding == "GSM-7":
        return 2 if char in GSM7_EXTENDED else 1
    return 2 if ord(char) > 0xFFFF else 1


def units(text: str, encoding: Encoding | None = None) -> int:
    encoding = encoding or encoding_of(text)
    if encoding == "GSM-7":  # each extension character adds its escape septet
        if text.isascii():
            raw = text.encode()
            return 2 * len(raw) - len(raw.translate(None, _EXTENDED_ASCII))
        return len(text) + len(_EXTENDED.findall(text))
    return len(text.encode("utf-16-le")) // 2


def segments(text: str) -> Segments:
    """The parts a handset receives, packed greedily as the SMSC does.

    Characters are whole in one part: an escape pair or a surrogate pair that does not fit
    in what is left of a part starts the next one, so a part may be one unit short.
    """
    encoding = encoding_of(text)
    single, per_part = LIMITS[encoding]
    total = units(text, encoding)
    if total <= single:
        return Segments(encoding, (text,), total)
    if total == len(text):  # one unit per character: parts are plain slices
        parts = [text[i : i + per_part] for i in range(0, len(text), per_part)]
        return Segments(encoding, tuple(parts), total)
    parts = []
    start = used = 0
    for index, char in enumerate(text):
        cost = unit_cost(char, encoding)
        if used + cost > per_part:
            parts.append(text[start:index])
            start, used = index, 0
        used += cost
    parts.append(text[start:])
    return Segments(encoding, tuple(parts), total)
