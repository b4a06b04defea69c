import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragloop.core.records import embedding_input
from ragloop.ingest.chunking import Chunker, ChunkerConfig
from tests.fakes import KeywordEmbedder

WORDS = st.sampled_from(
    ["scurvy", "vitamin", "ocean", "a", "the", "of", "lava.", "reef,", "Coral", "magma!", "x" * 40]
)
LINE = st.lists(WORDS, min_size=0, max_size=30).map(" ".join)
HEADING = st.sampled_from(["# Title", "## Part", "### Sub"])
BLOCK = st.one_of(LINE, HEADING)
TEXTS = st.lists(BLOCK, min_size=1, max_size=40).map(lambda b: "\n\n".join(b).strip()).filter(bool)
TITLES = st.one_of(st.just(""), st.lists(WORDS, min_size=1, max_size=40).map(" ".join))
FORMATS = st.sampled_from(
    ["text", "markdown", "rst", "beir", "html", "docx", "pptx", "xlsx", "csv", "epub", "json"]
)


def _chunker(max_seq: int = 66, size: int = 24, overlap: int = 4) -> Chunker:
    return Chunker(KeywordEmbedder(max_seq_length=max_seq), ChunkerConfig(size, overlap))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, title=TITLES, fmt=FORMATS)
def test_chunks_never_exceed_the_model_limit(text: str, title: str, fmt: str) -> None:
    chunker = _chunker()
    for c in chunker.split("doc", title, text, fmt):
        tokens = chunker.embedder.count_tokens([embedding_input(c.title, c.text)])[0]
        assert tokens <= chunker.budget
        assert tokens == c.n_tokens


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, title=TITLES, fmt=FORMATS)
def test_no_text_is_lost_between_chunks(text: str, title: str, fmt: str) -> None:
    chunks = _chunker().split("doc", title, text, fmt)
    covered = [False] * len(text)
    for c in chunks:
        assert text[c.start_char : c.end_char] == c.text  # verbatim slices with true offsets
        for i in range(c.start_char, c.end_char):
            covered[i] = True
    lost = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert lost == []
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert [c.start_char for c in chunks] == sorted(c.start_char for c in chunks)


@settings(max_examples=100, deadline=None)
@given(text=TEXTS, title=TITLES)
def test_ids_are_stable_and_unique(text: str, title: str) -> None:
    a = _chunker().split("doc", title, text, "text")
    b = _chunker().split("doc", title, text, "text")
    assert [c.id for c in a] == [c.id for c in b]
    assert len({c.id for c in a}) == len(a)
    other = _chunker().split("other-doc", title, text, "text")
    assert not {c.id for c in a} & {c.id for c in other}


def test_overlap_repeats_text_between_neighbours() -> None:
    text = " ".join(f"w{i}" for i in range(200))
    chunks = _chunker(size=20, overlap=5).split("d", "", text, "text")
    assert len(chunks) > 5
    for left, right in itertools.pairwise(chunks):
        assert right.start_char < left.end_char  # they overlap


def test_markdown_prefers_heading_boundaries() -> None:
    sections = [f"## Section {i}\n\n" + " ".join(["ocean"] * 12) for i in range(4)]
    chunks = _chunker(size=20, overlap=0).split("d", "", "\n\n".join(sections), "markdown")
    assert all(c.text.startswith("## Section") for c in chunks)


def test_small_document_is_one_chunk_and_title_is_capped() -> None:
    chunker = _chunker()
    [chunk] = chunker.split("d", "word " * 100, "short text", "text")
    assert chunker.embedder.count_tokens([chunk.title])[0] <= chunker.budget // 4 + 1
    assert chunk.text == "short text"


@pytest.mark.integration
def test_real_tokenizer_limit_holds_on_hard_text(real_embedder) -> None:  # type: ignore[no-untyped-def]
    chunker = Chunker(real_embedder, ChunkerConfig(256, 32))
    hard = [
        "Antidisestablishmentarianism " * 300,
        "x" * 5000,  # no whitespace at all
        "数据" * 2000,
        "\n\n".join(f"## H{i}\n\n" + "Protein folding in mice. " * 40 for i in range(5)),
    ]
    for text in hard:
        chunks = chunker.split("d", "A rather long title about proteins " * 3, text, "markdown")
        for c in chunks:
            ids = real_embedder.tokenizer(embedding_input(c.title, c.text))["input_ids"]
            assert len(ids) <= real_embedder.max_seq_length


def test_sentences_keep_their_full_stop() -> None:
    text = " ".join(f"Sentence {i} talks about the ocean reef." for i in range(30))
    chunks = _chunker(size=20, overlap=0).split("d", "", text, "text")
    assert len(chunks) > 3
    assert all(c.text.startswith("Sentence") and c.text.endswith(".") for c in chunks)


def test_rst_title_stays_with_its_underline() -> None:
    body = " ".join(["coral"] * 15)
    text = "\n\n".join(f"Part {i}\n=======\n\n{body}" for i in range(3))
    chunks = _chunker(size=20, overlap=0).split("d", "", text, "rst")
    assert [c.text.split("\n")[:2] for c in chunks] == [[f"Part {i}", "======="] for i in range(3)]
