"""PowerPoint, Excel, CSV, EPUB and plain JSON files, made with the real libraries.

Each format gives text, a title and sections (so chunks carry a heading path), and a broken
file of each is reported by name while the rest of the batch loads.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ragloop.core.records import TITLE_SEPARATOR
from ragloop.ingest.chunking import Chunker, ChunkerConfig
from ragloop.ingest.loaders import (
    Loaded,
    LoadedDocument,
    LoadFailure,
    LoadOptions,
    discover,
    load_file,
)
from tests.fakes import KeywordEmbedder

MB = 1024 * 1024


def _load(path: Path, options: LoadOptions | None = None) -> list[Loaded]:
    return list(load_file(path, 50 * MB, options))


def _doc(path: Path, options: LoadOptions | None = None) -> LoadedDocument:
    [doc] = _load(path, options)
    assert isinstance(doc, LoadedDocument), doc
    return doc


def _sections(doc: LoadedDocument) -> list[tuple[tuple[str, ...], str]]:
    """Each section's heading path and its text (heading left out)."""
    return [(s.path, doc.text[s.body : s.end].strip()) for s in doc.sections]


def _failure(out: list[Loaded]) -> LoadFailure:
    [failure] = out
    assert isinstance(failure, LoadFailure), failure
    assert "\n" not in failure.reason
    return failure


# -- makers -------------------------------------------------------------------------------------


