"""Integrity checks over a data dir: token limits, catalog/vector and catalog/lexical
agreement."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ragloop.core.runtime import Runtime


@dataclass
class CheckReport:
    """What ``ragloop check`` found."""

    chunks: int = 0
    vectors: int = 0
    max_tokens: int = 0
    max_seq_length: int = 0
    over_limit: list[str] = field(default_factory=list)
    missing_vectors: int = 0
    orphan_vectors: int = 0
    pending_repairs: int = 0
    #: The lexical index's check (``LexicalCheck.to_dict``); None where the catalog has none.
    lexical: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when every chunk fits the model and the store and the lexical index match the
        catalog."""
        return not (
            self.over_limit
            or self.missing_vectors
            or self.orphan_vectors
            or self.pending_repairs
            or (self.lexical is not None and not self.lexical["ok"])
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (at most 20 offending chunk ids)."""
        out = asdict(self)
        out["over_limit"] = self.over_limit[:20]
        out["over_limit_count"] = len(self.over_limit)
        out["ok"] = self.ok
        return out


def check_index(runtime: Runtime, batch_size: int = 2000) -> CheckReport:
    """Re-count every stored chunk with the active model's own tokenizer (special tokens
    included), compare the active collection's ids with the catalog's, and check that every
    chunk has exactly one lexical entry (none orphaned, FTS5's integrity-check passing)."""
    index = runtime.active_index()
    emb = index.embedder
    report = CheckReport(max_seq_length=emb.max_seq_length)
    catalog_ids: set[str] = set()
    for batch in runtime.catalog.iter_chunks(batch_size):
        counts = emb.count_tokens([c.embedding_input for c in batch])
        for chunk, n in zip(batch, counts, strict=True):
            total = n + emb.special_tokens
            report.max_tokens = max(report.max_tokens, total)
            if total > emb.max_seq_length:
                report.over_limit.append(chunk.id)
            catalog_ids.add(chunk.id)
    vector_ids = runtime.store.ids(index.collection)
    report.chunks = len(catalog_ids)
    report.vectors = len(vector_ids)
    report.missing_vectors = len(catalog_ids - vector_ids)
    report.orphan_vectors = len(vector_ids - catalog_ids)
    report.pending_repairs = sum(len(v) for v in runtime.catalog.journal_pending().values())
    lexical = runtime.catalog.lexical
    if lexical is not None:
        report.lexical = lexical.verify().to_dict()
    return report
