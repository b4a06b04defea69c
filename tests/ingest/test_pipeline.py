import json
from pathlib import Path

import pytest

from ragloop.core.errors import StoreError
from ragloop.core.retriever import search
from ragloop.core.runtime import Runtime
from ragloop.ingest.pipeline import Ingestor, delete_documents
from tests.fakes import KeywordEmbedder
from tests.ingest.samples import make_pdf, write_corpus


@pytest.fixture
def fake_runtime(fake_runtime_any: Runtime) -> Runtime:
    """Every test here runs once on a SQLite catalog and once on a PostgreSQL one."""
    return fake_runtime_any


def assert_consistent(rt: Runtime) -> None:
    """Catalog chunks and the active collection's vectors are the same set."""
    index = rt.active_index()
    catalog_ids = {c.id for batch in rt.catalog.iter_chunks() for c in batch}
    assert rt.store.ids(index.collection) == catalog_ids
    for doc in rt.catalog.list_documents(limit=10_000):
        assert len(rt.catalog.chunks_of(doc.id)) == doc.n_chunks


def test_first_ingest_then_unchanged_costs_no_embedding(
    tmp_path: Path, fake_runtime: Runtime, fake_embedder: KeywordEmbedder
) -> None:
    root = write_corpus(tmp_path / "docs")
    first = Ingestor(fake_runtime).ingest([root])
    assert first.added == 8 and first.failed == []
    assert first.chunks_embedded == fake_runtime.catalog.counts()["chunks"] >= 8
    assert_consistent(fake_runtime)
    calls = len(fake_embedder.calls)
    second = Ingestor(fake_runtime).ingest([root])
    assert (second.added, second.updated, second.unchanged) == (0, 0, 8)
    assert second.chunks_embedded == 0
    assert len(fake_embedder.calls) == calls  # not one embed call


