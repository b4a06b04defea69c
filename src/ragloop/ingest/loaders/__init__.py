"""File discovery and loaders: text, Markdown, reStructuredText, HTML, PDF, Word, PowerPoint,
Excel, CSV, EPUB, and JSON/JSONL (BEIR corpora or plain records).

Each loader turns one file into documents (a BEIR corpus gives one per record). A problem with a
file or a record is reported as a ``LoadFailure`` naming it, with a one-line reason; the batch
goes on. Rooms: ``scan`` (discovery, safe reading, ``load_file``), ``registry`` (extension ->
loader), ``base`` (shared types and helpers), ``text`` (decoding; txt, md, rst), ``html``,
``pdf``, ``office`` (docx, pptx), ``tables`` (csv, xlsx), ``ebook`` (epub), ``jsondocs``.
"""

from __future__ import annotations

from ragloop.ingest.loaders.base import (
    DEFAULT_OPTIONS,
    Loaded,
    LoadedDocument,
    Loader,
    LoadFailure,
    LoadOptions,
    Outline,
    file_document_id,
    single_document,
)
from ragloop.ingest.loaders.ebook import load_epub
from ragloop.ingest.loaders.html import html_parts, html_to_markdownish, load_html
from ragloop.ingest.loaders.jsondocs import is_beir, load_beir, load_json
from ragloop.ingest.loaders.office import load_docx, load_pptx
from ragloop.ingest.loaders.pdf import load_pdf
from ragloop.ingest.loaders.registry import LOADERS, loader_for
from ragloop.ingest.loaders.scan import discover, load_file, not_regular
from ragloop.ingest.loaders.tables import load_csv, load_xlsx
from ragloop.ingest.loaders.text import decode_text, load_markdown, load_rst, load_text

# The names these helpers had when the loaders were one module.
_decode = decode_text
_single = single_document
_html_parts = html_parts

__all__ = [
    "DEFAULT_OPTIONS",
    "LOADERS",
    "LoadFailure",
    "LoadOptions",
    "Loaded",
    "LoadedDocument",
    "Loader",
    "Outline",
    "decode_text",
    "discover",
    "file_document_id",
    "html_parts",
    "html_to_markdownish",
    "is_beir",
    "load_beir",
    "load_csv",
    "load_docx",
    "load_epub",
    "load_file",
    "load_html",
    "load_json",
    "load_markdown",
    "load_pdf",
    "load_pptx",
    "load_rst",
    "load_text",
    "load_xlsx",
    "loader_for",
    "not_regular",
    "single_document",
]
