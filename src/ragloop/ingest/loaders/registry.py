"""Which loader reads which file extension."""

from __future__ import annotations

from pathlib import Path

from ragloop.core.errors import UnsupportedFormatError
from ragloop.ingest.loaders.base import Loader
from ragloop.ingest.loaders.ebook import load_epub
from ragloop.ingest.loaders.html import load_html
from ragloop.ingest.loaders.jsondocs import load_json
from ragloop.ingest.loaders.office import load_docx, load_pptx
from ragloop.ingest.loaders.pdf import load_pdf
from ragloop.ingest.loaders.tables import load_csv, load_xlsx
from ragloop.ingest.loaders.text import load_markdown, load_rst, load_text

LOADERS: dict[str, Loader] = {
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".rst": load_rst,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
    ".pptx": load_pptx,
    ".xlsx": load_xlsx,
    ".csv": load_csv,
    ".epub": load_epub,
    ".jsonl": load_json,
    ".json": load_json,
}


def loader_for(path: Path) -> Loader:
    """The loader for a file's extension, or UnsupportedFormatError listing the known ones."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise UnsupportedFormatError(
            f"unsupported file type {path.suffix or '(none)'!r}; supported: "
            + ", ".join(sorted(LOADERS))
        )
    return loader