def make_pptx(path: Path) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    deck.core_properties.title = "Ocean deck"
    cover = deck.slides.add_slide(deck.slide_layouts[0])
    cover.shapes.title.text = "Life in the ocean"
    cover.placeholders[1].text = "A short tour"
    whales = deck.slides.add_slide(deck.slide_layouts[1])
    whales.shapes.title.text = "Whales"
    body = whales.placeholders[1].text_frame
    body.text = "A whale is a mammal."
    para = body.add_paragraph()
    para.text = "Whales sing"
    para.add_line_break()
    para.add_run().text = "across the ocean."
    whales.notes_slide.notes_text_frame.text = "Mention the blue whale."
    blank = deck.slides.add_slide(deck.slide_layouts[6])
    box = blank.shapes.add_textbox(Inches(1), Inches(1), Inches(4), Inches(1))
    box.text_frame.text = "Reef fish by depth."
    table = blank.shapes.add_table(2, 2, Inches(1), Inches(3), Inches(4), Inches(1)).table
    for r, row in enumerate([["Fish", "Depth"], ["Clownfish", "10 m"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    deck.slides.add_slide(deck.slide_layouts[6])  # an empty slide is left out
    deck.save(str(path))
    return path


def make_xlsx(path: Path) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    book.properties.title = "Crew"
    staff = book.active
    staff.title = "Staff"
    staff.append(["Name", "Role", "Joined", "Shifts", None])
    staff.append(["Ada", "Navigator", dt.date(2024, 5, 1), 3.0, "night owl"])
    staff.append([None, None, None, None, None])  # blank rows are skipped
    staff.append(["Grace", None, None, 2.5, None])
    book.create_sheet("Empty")
    budget = book.create_sheet("Budget")
    budget.append(["Item", "Cost"])
    budget.append(["Rope", 12])
    book.save(str(path))
    return path


def make_epub(path: Path) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("ocean-book")
    book.set_title("The Ocean Book")
    book.set_language("en")
    one = epub.EpubHtml(title="Whales", file_name="whales.xhtml", lang="en")
    one.content = (
        "<html><head><title>The Ocean Book</title><script>var x = 1;</script></head><body>"
        "<h1>Whales</h1><p>A whale is an ocean animal.</p>"
        "<h2>Songs</h2><p>Humpback whales sing for hours.</p></body></html>"
    )
    two = epub.EpubHtml(title="Reefs", file_name="reefs.xhtml", lang="en")
    two.content = (
        "<html><body><h2>Coral</h2><p>Coral reefs shelter fish.</p>"
        "<nav>skip this menu</nav><h3>Bleaching</h3><p>Warm water bleaches coral.</p>"
        "</body></html>"
    )
    three = epub.EpubHtml(title="", file_name="notes.xhtml", lang="en")
    three.content = "<html><body><p>Notes without a heading.</p></body></html>"
    for chapter in (one, two, three):
        book.add_item(chapter)
    book.toc = [
        epub.Link("whales.xhtml", "Whales", "whales"),
        epub.Link("reefs.xhtml", "Reefs", "r"),
    ]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", one, two, three]
    epub.write_epub(str(path), book)
    return path


def truncated(path: Path) -> Path:
    """The first half of a file: for a zip archive, no central directory."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# -- PowerPoint ---------------------------------------------------------------------------------


def test_pptx_slides_are_sections_under_their_titles(tmp_path: Path) -> None:
    doc = _doc(make_pptx(tmp_path / "ocean.pptx"))
    assert (doc.format, doc.title) == ("pptx", "Ocean deck")
    got = _sections(doc)
    assert [path for path, _ in got] == [("Life in the ocean",), ("Whales",), ("Slide 3",)]
    assert got[0][1] == "A short tour"
    # A line break inside a paragraph stays a line break; the notes follow the slide's text.
    assert got[1][1] == (
        "A whale is a mammal.\nWhales sing\nacross the ocean.\n\nMention the blue whale."
    )
    assert got[2][1] == "Reef fish by depth.\n\nFish | Depth\nClownfish | 10 m"
    assert [doc.text[s.start : s.body] for s in doc.sections] == [
        "# Life in the ocean",
        "# Whales",
        "# Slide 3",
    ]


def test_pptx_without_a_title_property_takes_the_first_slide_title(tmp_path: Path) -> None:
    from pptx import Presentation

    path = make_pptx(tmp_path / "deck.pptx")
    deck = Presentation(str(path))
    deck.core_properties.title = ""
    deck.save(str(path))
    assert _doc(path).title == "Life in the ocean"


# -- Excel --------------------------------------------------------------------------------------


def test_xlsx_rows_are_records_with_their_header_one_section_per_sheet(tmp_path: Path) -> None:
    doc = _doc(make_xlsx(tmp_path / "crew.xlsx"))
    assert (doc.format, doc.title) == ("xlsx", "Crew")
    assert _sections(doc) == [
        (
            ("Staff",),
            "Name: Ada\nRole: Navigator\nJoined: 2024-05-01 00:00:00\nShifts: 3\n"
            "Column 5: night owl\n\nName: Grace\nShifts: 2.5",
        ),
        (("Budget",), "Item: Rope\nCost: 12"),
    ]


def test_xlsx_rows_over_the_limit_are_refused_with_the_limit(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "crew.xlsx")
    failure = _failure(_load(path, LoadOptions(max_records=2)))
    assert failure.reason == "more than 2 records (rows); 2 is the limit per file"


# -- CSV ----------------------------------------------------------------------------------------


def test_csv_dialect_is_sniffed_and_rows_become_records(tmp_path: Path) -> None:
    path = tmp_path / "ports.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(["Port", "Country", "Notes"])
        writer.writerow(["Rotterdam", "Netherlands", "busy; deep\nwater"])
        writer.writerow(["", "", ""])
        writer.writerow(["Hamburg", "", "on the Elbe"])
    doc = _doc(path)
    assert (doc.format, doc.title) == ("csv", "ports")
    assert doc.text == (
        "Port: Rotterdam\nCountry: Netherlands\nNotes: busy; deep water\n\n"
        "Port: Hamburg\nNotes: on the Elbe"
    )


def test_csv_with_one_column_and_tabs(tmp_path: Path) -> None:
    single = tmp_path / "words.csv"
    single.write_text("word\nocean\nreef\n")
    assert _doc(single).text == "word: ocean\n\nword: reef"
    tabs = tmp_path / "tabs.csv"
    tabs.write_text("a\tb\n1\t2\n3\t4\n")
    assert _doc(tabs).text == "a: 1\nb: 2\n\na: 3\nb: 4"


def test_csv_limits_and_malformed_files_are_reported_by_name(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("n\n" + "".join(f"{i}\n" for i in range(5)))
    failure = _failure(_load(rows, LoadOptions(max_records=4)))
    assert (failure.name, failure.reason) == (
        str(rows),
        "more than 4 records (rows); 4 is the limit per file",
    )
    chars = _failure(_load(rows, LoadOptions(max_chars=10)))
    assert "more than 10 characters" in chars.reason
    huge = tmp_path / "huge.csv"
    huge.write_text('a,b\n1,"' + "x" * 200_000 + '"\n')
    failure = _failure(_load(huge))
    assert failure.name == str(huge)
    assert failure.reason.startswith("malformed CSV at line 2: field larger than field limit")
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b,c\n")
    assert _failure(_load(header_only)).reason == "no rows under the header row"


# -- EPUB ---------------------------------------------------------------------------------------


def test_epub_chapters_are_sections_with_their_own_headings_below(tmp_path: Path) -> None:
    doc = _doc(make_epub(tmp_path / "ocean.epub"))
    assert (doc.format, doc.title) == ("epub", "The Ocean Book")
    assert _sections(doc) == [
        (("Whales",), "A whale is an ocean animal."),
        (("Whales", "Songs"), "Humpback whales sing for hours."),
        (("Reefs",), ""),
        (("Reefs", "Coral"), "Coral reefs shelter fish."),
        (("Reefs", "Coral", "Bleaching"), "Warm water bleaches coral."),
        (("Chapter 3",), "Notes without a heading."),
    ]
    assert "var x" not in doc.text and "skip this menu" not in doc.text


# -- JSON ---------------------------------------------------------------------------------------


def test_plain_jsonl_records_are_sections_of_one_document(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"title": "Whales", "body": "Whales sing.", "author": "A"}),
                "{not json",
                json.dumps({"body": "Reefs grow slowly."}),
                json.dumps({"title": "No body"}),
                json.dumps({"body": 5}),
            ]
        )
    )
    out = _load(path, LoadOptions(json_text_field="body"))
    docs = [d for d in out if isinstance(d, LoadedDocument)]
    failures = [(f.name, f.reason) for f in out if isinstance(f, LoadFailure)]
    assert failures == [
        ("notes.jsonl:2", "invalid JSON (Expecting property name enclosed in double quotes)"),
        ("notes.jsonl:4", "no 'body' field (json_text_field names the field that holds the text)"),
        ("notes.jsonl:5", "the 'body' field is not a string"),
    ]
    [doc] = docs
    assert (doc.format, doc.title, doc.source) == ("json", "notes", str(path))
    assert _sections(doc) == [(("Whales",), "Whales sing."), (("Line 3",), "Reefs grow slowly.")]
    # With the default field ("text") no record has text: each says so, and so does the file.
    default = _load(path)
    assert isinstance(default[-1], LoadFailure)
    assert default[-1].reason == "no record has text in its 'text' field (json_text_field)"


def test_plain_json_array_and_single_object(tmp_path: Path) -> None:
    array = tmp_path / "faq.json"
    array.write_text(json.dumps([{"q": 1, "text": "Tides follow the moon."}, {"text": "Salt."}]))
    doc = _doc(array)
    assert _sections(doc) == [(("Record 1",), "Tides follow the moon."), (("Record 2",), "Salt.")]
    single = tmp_path / "one.json"
    single.write_text(json.dumps({"title": "Kelp", "text": "Kelp forests grow fast."}, indent=2))
    doc = _doc(single)
    assert (doc.title, doc.text) == ("Kelp", "Kelp forests grow fast.")
    line = tmp_path / "one.jsonl"
    line.write_text(json.dumps({"title": "Kelp", "text": "Kelp forests grow fast."}) + "\n")
    assert (_doc(line).title, _doc(line).text) == ("Kelp", "Kelp forests grow fast.")


def test_beir_corpora_are_still_one_document_per_record(tmp_path: Path) -> None:
    beir = tmp_path / "corpus.jsonl"
    beir.write_text(
        "{oops\n"
        + json.dumps({"title": "x", "text": "no id here"})
        + "\n"
        + json.dumps({"_id": "d1", "title": "Whales", "text": "A whale.", "extra": 1})
        + "\n"
    )
    out = _load(beir)
    assert [(d.name, d.reason) for d in out if isinstance(d, LoadFailure)] == [
        ("corpus.jsonl:1", "invalid JSON (Expecting property name enclosed in double quotes)"),
        ("corpus.jsonl:2", "missing _id"),
    ]
    assert [(d.id, d.format) for d in out if isinstance(d, LoadedDocument)] == [("d1", "beir")]
    # "id" with only BEIR's fields is a corpus too; "id" beside other fields is plain records.
    ids = tmp_path / "ids.jsonl"
    ids.write_text(json.dumps({"id": "7", "title": "T", "text": "Seven."}) + "\n")
    assert _doc(ids).id == "7"
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "7", "text": "Seven.", "score": 3}) + "\n")
    assert _doc(rows).format == "json"


def test_plain_json_records_over_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"text": f"note {i}"}) + "\n" for i in range(4)))
    failure = _failure(_load(path, LoadOptions(max_records=3)))
    assert failure.reason == "more than 3 records (rows); 3 is the limit per file"


# -- broken archives and the batch --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make"), [("deck.pptx", make_pptx), ("crew.xlsx", make_xlsx), ("book.epub", make_epub)]
)
def test_archive_formats_refuse_damage_and_bombs(
    tmp_path: Path, name: str, make: Callable[[Path], Path]
) -> None:
    kind = Path(name).suffix
    path = make(tmp_path / name)
    bomb = _failure(_load(path, LoadOptions(max_unpacked_bytes=1000)))
    assert bomb.reason.startswith(f"{kind} unpacks to ") and "over the limit of 1000" in bomb.reason
    failure = _failure(_load(truncated(path)))
    assert failure.name == str(path)
    assert failure.reason.startswith(f"corrupt {kind}: not a readable zip archive")
    # A real zip archive that is not this format: its parts are missing.
    other = tmp_path / f"other{kind}"
    other.write_bytes(make_docx_bytes(tmp_path))
    failure = _failure(_load(other))
    assert failure.name == str(other) and failure.reason.startswith(f"corrupt {kind}: ")
    assert "BytesIO" not in failure.reason


def make_docx_bytes(tmp_path: Path) -> bytes:
    from tests.ingest.samples import make_docx

    return make_docx(tmp_path / "x.docx", "X", {"A": "a"}).read_bytes()


def test_one_broken_file_per_format_is_named_and_the_batch_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    make_pptx(root / "deck.pptx")
    make_xlsx(root / "crew.xlsx")
    make_epub(root / "book.epub")
    (root / "ports.csv").write_text("port,country\nRotterdam,Netherlands\n")
    (root / "notes.jsonl").write_text(json.dumps({"text": "Whales sing."}) + "\n")
    truncated(make_pptx(root / "broken.pptx"))
    truncated(make_xlsx(root / "broken.xlsx"))
    truncated(make_epub(root / "broken.epub"))
    (root / "broken.csv").write_bytes(b"port,country\nK\xf6ln,Germany\n")
    (root / "broken.jsonl").write_text("{not json\n")
    files, skipped = discover([root])
    assert skipped == []
    loaded = [item for f in files for item in _load(f)]
    docs = sorted(Path(d.source).name for d in loaded if isinstance(d, LoadedDocument))
    assert docs == ["book.epub", "crew.xlsx", "deck.pptx", "notes.jsonl", "ports.csv"]
    failed = {
        Path(f.name).name.split(":")[0]: f.reason for f in loaded if isinstance(f, LoadFailure)
    }
    assert sorted(failed) == [
        "broken.csv",
        "broken.epub",
        "broken.jsonl",
        "broken.pptx",
        "broken.xlsx",
    ]
    assert failed["broken.csv"] == "not valid UTF-8 (byte 0xf6 at offset 14)"


def _big_xlsx(path: Path) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    for n, name in enumerate(["Whales", "Reefs"]):
        sheet = book.active if n == 0 else book.create_sheet()
        sheet.title = name
        sheet.append(["Name", "Habitat", "Notes"])
        for i in range(12):
            sheet.append([f"{name} {i}", "ocean", f"seen near the reef on dive {i} of the season"])
    book.save(str(path))
    return path


def test_chunks_of_the_new_formats_carry_their_heading_path(tmp_path: Path) -> None:
    chunker = Chunker(KeywordEmbedder(max_seq_length=66), ChunkerConfig(24, 4))
    titles: dict[str, set[str]] = {}
    for doc in (
        _doc(make_pptx(tmp_path / "ocean.pptx")),
        _doc(_big_xlsx(tmp_path / "crew.xlsx")),
        _doc(make_epub(tmp_path / "ocean.epub")),
    ):
        chunks = chunker.split(doc.id, doc.title, doc.text, doc.format, doc.sections)
        titles[doc.format] = {c.title for c in chunks}
        for c in chunks:
            # The title is the document's, then the heading path where the chunk starts (or a
            # shorter one, where small sections were merged); never a heading alone.
            doc_title, *path = c.title.split(TITLE_SEPARATOR)
            [where] = [s for s in doc.sections if s.start <= c.start_char < s.end]
            assert doc_title == doc.title and list(where.path[: len(path)]) == path
            assert any(not line.startswith("# ") for line in c.text.splitlines() if line.strip())
    assert titles["xlsx"] == {"crew > Whales", "crew > Reefs"}
    assert "Ocean deck > Whales" in titles["pptx"]
    assert "The Ocean Book > Whales" in titles["epub"]
