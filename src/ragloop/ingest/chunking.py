"""Section-aware, token-aware chunking with the active embedder's own tokenizer.

A document arrives with its sections (``ingest.sections``: heading paths and offsets). Small
sections are merged into a neighbour under the same parent, or carried into the next one, so no
chunk is a heading alone; each group of sections is then cut by LangChain's recursive splitter
whose length function is the embedder's token count. Every chunk's title is its heading path,
``Document > Section > Subsection``. A guard re-counts every chunk exactly as it will be
embedded (title line included) and halves any that would be truncated or exceed the character
cap, and a last pass merges or widens (into the overlap) any piece still under the minimum.
Chunks are verbatim slices of the cleaned text, with offsets.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ragloop.core.embedding.base import Embedder
from ragloop.core.records import TITLE_SEPARATOR, ChunkRecord, embedding_input
from ragloop.ingest.sections import Section, find_sections
from ragloop.ingest.spans import locate, split_point

# Bump when chunking changes in a way that must re-chunk existing documents.
CHUNKER_VERSION = 3

# A chunk may hold at most this many characters per token of its target size: a tokenizer can
# count a 2 MB run without spaces as a handful of tokens, and such a chunk helps nobody.
CHARS_PER_TOKEN = 16

# Separators are regexes, tried in order. Zero-width lookarounds keep a heading at the start of
# the chunk it opens (and an RST title with its underline) and a sentence's full stop with its
# sentence; the captured whitespace is stripped.
_SENTENCE = [r"(?<=[.!?])\s", r"(?<=[;:,])\s"]
_MARKDOWN = [r"\n(?=#{1,6} )", r"\n(?=```)", r"\n\n", r"\n", *_SENTENCE, " ", ""]
_RST = [r"\n(?=[^\n]+\n[=\-~^\"'`#*+]{3,}\n)", r"\n\n", r"\n", *_SENTENCE, " ", ""]
_DEFAULT_SEPARATORS = [r"\n\n", r"\n", *_SENTENCE, " ", ""]
# Formats whose loaders write their sections as `#` headings (office files, e-books, plain JSON
# records) split as Markdown does; CSV and BEIR records have no headings.
_SEPARATORS = {
    **dict.fromkeys(("markdown", "html", "docx", "pptx", "xlsx", "epub", "json"), _MARKDOWN),
    "rst": _RST,
}
_WORD = re.compile(r"\S+")

Span = tuple[int, int]


def chunk_id(document_id: str, title: str, text: str, occurrence: int) -> str:
    """Stable id: a hash of the document id and exactly what gets embedded.

    ``occurrence`` tells apart identical chunk texts within one document.
    """
    key = f"{document_id}\0{title}\0{text}\0{occurrence}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True)
class ChunkerConfig:
    """Target size and overlap in tokens, the smallest chunk worth having, a character cap.

    ``max_chars`` 0 means ``chunk_tokens * CHARS_PER_TOKEN``.
    """

    chunk_tokens: int = 256
    chunk_overlap: int = 32
    min_tokens: int = 20
    max_chars: int = 0


class Chunker:
    """Splits documents for one embedder; never produces a chunk it would truncate."""

    def __init__(self, embedder: Embedder, config: ChunkerConfig) -> None:
        self.embedder = embedder
        self.config = config
        self.budget = embedder.content_budget
        if self.budget < 8:
            raise ValueError(f"model max_seq_length {embedder.max_seq_length} is too small")
        self.max_chars = config.max_chars or max(64, config.chunk_tokens * CHARS_PER_TOKEN)
        # The minimum must stay well under a chunk's size, or merging could never satisfy it.
        self.min_tokens = max(1, min(config.min_tokens, config.chunk_tokens // 3, self.budget // 4))
        self.min_chars = self.max_chars // 4
        self._titles: dict[tuple[str, ...], tuple[str, int]] = {}

    @property
    def signature(self) -> str:
        """Everything that changes the chunks; part of each document's content hash."""
        c = self.config
        return (
            f"v{CHUNKER_VERSION}:{self.embedder.model_id}:{self.budget}:"
            f"{c.chunk_tokens}:{c.chunk_overlap}:{self.min_tokens}:{self.max_chars}"
        )

    def _tokens(self, text: str) -> int:
        return self.embedder.count_tokens([text])[0]

    def _bounded(self, text: str, limit: int) -> str:
        # Today's rule for one long title: drop words from the end, mark the cut.
        if not text or self._tokens(text) <= limit:
            return text
        words = text.split()
        while words and self._tokens(" ".join(words) + " …") > limit:
            words.pop()
        return " ".join(words) + " …" if words else ""

    def _chunk_title(self, parts: tuple[str, ...]) -> tuple[str, int]:
        """The title line for a heading path, and its tokens with the newline.

        A title may use at most a quarter of the budget, so every chunk keeps real content.
        Middle headings give way first, then the document title, then the words at the end.
        """
        if parts in self._titles:
            return self._titles[parts]
        limit = self.budget // 4
        title = TITLE_SEPARATOR.join(parts)
        if title and self._tokens(title) > limit and len(parts) > 1:
            short = (parts[0], "…", parts[-1]) if len(parts) > 2 else parts
            title = TITLE_SEPARATOR.join(short)
            if self._tokens(title) > limit:
                head = self._bounded(short[0], limit // 2)
                title = TITLE_SEPARATOR.join(p for p in (head, *short[1:]) if p)
        title = self._bounded(title, limit)
        out = (title, self._tokens(title + "\n") if title else 0)
        self._titles[parts] = out
        return out

    def split(
        self,
        document_id: str,
        title: str,
        text: str,
        fmt: str,
        sections: Sequence[Section] | None = None,
    ) -> list[ChunkRecord]:
        """Chunks of one document, in order, each within the model's token and character caps.

        ``sections`` come from the loader; without them they are found from ``fmt``.
        """
        if not text.strip():
            return []
        doc = _Doc(self, title, text, fmt, sections)
        pieces = [p for group in doc.groups() for p in doc.split_group(group)]
        seen: dict[str, int] = {}
        out = []
        for seq, (start, end) in enumerate(pieces):
            chunk = text[start:end]
            ctitle = doc.title_for(start, end)[0]
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
                    end_char=end,
                    n_tokens=self._tokens(embedding_input(ctitle, chunk)),
                )
            )
        return out


