"""PDF text through pypdf, with what pypdf logs about a damaged file kept as warnings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ragloop.core.errors import DocumentError
from ragloop.ingest.loaders.base import DEFAULT_OPTIONS, Loaded, LoadOptions, single_document


class _ThreadLogCapture(logging.Handler):
    """Keeps a logger's records in a list per capturing thread, off stderr.

    While any thread captures, the logger stops propagating; records of threads that are not
    capturing are handed to the root logger, as propagation would have done.
    """

    def __init__(self, logger_name: str) -> None:
        super().__init__(logging.DEBUG)
        self.logger_name = logger_name
        self._sinks: dict[int, list[str]] = {}
        self._guard = threading.Lock()
        self._propagate = True

    def emit(self, record: logging.LogRecord) -> None:
        sink = self._sinks.get(record.thread or 0)
        if sink is None:
            if self._propagate:
                logging.getLogger().handle(record)
            return
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        line = " ".join(message.split())
        if line and line not in sink:
            sink.append(line)

    @contextmanager
    def captured(self) -> Iterator[list[str]]:
        """The messages this thread logs (deduplicated, one line each) until the block ends."""
        logger = logging.getLogger(self.logger_name)
        ident = threading.get_ident()
        sink: list[str] = []
        with self._guard:
            if not self._sinks:
                self._propagate = logger.propagate
                logger.addHandler(self)
                logger.propagate = False
            self._sinks[ident] = sink
        try:
            yield sink
        finally:
            with self._guard:
                del self._sinks[ident]
                if not self._sinks:
                    logger.removeHandler(self)
                    logger.propagate = self._propagate


# pypdf reports the repairs it makes to a damaged file through the "pypdf" loggers.
_PYPDF_LOG = _ThreadLogCapture("pypdf")


def load_pdf(path: Path, data: bytes, options: LoadOptions = DEFAULT_OPTIONS) -> Iterator[Loaded]:
    """PDF text via pypdf; a truncated or damaged file is reported, not crashed on.

    What pypdf logs while reading the file becomes the document's ``warnings``.
    """
    import io

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not data.startswith(b"%PDF"):
        raise DocumentError("not a PDF (missing %PDF header)")
    with _PYPDF_LOG.captured() as logged:
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            pages = [page.extract_text() or "" for page in reader.pages]
            meta_title = (reader.metadata.title if reader.metadata else None) or ""
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            raise DocumentError(f"corrupt PDF: {exc.__class__.__name__}: {exc}") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text.strip():
        raise DocumentError("PDF has no extractable text (scanned images need OCR first)")
    yield from single_document(
        path, data, "pdf", text, str(meta_title) or path.stem, warnings=logged
    )
