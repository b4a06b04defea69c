"""BEIR datasets: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` (with a header).

Relevance is graded (an integer per judgement; 0 or less means judged not relevant). A query is
scored when it has text and at least one relevant document, as in BEIR and sentence-transformers.
Malformed input fails with the file and line; qrels that name ids absent from the corpus or the
queries are only counted and warned about, as BEIR's tooling does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragloop.core.beir_corpus import corpus_lines, json_lines
from ragloop.core.errors import InvalidInputError
from ragloop.core.records import embedding_input

LAYOUT = "BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv"


@dataclass(frozen=True)
class Document:
    """One corpus document."""

    id: str
    title: str
    text: str

    @property
    def embedding_input(self) -> str:
        """The text a model sees, joined exactly as ingest joins a chunk's title and text."""
        return embedding_input(self.title, self.text)


@dataclass(frozen=True)
class Query:
    """One query, with its reference answers when the set has them (SQuAD, Financial QA)."""

    id: str
    text: str
    answers: tuple[str, ...] = ()


@dataclass
class BeirDataset:
    """A loaded split: the whole corpus, the scored queries and their graded judgements."""

    name: str
    path: Path
    split: str
    corpus: dict[str, Document]
    queries: dict[str, Query]
    qrels: dict[str, dict[str, int]]
    warnings: list[str] = field(default_factory=list)

    def relevant(self, query_id: str) -> set[str]:
        """Ids of the documents judged relevant (grade above 0) to a query."""
        return {d for d, g in self.qrels.get(query_id, {}).items() if g > 0}


def dataset_dir(path: Path) -> Path:
    """The folder holding the BEIR files: ``path`` itself, or its ``beir/`` subfolder."""
    if not path.is_dir():
        raise InvalidInputError(f"dataset folder {path} does not exist ({LAYOUT})")
    if not (path / "corpus.jsonl").exists() and (path / "beir" / "corpus.jsonl").exists():
        return path / "beir"
    return path


def available_splits(path: Path) -> list[str]:
    """Names of the splits a dataset folder has qrels for."""
    qrels = dataset_dir(path) / "qrels"
    return sorted(p.stem for p in qrels.glob("*.tsv")) if qrels.is_dir() else []


def _require(path: Path) -> Path:
    if not path.is_file():
        raise InvalidInputError(f"dataset file {path} is missing ({LAYOUT})")
    return path


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as fh:
        for lineno, obj in json_lines(fh):
            if isinstance(obj, InvalidInputError):
                raise InvalidInputError(f"{path}:{lineno}: {obj.message}")
            if not isinstance(obj, dict):
                raise InvalidInputError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, obj


def _record_id(path: Path, lineno: int, obj: dict[str, Any], seen: dict[str, int]) -> str:
    raw = obj.get("_id")
    if raw is None or str(raw).strip() == "":
        raise InvalidInputError(f"{path}:{lineno}: missing _id")
    rid = str(raw)
    if rid in seen:
        raise InvalidInputError(
            f"{path}:{lineno}: duplicate _id {rid!r} (first on line {seen[rid]})"
        )
    seen[rid] = lineno
    return rid


def load_corpus(path: Path) -> dict[str, Document]:
    """Documents by id from a BEIR ``corpus.jsonl``, in file order.

    Lines are parsed by ``core.beir_corpus``, as ingest parses a corpus file; any bad line or a
    repeated id refuses the dataset, naming the file and line.
    """
    out: dict[str, Document] = {}
    seen: dict[str, int] = {}
    with _require(path).open(encoding="utf-8-sig") as fh:
        for lineno, parsed in corpus_lines(fh):
            if isinstance(parsed, InvalidInputError):
                raise InvalidInputError(f"{path}:{lineno}: {parsed.message}")
            doc_id = _record_id(path, lineno, {"_id": parsed.id}, seen)
            out[doc_id] = Document(doc_id, parsed.title, parsed.text)
    if not out:
        raise InvalidInputError(f"{path} holds no documents")
    return out


def _answers(metadata: Any) -> tuple[str, ...]:
    # SQuAD-style sets carry a list under "answers", Financial QA one string under "answer".
    if not isinstance(metadata, dict):
        return ()
    many = metadata.get("answers")
    if isinstance(many, list):
        return tuple(str(a) for a in many if str(a).strip())
    one = metadata.get("answer")
    return (str(one),) if isinstance(one, str) and one.strip() else ()


