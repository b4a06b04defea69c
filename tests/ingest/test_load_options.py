"""How files are read comes from the settings: ``RAGLOOP_JSON_TEXT_FIELD`` and the per-file
record caps reach the loaders through the pipeline, as ``ragloop ingest`` runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ragloop.core.runtime as runtime_module
from ragloop.cli.main import app
from ragloop.core.runtime import open_runtime
from ragloop.core.settings import Settings
from ragloop.ingest.loaders import LoadOptions
from ragloop.ingest.pipeline import load_options
from tests.fakes import KeywordEmbedder, fake_registry


def _ingest(folder: Path, data: Path, **env: str) -> tuple[int, dict[str, Any]]:
    variables = {"RAGLOOP_EMBEDDER": "fake-keyword", "RAGLOOP_DATA_DIR": str(data)} | env
    result = CliRunner().invoke(app, ["ingest", str(folder), "--json"], env=variables)
    return result.exit_code, json.loads(result.stdout)


def test_settings_make_the_load_options() -> None:
    assert load_options(Settings()) == LoadOptions()
    custom = Settings(json_text_field="body", max_file_records=7, max_file_record_chars=99)
    assert load_options(custom) == LoadOptions(json_text_field="body", max_records=7, max_chars=99)


def test_the_cli_reads_the_configured_json_text_field_and_record_caps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder: KeywordEmbedder
) -> None:
    monkeypatch.setattr(runtime_module, "default_registry", lambda: fake_registry(fake_embedder))
    folder = tmp_path / "docs"
    folder.mkdir()
    records = [
        {"title": "Whales", "body": "A whale swims in the ocean.", "text": "ignored"},
        {"title": "Bread", "body": "Bread needs flour and yeast."},
    ]
    (folder / "notes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    code, report = _ingest(folder, tmp_path / "body", RAGLOOP_JSON_TEXT_FIELD="body")
    assert (code, report["added"], report["failed"]) == (0, 1, [])
    settings = Settings(data_dir=tmp_path / "body", embedder="fake-keyword")
    rt = open_runtime(settings, registry=fake_registry(fake_embedder))
    try:
        text = " ".join(c.text for batch in rt.catalog.iter_chunks() for c in batch)
    finally:
        rt.close()
    assert "whale swims" in text and "flour" in text and "ignored" not in text

    # The default field is "text": the second record has none, and is reported by line.
    code, report = _ingest(folder, tmp_path / "text")
    assert (code, report["added"]) == (3, 1)
    [failed] = report["failed"]
    assert failed["name"].endswith("notes.jsonl:2")

    # The record cap per file: a CSV of three rows is refused at two.
    (folder / "crew.csv").write_text("name,role\nAnn,captain\nBo,cook\nCy,diver\n")
    code, report = _ingest(
        folder, tmp_path / "caps", RAGLOOP_JSON_TEXT_FIELD="body", RAGLOOP_MAX_FILE_RECORDS="2"
    )
    assert (code, report["added"]) == (3, 1)
    [failed] = report["failed"]
    assert failed["name"].endswith("crew.csv")
    assert failed["reason"] == "more than 2 records (rows); 2 is the limit per file"
    code, report = _ingest(
        folder,
        tmp_path / "chars",
        RAGLOOP_JSON_TEXT_FIELD="body",
        RAGLOOP_MAX_FILE_RECORD_CHARS="30",
    )
    assert report["added"] == 0 and len(report["failed"]) == 2
    assert all("more than 30 characters" in f["reason"] for f in report["failed"])
