"""Section-aware chunks: headings stay with their text, titles carry the heading path."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ragloop.core.records import ChunkRecord, embedding_input
from ragloop.ingest.chunking import Chunker, ChunkerConfig
from ragloop.ingest.loaders import LoadedDocument, Outline, discover, load_file, single_document
from ragloop.ingest.sections import Section
from tests.fakes import KeywordEmbedder

DOCS = Path(__file__).resolve().parents[2] / "docs"
WORDS = st.sampled_from(["ocean", "a", "the", "reef,", "lava.", "Coral", "x" * 40, "magma!"])
LINE = st.lists(WORDS, min_size=1, max_size=30).map(" ".join)
BODY = st.lists(LINE, min_size=0, max_size=4).map("\n\n".join)
SECTION = st.tuples(st.integers(1, 3), st.lists(WORDS, min_size=1, max_size=4), BODY)
DOC = st.lists(SECTION, min_size=1, max_size=12)


def _chunker(max_seq: int = 66, size: int = 24, overlap: int = 4) -> Chunker:
    return Chunker(KeywordEmbedder(max_seq_length=max_seq), ChunkerConfig(size, overlap))


def _markdown(sections: list[tuple[int, list[str], str]]) -> tuple[str, set[str]]:
    parts, headings = [], set()
    for level, words, body in sections:
        heading = f"{'#' * level} {' '.join(words)}"
        headings.add(heading)
        parts.append(f"{heading}\n\n{body}" if body else heading)
    return "\n\n".join(parts), headings


def _heading_only(chunk: ChunkRecord, sections: list[Section], text: str) -> bool:
    """True when every character of the chunk lies in a heading (or is whitespace)."""
    return all(
        text[i].isspace() or any(s.start <= i < s.body for s in sections)
        for i in range(chunk.start_char, chunk.end_char)
    )


def _check_caps_and_coverage(chunker: Chunker, text: str, chunks: list[ChunkRecord]) -> None:
    covered = [False] * len(text)
    for c in chunks:
        assert text[c.start_char : c.end_char] == c.text
        assert len(c.text) <= chunker.max_chars
        tokens = chunker.embedder.count_tokens([embedding_input(c.title, c.text)])[0]
        assert tokens == c.n_tokens <= chunker.budget
        for i in range(c.start_char, c.end_char):
            covered[i] = True
    assert [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]] == []
    assert [c.start_char for c in chunks] == sorted(c.start_char for c in chunks)
    assert [c.seq for c in chunks] == list(range(len(chunks)))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOC, size=st.sampled_from([24, 40]), title=st.sampled_from(["", "Guide", "A b c"]))
def test_markdown_chunks_keep_headings_with_text_within_every_cap(
    doc: list[tuple[int, list[str], str]], size: int, title: str
) -> None:
    text, headings = _markdown(doc)
    chunker = _chunker(size=size)
    chunks = chunker.split("d", title, text, "markdown")
    _check_caps_and_coverage(chunker, text, chunks)
    has_body = any(body for _, _, body in doc)
    for c in chunks:
        lines = [line for line in c.text.split("\n") if line.strip()]
        if has_body:
            assert not all(line in headings for line in lines), c.text  # never a heading alone
        if len(chunks) > 1:
            assert (
                chunker.embedder.count_tokens([c.text])[0] >= chunker.min_tokens
                or len(c.text) >= chunker.min_chars
            ), c.text
        parts = c.title.split(" > ") if c.title else []
        if title:
            assert parts[0] == title
            parts = parts[1:]
        assert all(f"# {p}" in text for p in parts if p != "…")


#: Formats whose loaders write their sections as `#` headings (``Outline``).
OUTLINED = ("pptx", "xlsx", "epub", "json")


def _outlined(fmt: str, sections: list[tuple[int, list[str], str]]) -> LoadedDocument:
    """A document of ``fmt`` as its loader builds one: headings and blocks of an Outline."""
    outline = Outline()
    for level, words, body in sections:
        outline.heading(level, " ".join(words))
        for block in body.split("\n\n"):
            outline.add(block)
    [doc] = single_document(Path(f"deck.{fmt}"), b"", fmt, outline.text(), "Deck", outline.headings)
    assert isinstance(doc, LoadedDocument)
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOC, size=st.sampled_from([24, 40]), fmt=st.sampled_from(OUTLINED))
def test_outlined_formats_never_make_a_heading_only_chunk(
    doc: list[tuple[int, list[str], str]], size: int, fmt: str
) -> None:
    assume(any(body for _, _, body in doc))
    loaded = _outlined(fmt, doc)
    chunker = _chunker(size=size)
    sections = list(loaded.sections)
    chunks = chunker.split(loaded.id, loaded.title, loaded.text, loaded.format, sections)
    _check_caps_and_coverage(chunker, loaded.text, chunks)
    for c in chunks:
        assert not _heading_only(c, sections, loaded.text), c.text


@pytest.mark.parametrize("fmt", OUTLINED)
def test_a_heading_of_the_outlined_formats_opens_its_chunk(fmt: str) -> None:
    # A small section is carried into the next; the piece cut from them must not end with the
    # next section's heading, which opens the chunk of its own text instead.
    doc = _outlined(
        fmt, [(1, ["Whales"], " ".join(["whale"] * 4)), (1, ["Reefs"], "coral reef. " * 10)]
    )
    chunks = _chunker(size=24).split(doc.id, doc.title, doc.text, doc.format, doc.sections)
    assert chunks and all(c.text.startswith("# ") for c in chunks)
    assert not [c for c in chunks if c.text.rstrip().split("\n")[-1].startswith("# ")]


@settings(max_examples=60, deadline=None)
@given(doc=DOC)
def test_section_chunk_ids_are_deterministic(doc: list[tuple[int, list[str], str]]) -> None:
    text, _ = _markdown(doc)
    first = _chunker().split("d", "T", text, "markdown")
    again = _chunker().split("d", "T", text, "markdown")
    assert [(c.id, c.title, c.start_char) for c in first] == [
        (c.id, c.title, c.start_char) for c in again
    ]
    assert len({c.id for c in first}) == len(first)


def test_titles_carry_the_heading_path() -> None:
    body = " ".join(["ocean"] * 12)
    text = f"# Guide\n\n{body}\n\n## Install\n\n### From source\n\n{body}\n\n## Use\n\n{body}"
    chunks = _chunker(size=20, overlap=0).split("d", "Guide", text, "markdown")
    assert [(c.title, c.text.split("\n")[0]) for c in chunks] == [
        ("Guide", "# Guide"),
        ("Guide > Install > From source", "## Install"),  # the bare heading opens its child
        ("Guide > Use", "## Use"),
    ]


def test_small_sections_merge_under_their_parent() -> None:
    text = "# Guide\n\n## A\n\none ocean\n\n## B\n\ntwo ocean\n\n## C\n\nthree ocean"
    chunker = _chunker(size=40, overlap=0)
    [chunk] = chunker.split("d", "Guide", text, "markdown")
    assert chunk.title == "Guide" and chunk.text == text


def test_rst_and_html_titles_carry_the_heading_path(tmp_path: Path) -> None:
    body = " ".join(["coral"] * 12)
    rst = tmp_path / "reef.rst"
    rst.write_text(f"Reefs\n=====\n\n{body}\n\nFish\n----\n\n{body}\n\nSharks\n~~~~~~\n\n{body}\n")
    html = tmp_path / "reef.html"
    html.write_text(
        f"<title>Reefs</title><h1>Reefs</h1><p>{body}</p><h2>Fish</h2><p>{body}</p>"
        f"<h3>Sharks</h3><p>{body}</p>"
    )
    chunker = _chunker(size=20, overlap=0)
    for path in (rst, html):
        [doc] = load_file(path, 1 << 20)
        assert isinstance(doc, LoadedDocument)
        chunks = chunker.split(doc.id, doc.title, doc.text, doc.format, doc.sections)
        assert [c.title for c in chunks] == ["Reefs", "Reefs > Fish", "Reefs > Fish > Sharks"]


def test_a_long_path_keeps_the_document_and_the_section() -> None:
    heads = [" ".join(["deep"] * 6) + f" {i}" for i in range(6)]
    text = "\n\n".join(f"{'#' * (i + 1)} {h}" for i, h in enumerate(heads))
    text += "\n\n" + " ".join(["ocean"] * 30)
    chunker = _chunker()
    for c in chunker.split("d", "Handbook", text, "markdown"):
        assert chunker.embedder.count_tokens([c.title])[0] <= chunker.budget // 4
        assert c.title.startswith("Handbook > ")


def test_a_two_megabyte_line_without_spaces_is_cut_by_characters() -> None:
    chunker = _chunker()
    text = "# Blob\n\nintro words here\n\n" + "x" * 2_000_000
    chunks = chunker.split("d", "Blob", text, "markdown")
    _check_caps_and_coverage(chunker, text, chunks)
    assert len(chunks) >= 2_000_000 // chunker.max_chars


def test_the_docs_folder_has_no_heading_only_chunk() -> None:
    chunker = _chunker(max_seq=256, size=256, overlap=32)
    files, _ = discover([DOCS])
    assert files
    formats = []
    for path in files:
        for doc in load_file(path, 50 << 20):
            assert isinstance(doc, LoadedDocument)
            sections = list(doc.sections)
            chunks = chunker.split(doc.id, doc.title, doc.text, doc.format, sections)
            _check_caps_and_coverage(chunker, doc.text, chunks)
            for c in chunks:
                assert not _heading_only(c, sections, doc.text), (path.name, c.text)
                assert len(chunks) == 1 or len(c.text) >= 60, (path.name, c.text)
            formats += [c for c in chunks if c.title == "Ingest > Formats"]
    # "What file formats can I ingest?": the Formats chunk holds the table, not just a heading
    assert formats and "| `.md`" in formats[0].text


@pytest.mark.integration
def test_real_tokenizer_docs_and_a_two_megabyte_line(real_embedder) -> None:  # type: ignore[no-untyped-def]
    chunker = Chunker(real_embedder, ChunkerConfig(256, 32))
    blob = "y" * 2_000_000
    chunks = chunker.split("d", "Blob", blob, "text")
    assert len(chunks) > 1 and all(len(c.text) <= chunker.max_chars for c in chunks)
    files, _ = discover([DOCS])
    for path in files:
        for doc in load_file(path, 50 << 20):
            assert isinstance(doc, LoadedDocument)
            sections = list(doc.sections)
            for c in chunker.split(doc.id, doc.title, doc.text, doc.format, sections):
                ids = real_embedder.tokenizer(embedding_input(c.title, c.text))["input_ids"]
                assert len(ids) <= real_embedder.max_seq_length
                assert not _heading_only(c, sections, doc.text), (path.name, c.text)
                assert real_embedder.count_tokens([c.text])[0] >= chunker.min_tokens
