"""Text clean-up applied to every loaded document before chunking."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRAILING_WS = re.compile(r"[ \t]+\n")
_MANY_BLANK = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """Normalise a document's text without changing its words.

    NFC normalisation (so the same text always hashes the same), Windows and old-Mac line ends
    to ``\\n``, control characters dropped, trailing spaces and runs of blank lines collapsed.
    """
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = _CONTROL.sub("", text)
    text = _TRAILING_WS.sub("\n", text)
    text = _MANY_BLANK.sub("\n\n", text)
    return text.strip()


def one_line(text: str) -> str:
    """Text cleaned as a document is, on one line with single spaces (a heading, a cell)."""
    return " ".join(clean_text(text).split())


def looks_binary(head: bytes) -> bool:
    """True for content that is not text: a NUL byte in the first block is the usual tell."""
    return b"\x00" in head[:8192]


# Byte-order marks, longest first: the UTF-32-LE mark begins with the UTF-16-LE one.
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def bom_encoding(data: bytes) -> str | None:
    """The UTF-16 or UTF-32 codec a byte-order mark announces, or None without one.

    Such text is full of NUL bytes, so it must be recognised before ``looks_binary``. The
    codec named reads the mark itself to pick the byte order, and drops it.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec
    return None