def test_changed_document_replaces_exactly_its_own_chunks(
    tmp_path: Path, fake_runtime: Runtime
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    paragraphs = [" ".join([w] * 20) for w in ("whale", "coral", "lava", "bread")]
    (root / "a.md").write_text("\n\n".join(paragraphs))
    (root / "b.md").write_text("scurvy vitamin citrus")
    Ingestor(fake_runtime).ingest([root])
    before = {
        d.id: {c.id for c in fake_runtime.catalog.chunks_of(d.id)}
        for d in fake_runtime.catalog.list_documents()
    }
    paragraphs[2] = " ".join(["magma"] * 20)
    (root / "a.md").write_text("\n\n".join(paragraphs))
    report = Ingestor(fake_runtime).ingest([root])
    assert (report.updated, report.unchanged) == (1, 1)
    after = {
        d.id: {c.id for c in fake_runtime.catalog.chunks_of(d.id)}
        for d in fake_runtime.catalog.list_documents()
    }
    a_id = next(
        i
        for i, d in ((d.id, d) for d in fake_runtime.catalog.list_documents())
        if d.source.endswith("a.md")
    )
    b_id = next(i for i in after if i != a_id)
    assert after[b_id] == before[b_id]
    assert report.chunks_embedded == len(after[a_id] - before[a_id]) >= 1
    assert report.chunks_deleted == len(before[a_id] - after[a_id]) >= 1
    assert report.chunks_reused == len(after[a_id] & before[a_id]) >= 3
    assert_consistent(fake_runtime)
    index = fake_runtime.active_index()
    top = search(index, fake_runtime.store, fake_runtime.catalog, "magma", k=1)[0]
    assert "magma" in top.chunk.text


def test_prune_removes_documents_of_deleted_files_and_their_vectors(
    tmp_path: Path, fake_runtime: Runtime
) -> None:
    root = write_corpus(tmp_path / "docs")
    Ingestor(fake_runtime).ingest([root])
    (root / "volcano.txt").unlink()
    lines = (root / "corpus.jsonl").read_text().splitlines()
    (root / "corpus.jsonl").write_text(lines[0] + "\n")  # p1 leaves the corpus
    kept = Ingestor(fake_runtime).ingest([root])  # without --prune nothing is removed
    assert kept.removed == 0
    report = Ingestor(fake_runtime).ingest([root], prune=True)
    assert report.removed == 2
    assert fake_runtime.catalog.get_document("p1") is None
    assert fake_runtime.catalog.counts()["documents"] == 6
    assert_consistent(fake_runtime)
    index = fake_runtime.active_index()
    hits = search(index, fake_runtime.store, fake_runtime.catalog, "lava magma volcano", k=10)
    assert all("volcano" not in h.source for h in hits)


def test_prune_keeps_documents_of_files_that_failed_to_load(
    tmp_path: Path, fake_runtime: Runtime
) -> None:
    root = write_corpus(tmp_path / "docs")
    Ingestor(fake_runtime).ingest([root])
    (root / "volcano.txt").write_bytes(b"caf\xe9 broken now")
    report = Ingestor(fake_runtime).ingest([root], prune=True)
    assert report.removed == 0
    assert [f["reason"][:19] for f in report.failed] == ["not valid UTF-8 (by"]
    assert fake_runtime.catalog.counts()["documents"] == 8


def test_bad_files_are_skipped_and_the_batch_goes_on(tmp_path: Path, fake_runtime: Runtime) -> None:
    root = write_corpus(tmp_path / "docs")
    (root / "empty.txt").write_text("")
    (root / "bin.txt").write_bytes(b"\x00\x01\x02")
    report = Ingestor(fake_runtime).ingest([root, tmp_path / "missing.md"])
    assert report.added == 8
    assert sorted(Path(f["name"]).name for f in report.failed) == [
        "bin.txt",
        "empty.txt",
        "missing.md",
    ]


def test_duplicate_and_foreign_ids_are_refused(tmp_path: Path, fake_runtime: Runtime) -> None:
    a = tmp_path / "a.jsonl"
    a.write_text(
        json.dumps({"_id": "1", "text": "whale"}) + "\n" + json.dumps({"_id": "1", "text": "coral"})
    )
    report = Ingestor(fake_runtime).ingest([a])
    assert report.added == 1 and "duplicate document id" in report.failed[0]["reason"]
    b = tmp_path / "b.jsonl"
    b.write_text(json.dumps({"_id": "1", "text": "lava"}))
    report = Ingestor(fake_runtime).ingest([b])
    assert report.added == 0 and "already belongs to" in report.failed[0]["reason"]
    assert fake_runtime.catalog.chunks_of("1")[0].text == "whale"


def test_crash_between_vectors_and_catalog_is_repaired(
    tmp_path: Path, fake_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_corpus(tmp_path / "docs")
    Ingestor(fake_runtime).ingest([root])
    (root / "scurvy.md").write_text("# Scurvy\n\nEntirely new text about lava and magma.\n")
    catalog = fake_runtime.catalog
    original = catalog.save_documents

    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise StoreError("simulated crash after the vector upsert")

    monkeypatch.setattr(catalog, "save_documents", crash)
    with pytest.raises(StoreError):
        Ingestor(fake_runtime).ingest([root])
    index = fake_runtime.active_index()
    # Chroma now holds vectors the catalog does not know: search must not return them...
    hits = search(index, fake_runtime.store, catalog, "lava magma", k=10)
    assert all("Entirely new" not in h.chunk.text for h in hits)
    assert sum(len(v) for v in catalog.journal_pending().values()) >= 1
    # ...and the next run repairs the store, then completes the work.
    monkeypatch.setattr(catalog, "save_documents", original)
    report = Ingestor(fake_runtime).ingest([root])
    assert report.updated == 1
    assert catalog.journal_pending() == {}
    assert_consistent(fake_runtime)


def test_delete_documents_removes_vectors(tmp_path: Path, fake_runtime: Runtime) -> None:
    root = write_corpus(tmp_path / "docs")
    Ingestor(fake_runtime).ingest([root])
    assert delete_documents(fake_runtime, ["w1"]) == 1
    assert fake_runtime.catalog.get_document("w1") is None
    assert_consistent(fake_runtime)


def test_unchanged_reingest_does_not_load_the_model(
    tmp_path: Path, fake_runtime: Runtime, fake_embedder: KeywordEmbedder
) -> None:
    from ragloop.core.embedding.base import EmbedderOptions, EmbedderRegistry
    from ragloop.core.runtime import open_runtime

    root = write_corpus(tmp_path / "docs")
    Ingestor(fake_runtime).ingest([root])
    loads: list[str] = []

    def counting(_opts: EmbedderOptions) -> KeywordEmbedder:
        loads.append("load")
        return fake_embedder

    registry = EmbedderRegistry()
    registry.register("fake-keyword", counting)
    fresh = open_runtime(fake_runtime.settings, registry=registry, store=fake_runtime.store)
    try:
        report = Ingestor(fresh).ingest([root])
        assert report.unchanged == report.documents_seen > 0 and loads == []
        first = sorted(root.rglob("*.md"))[0]
        first.write_text(first.read_text() + "\n\nA new paragraph about coral reefs.\n")
        report = Ingestor(fresh).ingest([root])
        assert report.updated == 1 and loads == ["load"]  # a changed file needs the model
        assert_consistent(fresh)
    finally:
        fresh.catalog.close()


def test_parser_warnings_are_reported_with_their_file(
    tmp_path: Path, fake_runtime: Runtime
) -> None:
    path = make_pdf(tmp_path / "rail.pdf", ["The train runs on rail."], "Rail")
    data = path.read_bytes()
    at = data.rindex(b"startxref")
    path.write_bytes(data[:at] + b"startxref\n12\n%%EOF\n")  # pypdf repairs the xref
    report = Ingestor(fake_runtime).ingest([path])
    assert report.added == 1 and report.failed == []
    assert report.warnings and {w["name"] for w in report.warnings} == {str(path)}
    assert any("startxref" in w["warning"] for w in report.warnings)
    assert report.to_dict()["warnings"] == report.warnings
