"""The one reader of BEIR corpus records, shared by ingest and evaluation.

A BEIR ``corpus.jsonl`` holds one JSON object per line: ``{"_id", "title", "text"}`` and an
optional ``metadata`` object. Ingest (a corpus file is a batch of documents) and the eval
datasets (the corpus retrieval runs over) parse each line here, so a record means the same to
both; what to do with a bad record is the caller's choice (ingest reports it and goes on, eval
refuses the dataset).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ragloop.core.errors import InvalidInputError


@dataclass(frozen=True)
class CorpusRecord:
    """One corpus document as written in the file (text not cleaned)."""

    id: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def corpus_record(obj: Any) -> CorpusRecord:
    """Parse one decoded record; InvalidInputError with a one-line reason if it is not one.

    The id is ``_id`` (``id`` is accepted too); a missing or null title or text is empty, any
    other non-string is refused.
    """
    if not isinstance(obj, dict):
        raise InvalidInputError("expected a JSON object")
    raw = obj.get("_id", obj.get("id"))
    if raw is None or str(raw).strip() == "":
        raise InvalidInputError("missing _id")
    title, text = obj.get("title"), obj.get("text")
    title = "" if title is None else title
    text = "" if text is None else text
    if not isinstance(title, str) or not isinstance(text, str):
        raise InvalidInputError("title and text must be strings")
    meta = obj.get("metadata")
    return CorpusRecord(str(raw), title, text, dict(meta) if isinstance(meta, dict) else {})


def json_lines(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """Each non-blank line's number (from 1) with its decoded value, or an InvalidInputError."""
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            yield lineno, InvalidInputError(f"invalid JSON ({exc.msg})")


def corpus_lines(lines: Iterable[str]) -> Iterator[tuple[int, CorpusRecord | InvalidInputError]]:
    """Each non-blank line's number (from 1) with its record, or the error that refused it."""
    for lineno, obj in json_lines(lines):
        if isinstance(obj, InvalidInputError):
            yield lineno, obj
            continue
        try:
            yield lineno, corpus_record(obj)
        except InvalidInputError as exc:
            yield lineno, exc
