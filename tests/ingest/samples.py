"""Small documents of every supported format, written into a temp dir by tests."""

from __future__ import annotations

import json
from pathlib import Path


def make_pdf(path: Path, paragraphs: list[str], title: str = "") -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    if title:
        pdf.set_title(title)
    for para in paragraphs:
        pdf.multi_cell(0, 6, para)
        pdf.ln(3)
    pdf.output(str(path))
    return path


def make_docx(path: Path, title: str, sections: dict[str, str]) -> Path:
    import docx

    document = docx.Document()
    document.add_heading(title, level=0)
    for heading, body in sections.items():
        document.add_heading(heading, level=1)
        document.add_paragraph(body)
    document.save(str(path))
    return path


def write_corpus(root: Path) -> Path:
    """One file of each format about distinct topics (keywords in tests.fakes.DEFAULT_VOCAB)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "scurvy.md").write_text(
        "# Scurvy\n\nScurvy struck sailors on long ocean voyages.\n\n"
        "## Cause\n\nA lack of vitamin C causes scurvy; citrus fruit prevents it.\n"
    )
    (root / "volcano.txt").write_text("A volcano erupts lava. Magma rises from below the crust.\n")
    (root / "reef.rst").write_text(
        "Coral reefs\n===========\n\nCoral reef systems shelter ocean life.\n"
    )
    (root / "bread.html").write_text(
        "<html><head><title>Bread</title><script>var x=1;</script></head><body>"
        "<h1>Baking bread</h1><p>Bread needs flour and yeast.</p></body></html>"
    )
    make_pdf(root / "rail.pdf", ["The train runs on rail.", "A rail line links two towns."], "Rail")
    make_docx(
        root / "fruit.docx",
        "Fruit",
        {"Apples": "An apple a day.", "Citrus": "An orange is citrus."},
    )
    with (root / "corpus.jsonl").open("w") as fh:
        for doc in [
            {"_id": "w1", "title": "Whales", "text": "A whale is an ocean animal."},
            {"_id": "p1", "title": "Python", "text": "A python is a snake."},
        ]:
            fh.write(json.dumps(doc) + "\n")
    return root
