"""The CLI end to end with the real bundled model and embedded Chroma."""

import json
from pathlib import Path

import pytest

from tests.ingest.samples import write_corpus
from tests.system.helpers import ragloop, ragloop_json

pytestmark = pytest.mark.integration


def test_ingest_query_status_check(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    data = tmp_path / "data"
    first = ragloop_json("ingest", str(root), data_dir=data)
    assert (first["added"], first["failed_count"]) == (8, 0)
    assert first["chunks_embedded"] >= 8
    again = ragloop_json("ingest", str(root), data_dir=data)
    assert (again["unchanged"], again["chunks_embedded"]) == (8, 0)

    result = ragloop_json("query", "What causes scurvy?", "--k", "3", data_dir=data)
    top = result["results"][0]
    assert top["title"] == "Scurvy"
    assert top["source"].endswith("scurvy.md")
    assert 0 < top["score"] <= 1
    assert [r["rank"] for r in result["results"]] == [1, 2, 3]
    assert result["results"][0]["score"] >= result["results"][1]["score"]

    status = ragloop_json("status", data_dir=data)
    assert status["documents"] == 8 and status["chunks"] == status["vectors"]
    assert status["active_model"]["model"] == "all-MiniLM-L6-v2"
    check = ragloop_json("check", data_dir=data)
    assert check["ok"] and check["max_tokens"] <= 256

    human = ragloop("query", "volcano lava", data_dir=data)
    assert human.returncode == 0 and "volcano" in human.stdout


def test_failed_files_are_named_and_exit_code_says_so(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "good.md").write_text("# Good\n\nA fine document about whales.")
    (root / "empty.txt").write_text("")
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    proc = ragloop("ingest", str(root), "--json", data_dir=tmp_path / "data")
    assert proc.returncode == 3
    report = json.loads(proc.stdout)
    assert report["added"] == 1
    assert {Path(f["name"]).name: f["reason"] for f in report["failed"]} == {
        "empty.txt": "empty file",
        "latin1.txt": "not valid UTF-8 (byte 0xe9 at offset 3)",
    }
    human = ragloop("ingest", str(root), data_dir=tmp_path / "data")
    assert human.returncode == 3
    assert "skipped" in human.stderr and "Traceback" not in human.stderr


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"RAGLOOP_EMBEDDER": "BAAI/bge-base-en-v1.5"}, "unknown embedder"),
        ({"RAGLOOP_CHUNK_TOKENS": "lots"}, "RAGLOOP_CHUNK_TOKENS"),
        ({"RAGLOOP_CHROMA_URL": "http://127.0.0.1:9"}, "cannot reach the Chroma server"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_1(
    tmp_path: Path, env: dict[str, str], needle: str
) -> None:
    (tmp_path / "a.md").write_text("# A\n\ntext")
    proc = ragloop("ingest", str(tmp_path / "a.md"), data_dir=tmp_path / "data", env=env)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_changing_the_base_model_of_a_data_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\ntext")
    data = tmp_path / "data"
    ragloop_json("ingest", str(tmp_path / "a.md"), data_dir=data)
    from ragloop.core.embedding.torch_embedder import bundled_model_path

    proc = ragloop("query", "x", data_dir=data, env={"RAGLOOP_EMBEDDER": str(bundled_model_path())})
    assert proc.returncode == 1 and "use a new data dir" in proc.stderr


def test_second_writer_is_refused_while_one_holds_the_lock(tmp_path: Path) -> None:
    from ragloop.core.storage.locks import WriterLock

    (tmp_path / "a.md").write_text("# A\n\ntext")
    data = tmp_path / "data"
    with WriterLock(data, "test holder"):
        proc = ragloop("ingest", str(tmp_path / "a.md"), data_dir=data)
    assert proc.returncode == 1
    assert "in use by pid" in proc.stderr and "test holder" in proc.stderr
