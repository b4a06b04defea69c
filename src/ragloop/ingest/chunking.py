"""Token-aware chunking with the active embedder's own tokenizer.

LangChain's recursive splitter does the splitting (markdown/RST separators where the format has
headings, so a chunk prefers to end at a section boundary); its length function is the
embedder's token count. A final guard re-counts every chunk exactly as it will be embedded
(title line included) and halves any that would still be truncated, so no chunk ever exceeds
the model's ``max_seq_length``. Chunks are verbatim slices of the cleaned text, with offsets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ragloop.core.embedding.base import Embedder
from ragloop.core.records import ChunkRecord, embedding_input

# Bump when chunking changes in a way that must re-chunk existing documents.
CHUNKER_VERSION = 2

# Separators are regexes, tried in order. Zero-width lookarounds keep a heading at the start of
# the chunk it opens (and an RST title with its underline) and a sentence's full stop with its
# sentence; the captured whitespace is stripped.
_SENTENCE = [r"(?<=[.!?])\s", r"(?<=[;:,])\s"]
_MARKDOWN = [r"\n(?=#{1,6} )", r"\n(?=```)", r"\n\n", r"\n", *_SENTENCE, " ", ""]
_RST = [r"\n(?=[^\n]+\n[=\-~^\"'`#*+]{3,}\n)", r"\n\n", r"\n", *_SENTENCE, " ", ""]
_DEFAULT_SEPARATORS = [r"\n\n", r"\n", *_SENTENCE, " ", ""]
_SEPARATORS = {"markdown": _MARKDOWN, "html": _MARKDOWN, "docx": _MARKDOWN, "rst": _RST}


def chunk_id(document_id: str, title: str, text: str, occurrence: int) -> str:
    """Stable id: a hash of the document id and exactly what gets embedded.

    ``occurrence`` tells apart identical chunk texts within one document.
    """
    key = f"{document_id}\0{title}\0{text}\0{occurrence}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True)
class ChunkerConfig:
    """Target size and overlap in tokens."""

    chunk_tokens: int = 256
    chunk_overlap: int = 32


class Chunker:
    """Splits documents for one embedder; never produces a chunk it would truncate."""

    def __init__(self, embedder: Embedder, config: ChunkerConfig) -> None:
        self.embedder = embedder
        self.config = config
        self.budget = embedder.content_budget
        if self.budget < 8:
            raise ValueError(f"model max_seq_length {embedder.max_seq_length} is too small")

    @property
    def signature(self) -> str:
        """Everything that changes the chunks; part of each document's content hash."""
        c = self.config
        return (
            f"v{CHUNKER_VERSION}:{self.embedder.model_id}:{self.budget}:"
            f"{c.chunk_tokens}:{c.chunk_overlap}"
        )

    def _tokens(self, text: str) -> int:
        return self.embedder.count_tokens([text])[0]

    def _chunk_title(self, title: str) -> str:
        # A title may use at most a quarter of the budget, so every chunk keeps real content.
        limit = self.budget // 4
        if not title or self._tokens(title) <= limit:
            return title
        words = title.split()
        while words and self._tokens(" ".join(words) + " …") > limit:
            words.pop()
        return " ".join(words) + " …" if words else ""

    def split(self, document_id: str, title: str, text: str, fmt: str) -> list[ChunkRecord]:
        """Chunks of one document, in order, each within the model's token limit."""
        ctitle = self._chunk_title(title)
        title_tokens = self._tokens(ctitle + "\n") if ctitle else 0
        size = max(8, min(self.config.chunk_tokens, self.budget - title_tokens))
        overlap = min(self.config.chunk_overlap, size // 2)
        if self._tokens(text) <= size:
            pieces = [(0, text)]
        else:
            splitter = RecursiveCharacterTextSplitter(
                separators=_SEPARATORS.get(fmt, _DEFAULT_SEPARATORS),
                chunk_size=size,
                chunk_overlap=overlap,
                length_function=self._tokens,
                keep_separator="start",  # a heading opens the chunk it starts
                is_separator_regex=True,
                strip_whitespace=True,
            )
            pieces = _locate(text, splitter.split_text(text))
        pieces = [p for piece in pieces for p in self._guard(ctitle, piece)]
        seen: dict[str, int] = {}
        out = []
        for seq, (start, chunk) in enumerate(pieces):
            occurrence = seen.get(chunk, 0)
            seen[chunk] = occurrence + 1
            out.append(
                ChunkRecord(
                    id=chunk_id(document_id, ctitle, chunk, occurrence),
                    document_id=document_id,
                    seq=seq,
                    text=chunk,
                    title=ctitle,
                    start_char=start,
                    end_char=start + len(chunk),
                    n_tokens=self._tokens(embedding_input(ctitle, chunk)),
                )
            )
        return out

    def _guard(self, title: str, piece: tuple[int, str]) -> list[tuple[int, str]]:
        start, chunk = piece
        if self._tokens(embedding_input(title, chunk)) <= self.budget:
            return [piece]
        cut = _split_point(chunk)
        left, right = chunk[:cut], chunk[cut:]
        lstrip = len(right) - len(right.lstrip())
        return self._guard(title, (start, left.rstrip())) + self._guard(
            title, (start + cut + lstrip, right.strip())
        )


def _split_point(text: str) -> int:
    """A cut near the middle, at whitespace when there is any."""
    mid = len(text) // 2
    left, right = text.rfind(" ", 0, mid), text.find(" ", mid)
    candidates = [i for i in (left, right) if 0 < i < len(text) - 1]
    return min(candidates, key=lambda i: abs(i - mid)) if candidates else max(1, mid)


def _locate(text: str, chunks: Sequence[str]) -> list[tuple[int, str]]:
    """Start offset of each chunk; chunks are verbatim, overlapping, and in document order.

    Repeated text makes ``find`` ambiguous, so each chunk goes to the place that extends the
    covered text furthest while leaving at most whitespace uncovered before it.
    """
    out: list[tuple[int, str]] = []
    prev_start, covered = -1, 0
    for chunk in chunks:
        best, first = -1, -1
        pos = text.find(chunk, prev_start + 1)
        while pos >= 0:
            if pos + len(chunk) > covered:
                first = pos if first < 0 else first
                if text[covered:pos].strip():
                    break  # a later place would skip text
                best = pos
            pos = text.find(chunk, pos + 1)
        pos = next((p for p in (best, first) if p >= 0), max(text.find(chunk, prev_start + 1), 0))
        out.append((pos, chunk))
        prev_start, covered = pos, max(covered, pos + len(chunk))
    return out