class _Doc:
    """One document being chunked: its text, sections and the chunker's limits."""

    def __init__(
        self,
        chunker: Chunker,
        title: str,
        text: str,
        fmt: str,
        sections: Sequence[Section] | None,
    ) -> None:
        self.c = chunker
        self.text = text
        self.fmt = fmt
        self.title = title
        found = list(sections) if sections is not None else find_sections(text, fmt)
        if not found or found[0].start > 0:  # text before the first heading is a section too
            found.insert(0, Section((), 0, 0, found[0].start if found else len(text)))
        self.sections = found
        self._starts = [s.start for s in self.sections]

    # -- what a span is ---------------------------------------------------------------------

    def _overlapping(self, start: int, end: int) -> list[Section]:
        # Sections tile the text in order, so the first one is found by bisection.
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        out = []
        while i < len(self.sections) and self.sections[i].start < end:
            if self.sections[i].end > start:
                out.append(self.sections[i])
            i += 1
        return out

    def _has_body(self, s: Section, start: int, end: int) -> bool:
        return bool(self.text[max(s.body, start) : min(s.end, end)].strip())

    def path_for(self, start: int, end: int) -> tuple[str, ...]:
        """The deepest heading path shared by every section with text in the span."""
        over = self._overlapping(start, end)
        paths = [s.path for s in over if self._has_body(s, start, end)] or [s.path for s in over]
        common = paths[0] if paths else ()
        for path in paths[1:]:
            n = 0
            while n < min(len(common), len(path)) and common[n] == path[n]:
                n += 1
            common = common[:n]
        # A top heading that repeats the document title (a Markdown "# Title") says nothing new.
        if common and self.title and common[0].casefold() == self.title.casefold():
            common = common[1:]
        return common

    def title_for(self, start: int, end: int) -> tuple[str, int]:
        """The chunk title of a span, and its tokens with the newline."""
        # A separator inside a title or heading would read as one more level of the path.
        parts = (self.title, *self.path_for(start, end))
        return self.c._chunk_title(tuple(p.replace(TITLE_SEPARATOR, " › ") for p in parts if p))

    def fits(self, start: int, end: int) -> bool:
        """Within the character cap and, embedded with its title, the model's limit."""
        if end - start > self.c.max_chars:
            return False
        title = self.title_for(start, end)[0]
        return self.c._tokens(embedding_input(title, self.text[start:end])) <= self.c.budget

    def small(self, start: int, end: int) -> bool:
        """Under the minimum in tokens and characters, or nothing but headings."""
        if not any(self._has_body(s, start, end) for s in self._overlapping(start, end)):
            return True
        piece = self.text[start:end]
        return len(piece) < self.c.min_chars and self.c._tokens(piece) < self.c.min_tokens

    def _strip(self, start: int, end: int) -> Span:
        piece = self.text[start:end]
        return start + len(piece) - len(piece.lstrip()), start + len(piece.rstrip())

    # -- grouping sections --------------------------------------------------------------------

    def _size(self, secs: Sequence[Section]) -> int:
        # The longest title any chunk of these sections can get (a prefix of one of their paths).
        longest = max(self.title_for(s.start, s.end)[1] for s in secs)
        return max(8, min(self.c.config.chunk_tokens, self.c.budget - longest))

    def groups(self) -> list[list[Section]]:
        """Sections in runs that each make at least one chunk worth having."""
        groups: list[list[Section]] = []
        for s in self.sections:
            if not self.text[s.start : s.end].strip():
                continue
            if groups:
                last = groups[-1]
                if self.small(last[0].start, last[-1].end):
                    last.append(s)  # carry a small run into this section
                    continue
                prev = last[-1].path
                sibling = prev[: len(s.path) - 1] == s.path[:-1]
                union = self._strip(last[0].start, s.end)
                # A heading with no text of its own opens what follows, so it is never
                # merged backwards; a small section with text joins the one before it.
                if (
                    sibling
                    and self._has_body(s, s.start, s.end)
                    and self.small(s.start, s.end)
                    and self.c._tokens(self.text[union[0] : union[1]]) <= self._size([*last, s])
                    and union[1] - union[0] <= self.c.max_chars
                ):
                    last.append(s)  # a small section joins its neighbour under the same parent
                    continue
            groups.append([s])
        if len(groups) > 1 and self.small(groups[-1][0].start, groups[-1][-1].end):
            groups[-2].extend(groups.pop())
        return groups

    # -- splitting one group -------------------------------------------------------------------

    def split_group(self, secs: list[Section]) -> list[Span]:
        """Spans of one group of sections: split, guarded, then no piece under the minimum."""
        start, end = self._strip(secs[0].start, secs[-1].end)
        body = self.text[start:end]
        size = self._size(secs)
        if self.c._tokens(body) <= size:
            # Over the character cap only: the guard halves it. (The splitter would fall back
            # to single characters, and count each one's tokens, on a long run without spaces.)
            spans = [(start, end)]
        else:
            splitter = RecursiveCharacterTextSplitter(
                separators=_SEPARATORS.get(self.fmt, _DEFAULT_SEPARATORS),
                chunk_size=size,
                chunk_overlap=min(self.c.config.chunk_overlap, size // 2),
                length_function=self.c._tokens,
                keep_separator="start",  # a heading opens the chunk it starts
                is_separator_regex=True,
                strip_whitespace=True,
            )
            spans = [
                (start + s, start + s + len(p)) for s, p in locate(body, splitter.split_text(body))
            ]
        guarded = [g for span in spans for g in self._guard(span)]
        return self._no_small(guarded, start, end)

    def _guard(self, span: Span) -> list[Span]:
        start, end = span
        if end <= start or self.fits(start, end):
            return [span] if end > start else []
        cut = start + split_point(self.text[start:end])
        return self._guard(self._strip(start, cut)) + self._guard(self._strip(cut, end))

    def _no_small(self, spans: list[Span], lo: int, hi: int) -> list[Span]:
        """Merge each piece under the minimum into a neighbour, or widen it into the overlap."""
        out = list(spans)
        i = 0
        while i < len(out):
            start, end = out[i]
            if len(out) == 1 or not self.small(start, end):
                i += 1
                continue
            if i > 0 and self.fits(out[i - 1][0], max(end, out[i - 1][1])):
                out[i - 1 : i + 1] = [(out[i - 1][0], max(end, out[i - 1][1]))]
                i -= 1
                continue
            if i + 1 < len(out) and self.fits(start, max(end, out[i + 1][1])):
                out[i : i + 2] = [(start, max(end, out[i + 1][1]))]
                continue
            out[i] = self._widen(out, i, lo, hi)
            i += 1
        return out

    def _widen(self, spans: list[Span], i: int, lo: int, hi: int) -> Span:
        # Overlap with a neighbour is allowed, so a small piece may take in the words before it
        # (or after it) until it is big enough, as long as it stays within the caps.
        start, end = spans[i]
        floor = spans[i - 1][0] + 1 if i > 0 else lo
        ceil = spans[i + 1][1] - 1 if i + 1 < len(spans) else hi
        tries = 4 * self.c.min_tokens + 8
        befores = [m.start() + floor for m in _WORD.finditer(self.text[floor:start])]
        s = next((s for s in reversed(befores[-tries:]) if not self.small(s, end)), None)
        if s is not None and self.fits(s, end):
            return (s, end)
        afters = [m.end() + end for m in _WORD.finditer(self.text[end:ceil])]
        e = next((e for e in afters[:tries] if not self.small(start, e)), None)
        if e is not None and self.fits(start, e):
            return (start, e)
        return spans[i]