def load_queries(path: Path) -> dict[str, Query]:
    """Queries by id from a BEIR ``queries.jsonl``, in file order (empty texts included)."""
    out: dict[str, Query] = {}
    seen: dict[str, int] = {}
    for lineno, obj in _jsonl(_require(path)):
        qid = _record_id(path, lineno, obj, seen)
        text = obj.get("text") or ""
        if not isinstance(text, str):
            raise InvalidInputError(f"{path}:{lineno}: query {qid!r} text is not a string")
        # An empty query is kept here (real sets have a few) and skipped by load_beir.
        out[qid] = Query(qid, text, _answers(obj.get("metadata")))
    return out


def _grade(path: Path, lineno: int, raw: str) -> int:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value.is_integer():
        raise InvalidInputError(f"{path}:{lineno}: score {raw!r} is not an integer grade")
    return int(value)


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Graded judgements ``{query_id: {doc_id: grade}}`` from a BEIR qrels TSV with a header."""
    out: dict[str, dict[str, int]] = {}
    header_seen = False
    with _require(path).open(encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t") if "\t" in line else line.split()
            if not header_seen:
                # BEIR readers skip the first line unread; a file without one would silently
                # lose its first judgement, so a header that parses as a score is refused.
                if len(fields) == 3 and _is_number(fields[2]):
                    raise InvalidInputError(
                        f"{path}:{lineno}: no header line; BEIR qrels start with "
                        "'query-id<TAB>corpus-id<TAB>score'"
                    )
                header_seen = True
                continue
            if len(fields) != 3 or not fields[0].strip() or not fields[1].strip():
                raise InvalidInputError(
                    f"{path}:{lineno}: expected 3 tab-separated fields "
                    f"(query-id, corpus-id, score), got {len(fields)}"
                )
            qid, doc_id = fields[0].strip(), fields[1].strip()
            out.setdefault(qid, {})[doc_id] = _grade(path, lineno, fields[2].strip())
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _example(ids: list[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:3])
    return shown + (", ..." if len(ids) > 3 else "")


def load_beir(path: Path, split: str = "test") -> BeirDataset:
    """Load one split of a BEIR dataset folder (or of its ``beir/`` subfolder).

    The corpus is loaded whole (retrieval runs over all of it); ``queries`` keeps only the
    queries this split scores, in ``queries.jsonl`` order. Judgements naming unknown documents
    stay (they count as relevant and can never be retrieved, as in BEIR) and unknown queries are
    dropped; both are counted in ``warnings``.
    """
    root = dataset_dir(path)
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        have = ", ".join(available_splits(root)) or "none"
        raise InvalidInputError(
            f"dataset file {qrels_path} is missing: no split {split!r} (splits here: {have})"
        )
    corpus = load_corpus(root / "corpus.jsonl")
    all_queries = load_queries(root / "queries.jsonl")
    qrels = load_qrels(qrels_path)
    rel = f"qrels/{split}.tsv"
    warnings: list[str] = []
    blank = [d for d, doc in corpus.items() if not (doc.title.strip() or doc.text.strip())]
    if blank:
        warnings.append(
            f"corpus.jsonl: {len(blank)} documents have no title or text ({_example(blank)}); "
            "they are kept and embedded as empty text, as in BEIR"
        )
    missing_q = [q for q in qrels if q not in all_queries]
    if missing_q:
        n = sum(len(qrels[q]) for q in missing_q)
        warnings.append(
            f"{rel}: {n} judgements name {len(missing_q)} query ids not in queries.jsonl "
            f"({_example(missing_q)}); those queries are skipped"
        )
    dangling = sorted({d for q in qrels.values() for d in q if d not in corpus})
    if dangling:
        n = sum(1 for q in qrels.values() for d in q if d not in corpus)
        warnings.append(
            f"{rel}: {n} judgements name {len(dangling)} corpus ids not in corpus.jsonl "
            f"({_example(dangling)}); they stay relevant but can never be retrieved"
        )
    unjudged = [q for q in qrels if q in all_queries and not any(g > 0 for g in qrels[q].values())]
    if unjudged:
        warnings.append(
            f"{rel}: {len(unjudged)} queries have no relevant document and are not scored"
        )
    judged = {q: v for q, v in all_queries.items() if any(g > 0 for g in qrels.get(q, {}).values())}
    scored = {q: v for q, v in judged.items() if v.text.strip()}
    if len(scored) < len(judged):
        empty = [q for q in judged if q not in scored]
        warnings.append(
            f"queries.jsonl: {len(empty)} queries of this split have no text "
            f"({_example(empty)}); they are skipped"
        )
    if not scored:
        raise InvalidInputError(f"{qrels_path}: no query of this split has a relevant document")
    name = root.parent.name if root.name == "beir" else root.name
    return BeirDataset(
        name=name,
        path=root,
        split=split,
        corpus=corpus,
        queries=scored,
        qrels={q: dict(qrels[q]) for q in scored},
        warnings=warnings,
    )
