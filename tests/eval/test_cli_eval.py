"""``ragloop eval`` end to end with the keyword fake: reports, plots, comparisons, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from ragloop.cli.main import app
from ragloop.core.embedding import registry as embedders
from ragloop.core.embedding.base import EmbedderOptions, EmbedderRegistry
from ragloop.core.errors import ModelUnavailableError
from tests.eval.beir_fixture import KEYWORD_QRELS, write_beir
from tests.fakes import DEFAULT_VOCAB, KeywordEmbedder


@pytest.fixture(autouse=True)
def _fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = EmbedderRegistry()
    full = KeywordEmbedder(DEFAULT_VOCAB)
    narrow = KeywordEmbedder(["scurvy", "vitamin"], model_id="narrow")
    registry.register("fake-keyword", lambda _o: full)
    registry.register("narrow", lambda _o: narrow)
    registry.register("broken", _unavailable)
    monkeypatch.setattr(embedders, "default_registry", lambda: registry)


def _unavailable(_opts: EmbedderOptions) -> KeywordEmbedder:
    raise ModelUnavailableError("weights for 'broken' are not installed")


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["eval", *args])


def test_json_report_files_and_plots(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "kw")
    out, data = tmp_path / "out", tmp_path / "data"
    res = run(
        "--dataset",
        str(root),
        "--model",
        "fake-keyword",
        "--dims",
        "24,12,4",
        "--out",
        str(out),
        "--data-dir",
        str(data),
        "--json",
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert (report["dataset"], report["split"], report["mode"]) == ("kw", "test", "model")
    assert report["n_queries"] == 3 and report["primary_metric"] == "ndcg@10"
    model = report["models"][0]
    assert model["model"] == "fake-keyword" and list(model["by_dim"]) == ["24", "12", "4"]
    assert model["metrics"]["ndcg@10"] == model["primary"]["value"] > 0.8
    assert set(model["metrics"]) >= {f"{m}@{k}" for m in ("ndcg", "recall") for k in (1, 100)}
    assert set(report["files"]) == {"json", "markdown", "plot_models", "plot_dims"}
    assert json.loads((out / "report.json").read_text())["models"] == report["models"]
    for name in ("metrics_by_model.png", "ndcg_at_10_by_dim.png"):
        with Image.open(out / name) as img:
            img.verify()
            assert img.format == "PNG" and img.size[0] >= 600
    assert "| fake-keyword | 24 |" in (out / "report.md").read_text()
    assert not data.exists()  # evaluating a named model creates no data dir


def test_several_models_side_by_side_as_a_markdown_table(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "kw")
    res = run(
        "--dataset",
        str(root),
        "--model",
        "fake-keyword",
        "--model",
        "narrow",
        "--out",
        str(tmp_path / "out"),
        "--data-dir",
        str(tmp_path / "d"),
    )
    assert res.exit_code == 0, res.output
    rows = [line for line in res.stdout.splitlines() if line.startswith("| ")]
    # Models of different widths side by side: each row says its dimension.
    assert rows[0].startswith("| model | dim | ndcg@10 | mrr@10 |")
    assert rows[1].startswith("| fake-keyword | 24 | ") and rows[2].startswith("| narrow | 3 | ")
    assert not (tmp_path / "out" / "ndcg_at_10_by_dim.png").exists()  # no --dims sweep
    assert (tmp_path / "out" / "metrics_by_model.png").exists()


def test_dangling_qrels_warn_with_a_count_and_go_on(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "kw", qrels={"test": [*KEYWORD_QRELS, ("q1", "gone", 1)]})
    res = run(
        "--dataset",
        str(root),
        "--model",
        "fake-keyword",
        "--out",
        str(tmp_path / "o"),
        "--data-dir",
        str(tmp_path / "d"),
        "--json",
    )
    assert res.exit_code == 0, res.output
    assert "warning: qrels/test.tsv: 1 judgements name 1 corpus ids not in corpus.jsonl" in (
        " ".join(res.stderr.split())
    )
    assert json.loads(res.stdout)["warnings"]


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("no_queries", "queries.jsonl is missing"),
        ("no_header", "qrels/test.tsv:1: no header line"),
        ("bad_line", "corpus.jsonl:3: invalid JSON"),
    ],
)
def test_bad_datasets_fail_with_one_line_naming_file_and_line(
    tmp_path: Path, breakage: str, expected: str
) -> None:
    root = write_beir(tmp_path / "kw", header="" if breakage == "no_header" else "query-id\tc\ts")
    if breakage == "no_queries":
        (root / "queries.jsonl").unlink()
    if breakage == "bad_line":
        lines = (root / "corpus.jsonl").read_text().splitlines()
        lines[2] = "{oops"
        (root / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    res = run("--dataset", str(root), "--model", "fake-keyword", "--data-dir", str(tmp_path))
    assert res.exit_code == 1
    assert expected in " ".join(res.stderr.split()) and "Traceback" not in res.output


def test_bad_models_and_modes_fail_cleanly(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "kw")
    common = ("--dataset", str(root), "--data-dir", str(tmp_path / "d"))
    unknown = run(*common, "--model", "nope")
    assert unknown.exit_code == 1 and "--model 'nope' is not 'active'" in unknown.stderr
    broken = run(*common, "--model", "broken")
    assert broken.exit_code == 1 and "not installed" in broken.stderr
    service = run(*common, "--mode", "service")
    assert service.exit_code == 1 and "service mode needs an ingested data dir" in service.stderr
    dims = run(*common, "--model", "fake-keyword", "--dims", "64")
    assert dims.exit_code == 1 and "outside 1..24" in dims.stderr
