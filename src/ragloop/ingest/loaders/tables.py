"""Tables: CSV (the csv module, dialect sniffed) and Excel .xlsx (openpyxl).

Each row after the header row is a record, written as ``Header: value`` lines (empty cells
left out) with a blank line between records, so a chunk never separates a value from its
column name. A spreadsheet's sheets are sections under the sheet's name. Rows and the text they
make are capped per file (``LoadOptions``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ragloop.core.errors import DocumentError
from ragloop.ingest.cleaning import one_line
from ragloop.ingest.loaders.base import (
    DEFAULT_OPTIONS,
    PARSE_ERRORS,
    Loaded,
    LoadOptions,
    Outline,
    RecordBudget,
    check_zip,
    parse_error,
    single_document,
)
from ragloop.ingest.loaders.text import decode_text

_SNIFF_CHARS = 32 * 1024
_DELIMITERS = ",;\t|"


def cell_text(value: Any) -> str:
    """A cell's value on one line: whole floats without ``.0``, dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return one_line(str(value))


class _Records:
    """Turns rows into records under the first non-empty row, its header."""

    def __init__(self, budget: RecordBudget) -> None:
        self.budget = budget
        self.header: list[str] | None = None

    def records(self, rows: Iterable[Sequence[Any]]) -> Iterator[str]:
        for row in rows:
            cells = [cell_text(v) for v in row]
            if not any(cells):
                continue
            if self.header is None:
                self.header = [c or f"Column {i}" for i, c in enumerate(cells, start=1)]
                continue
            lines = [f"{self._name(i)}: {value}" for i, value in enumerate(cells, start=1) if value]
            record = "\n".join(lines)
            self.budget.take(record)
            yield record

    def _name(self, column: int) -> str:
        header = self.header or []
        return header[column - 1] if column <= len(header) else f"Column {column}"


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    """The CSV dialect of the first lines; when the sniffer cannot tell (quoted line breaks,
    a single column), the delimiter the header line holds most of, else a comma."""
    sample = text[:_SNIFF_CHARS]
    if len(text) > _SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # whole lines only
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        pass
    header = next((line for line in sample.splitlines() if line.strip()), "")
    counts = {d: header.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    if not counts[best]:
        return csv.excel

    class Header(csv.excel):
        delimiter = best

    return Header


def load_csv(path: Path, data: bytes, options: LoadOptions = DEFAULT_OPTIONS) -> Iterator[Loaded]:
    """CSV: the first row is the header, each later row a record (delimiter sniffed)."""
    text = decode_text(path, data)
    reader = csv.reader(io.StringIO(text, newline=""), _dialect(text))
    rows = _Records(RecordBudget(options))
    try:
        body = "\n\n".join(rows.records(reader))
    except csv.Error as exc:
        raise DocumentError(f"malformed CSV at line {reader.line_num}: {exc}") from None
    if not body:
        raise DocumentError("no rows under the header row" if rows.header else "no rows")
    yield from single_document(path, data, "csv", body, path.stem, [])


def load_xlsx(path: Path, data: bytes, options: LoadOptions = DEFAULT_OPTIONS) -> Iterator[Loaded]:
    """Excel .xlsx: each sheet a section under its name, its rows records under its header.

    Formulas give the value Excel last saved with them; the title is the workbook's own.
    """
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    check_zip(data, ".xlsx", options)
    outline = Outline()
    budget = RecordBudget(options)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            title = book.properties.title or ""
            for sheet in book.worksheets:
                records = list(_Records(budget).records(sheet.iter_rows(values_only=True)))
                if records:
                    outline.heading(1, sheet.title)
                    outline.add("\n\n".join(records))
        finally:
            book.close()
    except (*PARSE_ERRORS, InvalidFileException) as exc:
        raise parse_error(".xlsx", exc) from None
    if not outline.has_text:
        raise DocumentError("no rows under a header row in any sheet")
    yield from single_document(
        path, data, "xlsx", outline.text(), title or path.stem, outline.headings
    )
