"""JSON and JSON Lines: a BEIR corpus (a document per record) or plain records (one document).

A file is a BEIR corpus when one of its records has ``_id``, or has ``id`` and no fields but
``title``, ``text`` and ``metadata``; such records are parsed by ``core.beir_corpus``, as the
eval datasets parse them. Any other file is one document whose records are its sections: each
record's text is the field ``LoadOptions.json_text_field`` (default ``text``), under a heading
that is its ``title`` or its place in the file (a file of one record is just that record, its
``title`` the document's). A bad record fails alone; the rest loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ragloop.core.beir_corpus import CorpusRecord, corpus_record, json_lines
from ragloop.core.errors import DocumentError, InvalidInputError
from ragloop.ingest.cleaning import clean_text, one_line
from ragloop.ingest.loaders.base import (
    DEFAULT_OPTIONS,
    Loaded,
    LoadedDocument,
    LoadFailure,
    LoadOptions,
    Outline,
    RecordBudget,
    single_document,
)
from ragloop.ingest.loaders.text import decode_text

_BEIR_FIELDS = frozenset({"_id", "id", "title", "text", "metadata"})


class _Entry:
    """One record of the file: where it is, its heading when it has no title, its value."""

    def __init__(self, where: str, label: str, value: Any) -> None:
        self.where = where
        self.label = label
        self.value = value


def _entries(path: Path, raw: str) -> list[_Entry]:
    if raw.lstrip().startswith("["):
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
        return [_Entry(f"{path.name}[{i}]", f"Record {i + 1}", v) for i, v in enumerate(items)]
    lines = [_Entry(f"{path.name}:{n}", f"Line {n}", v) for n, v in json_lines(raw.splitlines())]
    if any(isinstance(e.value, InvalidInputError) for e in lines):
        try:  # not JSON Lines after all: one object written over several lines
            whole = json.loads(raw)
        except json.JSONDecodeError:
            return lines
        if isinstance(whole, dict):
            return [_Entry(path.name, "Record 1", whole)]
    return lines


def is_beir(records: Sequence[Any]) -> bool:
    """Whether decoded records are a BEIR corpus (see the module's docstring)."""
    return any(
        isinstance(r, dict) and ("_id" in r or ("id" in r and set(r) <= _BEIR_FIELDS))
        for r in records
    )


def load_json(path: Path, data: bytes, options: LoadOptions = DEFAULT_OPTIONS) -> Iterator[Loaded]:
    """A ``.json``/``.jsonl`` file: a BEIR corpus, or plain records (see the module)."""
    entries = _entries(path, decode_text(path, data))
    if not entries:
        raise DocumentError("no JSON records")
    if is_beir([e.value for e in entries]):
        yield from _beir(path, entries)
    else:
        yield from _plain(path, data, entries, options)


def load_beir(path: Path, data: bytes, options: LoadOptions = DEFAULT_OPTIONS) -> Iterator[Loaded]:
    """A BEIR corpus: JSON lines (or a JSON array) of ``{_id, title, text}``, one document each."""
    yield from _beir(path, _entries(path, decode_text(path, data)))


def _beir(path: Path, entries: Sequence[_Entry]) -> Iterator[Loaded]:
    resolved = str(path.resolve())  # once per file: per record it was a third of a re-scan
    for entry in entries:
        parsed: CorpusRecord | InvalidInputError
        if isinstance(entry.value, InvalidInputError):
            parsed = entry.value
        else:
            try:
                parsed = corpus_record(entry.value)
            except InvalidInputError as exc:
                parsed = exc
        yield _beir_document(path, resolved, parsed, entry.where)


def _beir_document(
    path: Path, resolved: str, parsed: CorpusRecord | InvalidInputError, where: str
) -> Loaded:
    if isinstance(parsed, InvalidInputError):
        return LoadFailure(where, parsed.message, str(path))
    if not parsed.text.strip():
        return LoadFailure(f"{where} (_id {parsed.id})", "missing or empty text", str(path))
    return LoadedDocument(
        id=parsed.id,
        path=resolved,
        source=f"{path.name}#{parsed.id}",
        title=clean_text(parsed.title),
        text=clean_text(parsed.text),
        format="beir",
        size_bytes=len(parsed.text.encode()),
        meta=parsed.metadata,
    )


def _plain(
    path: Path, data: bytes, entries: Sequence[_Entry], options: LoadOptions
) -> Iterator[Loaded]:
    """One document; each record with text a section under its title or its place."""
    field = options.json_text_field
    outline = Outline()
    budget = RecordBudget(options)
    title = ""
    for entry in entries:
        value = entry.value
        if isinstance(value, InvalidInputError):
            yield LoadFailure(entry.where, value.message, str(path))
            continue
        if not isinstance(value, dict):
            yield LoadFailure(entry.where, "expected a JSON object", str(path))
            continue
        text = value.get(field)
        if not isinstance(text, str) or not text.strip():
            yield LoadFailure(entry.where, _no_text(field, text), str(path))
            continue
        budget.take(text)
        heading = value.get("title")
        heading = one_line(heading) if isinstance(heading, str) else ""
        if len(entries) > 1:
            outline.heading(1, heading or entry.label)
        else:  # a single record: its title is the document's
            title = heading
        outline.add(text)
    if not outline.has_text:
        raise DocumentError(f"no record has text in its {field!r} field (json_text_field)")
    yield from single_document(
        path, data, "json", outline.text(), title or path.stem, outline.headings
    )


def _no_text(field: str, value: Any) -> str:
    if value is None:
        return f"no {field!r} field (json_text_field names the field that holds the text)"
    if isinstance(value, str):
        return f"empty {field!r} field"
    return f"the {field!r} field is not a string"
