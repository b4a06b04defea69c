"""Chunk titles with a heading path, as sources show them."""

from ragloop.core.records import display_title, section_heading


def test_section_heading_is_the_last_part_of_a_path() -> None:
    assert section_heading("Ingest > Formats") == "Formats"
    assert section_heading("Guide > … > How do I install it?") == "How do I install it?"
    assert section_heading("Ingest") == ""
    assert section_heading("") == ""


def test_a_source_shows_the_full_document_title_and_the_section() -> None:
    assert display_title("Ingest", "Ingest > Formats") == "Ingest > Formats"
    # the chunk title may hold a shortened document title; the full one is shown
    long = "A very long document title indeed"
    assert display_title(long, "A very long … > Setup > Linux") == f"{long} > Setup > Linux"
    assert display_title("Ingest", "Ingest") == "Ingest"
    assert display_title("Whales", "Wha …") == "Whales"  # no section: the document title
    assert display_title(None, "Ingest > Formats") == "Ingest > Formats"  # document gone
    assert display_title("", "") == ""
