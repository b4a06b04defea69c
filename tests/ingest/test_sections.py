"""Heading paths found by the loaders for Markdown, reStructuredText and HTML."""

import itertools
from pathlib import Path

from ragloop.ingest.loaders import LoadedDocument, load_file
from ragloop.ingest.sections import Section, markdown_sections, rst_sections

MB = 1024 * 1024


def _paths(text: str, sections: list[Section]) -> list[tuple[tuple[str, ...], str]]:
    return [(s.path, text[s.body : s.end].strip()) for s in sections]


def _load(path: Path, content: str) -> LoadedDocument:
    path.write_text(content)
    [doc] = load_file(path, 50 * MB)
    assert isinstance(doc, LoadedDocument), doc
    return doc


def test_markdown_paths_nest_and_code_comments_are_not_headings() -> None:
    text = (
        "Intro text.\n\n# Guide\n\nAbout.\n\n## Install\n\n```sh\n# not a heading\npip x\n```\n\n"
        "### From source\n\nBuild it.\n\n## Use ##\n\nRun it.\n\nSetext two\n----------\n\nMore."
    )
    got = _paths(text, markdown_sections(text))
    assert got == [
        ((), "Intro text."),
        (("Guide",), "About."),
        (("Guide", "Install"), "```sh\n# not a heading\npip x\n```"),
        (("Guide", "Install", "From source"), "Build it."),
        (("Guide", "Use"), "Run it."),
        (("Guide", "Setext two"), "More."),
    ]


def test_sections_tile_the_text() -> None:
    text = "pre\n\n# A\n\na\n\n## B\n\nb\n\n# C\n\nc"
    sections = markdown_sections(text)
    assert sections[0].start == 0 and sections[-1].end == len(text)
    for left, right in itertools.pairwise(sections):
        assert left.end == right.start
        assert left.start <= left.body <= left.end


def test_rst_levels_follow_the_order_styles_first_appear() -> None:
    text = (
        "=====\nGuide\n=====\n\nAbout.\n\nInstall\n-------\n\nSteps.\n\n"
        "Detail\n~~~~~~\n\nFine print.\n\nUsage\n-----\n\nRun it.\n\n    Indented\n    --------\n"
    )
    got = _paths(text, rst_sections(text))
    assert got == [
        (("Guide",), "About."),
        (("Guide", "Install"), "Steps."),
        (("Guide", "Install", "Detail"), "Fine print."),
        (("Guide", "Usage"), "Run it.\n\n    Indented\n    --------"),
    ]


def test_loaders_hand_over_sections_with_offsets_into_the_clean_text(tmp_path: Path) -> None:
    md = _load(tmp_path / "a.md", "# Title\r\n\r\nBody.\r\n\r\n## Part\r\n\r\nMore.\r\n")
    assert [(s.path, md.text[s.start : s.body]) for s in md.sections] == [
        (("Title",), "# Title"),
        (("Title", "Part"), "## Part"),
    ]
    rst = _load(tmp_path / "a.rst", "Title\n=====\n\nBody.\n\nPart\n----\n\nMore.\n")
    assert [s.path for s in rst.sections] == [("Title",), ("Title", "Part")]
    txt = _load(tmp_path / "a.txt", "# Not a heading in plain text\n\nBody.")
    assert txt.sections == ()


def test_html_sections_come_from_real_heading_tags(tmp_path: Path) -> None:
    html = (
        "<html><head><title>Page</title></head><body><h1>Top</h1><p>Intro.</p>"
        "<p># hashtag line, not a heading</p><h2>Sub\n  part</h2><p>Body.</p>"
        "<h3></h3><h3>Deep</h3><p>Deeper.</p></body></html>"
    )
    doc = _load(tmp_path / "a.html", html)
    assert doc.title == "Page"
    assert [s.path for s in doc.sections] == [
        ("Top",),
        ("Top", "Sub part"),
        ("Top", "Sub part", "Deep"),
    ]
    first = doc.sections[0]
    assert "# hashtag line" in doc.text[first.body : first.end]
