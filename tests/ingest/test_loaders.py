import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from ragloop.ingest.loaders import LoadedDocument, LoadFailure, discover, load_file
from tests.ingest.samples import make_pdf, write_corpus

MB = 1024 * 1024


def _docs(path: Path, limit: int = 50 * MB) -> list[LoadedDocument | LoadFailure]:
    return list(load_file(path, limit))


def test_every_format_loads_with_title_and_text(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "c")
    got = {p.name: _docs(p) for p in sorted(root.iterdir())}
    assert all(all(isinstance(d, LoadedDocument) for d in docs) for docs in got.values()), got
    by_name = {
        name: docs[0]
        for name, docs in got.items()
        if len(docs) == 1 and isinstance(docs[0], LoadedDocument)
    }
    assert by_name["scurvy.md"].title == "Scurvy"
    assert "## Cause" in by_name["scurvy.md"].text
    assert by_name["reef.rst"].title == "Coral reefs"
    assert by_name["bread.html"].title == "Bread"
    assert "var x" not in by_name["bread.html"].text
    assert "# Baking bread" in by_name["bread.html"].text
    assert "rail line" in by_name["rail.pdf"].text
    assert by_name["rail.pdf"].title == "Rail"
    assert by_name["fruit.docx"].title == "Fruit"
    assert "# Apples" in by_name["fruit.docx"].text
    beir = got["corpus.jsonl"]
    assert [d.id for d in beir] == ["w1", "p1"]  # type: ignore[union-attr]
    assert beir[0].title == "Whales"  # type: ignore[union-attr]
    # file documents get stable ids from their absolute path
    assert by_name["volcano.txt"].id == _docs(root / "volcano.txt")[0].id  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.md", b"   \n\n", "empty file"),
        ("binary.txt", b"abc\x00\x01\x02def", "binary"),
        ("latin1.txt", "caf\u00e9 cr\u00e8me".encode("latin-1"), "not valid UTF-8"),
        ("fake.pdf", b"hello, not a pdf", "not a PDF"),
        ("broken.docx", b"PK\x03\x04 not really a zip", "corrupt .docx"),
        ("broken.pptx", b"PK\x03\x04 not really a zip", "corrupt .pptx: not a readable zip"),
        ("broken.xlsx", b"PK\x03\x04 not really a zip", "corrupt .xlsx: not a readable zip"),
        ("broken.epub", b"PK\x03\x04 not really a zip", "corrupt .epub: not a readable zip"),
        ("binary.csv", b"a,b\n\x00\x01,2\n", "binary"),
        ("blank.csv", b",,\n , \n", "no rows"),
        ("bad.json", b'[{"text": "x"},', "invalid JSON at line 1"),
        ("empty-array.json", b"[]", "no JSON records"),
        ("data.xyz", b"whatever", "unsupported file type '.xyz'"),
    ],
)
def test_bad_files_are_reported_by_name(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    [failure] = _docs(path)
    assert isinstance(failure, LoadFailure)
    assert failure.name == str(path)
    assert reason in failure.reason
    assert "\n" not in failure.reason


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"])
def test_text_with_a_utf16_or_utf32_bom_is_decoded(tmp_path: Path, codec: str) -> None:
    text = "# Caf\u00e9\n\nA whale \u2014 and \u4e2d\u6587 \U0001f40b.\n"
    path = tmp_path / "wide.md"
    # Python writes a BOM for "utf-16"/"utf-32"; the explicit-order codecs need one added.
    bom = {"utf-16-le": "\ufeff", "utf-16-be": "\ufeff", "utf-32-be": "\ufeff"}.get(codec, "")
    path.write_bytes((bom + text).encode(codec))
    [doc] = _docs(path)
    assert isinstance(doc, LoadedDocument), doc
    assert doc.title == "Caf\u00e9"
    assert doc.text == text.strip() and "\ufeff" not in doc.text


def test_a_bom_before_broken_utf16_is_named(tmp_path: Path) -> None:
    path = tmp_path / "odd.txt"
    path.write_bytes(b"\xff\xfeh\x00i\x00!")  # an odd number of bytes after the mark
    [failure] = _docs(path)
    assert isinstance(failure, LoadFailure)
    assert failure.reason.startswith("not valid UTF-16 (truncated data at offset")


def _pdf_with_wrong_xref_offset(path: Path) -> Path:
    """A PDF pypdf can read only after repairing it: its startxref offset is wrong."""
    make_pdf(path, ["The train runs on rail."], "Rail")
    data = path.read_bytes()
    at = data.rindex(b"startxref")
    path.write_bytes(data[:at] + b"startxref\n12\n%%EOF\n")
    return path


def test_pypdf_warnings_go_to_the_document_not_stderr(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _pdf_with_wrong_xref_offset(tmp_path / "repaired.pdf")
    with caplog.at_level(logging.WARNING):
        [doc] = _docs(path)
    assert isinstance(doc, LoadedDocument)
    assert "rail" in doc.text
    assert any("startxref" in w for w in doc.warnings), doc.warnings
    assert all("\n" not in w for w in doc.warnings)
    assert [r for r in caplog.records if r.name.startswith("pypdf")] == []
    assert logging.getLogger("pypdf").propagate  # the capture is undone
    # The same load in a fresh interpreter, where pypdf's logging would reach stderr.
    code = (
        "import sys; from pathlib import Path; from ragloop.ingest.loaders import load_file; "
        "[d] = load_file(Path(sys.argv[1]), 2**20); print(len(d.warnings))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stderr == ""
    assert int(proc.stdout) >= 1


def test_truncated_pdf_is_reported_not_crashed_on(tmp_path: Path) -> None:
    good = make_pdf(tmp_path / "good.pdf", ["Some text " * 50] * 5)
    data = good.read_bytes()
    bad = tmp_path / "truncated.pdf"
    bad.write_bytes(data[: len(data) // 3])
    [result] = _docs(bad)
    assert isinstance(result, LoadFailure)
    assert "PDF" in result.reason


def test_oversize_file_is_skipped_with_the_limit_named(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    [failure] = _docs(path, limit=1000)
    assert isinstance(failure, LoadFailure)
    assert "RAGLOOP_MAX_FILE_MB" in failure.reason


def test_oversize_message_counts_mib_as_mib(tmp_path: Path) -> None:
    """RAGLOOP_MAX_FILE_MB counts MiB, named as MiB; the file's size is exact, so a file one
    byte over the limit does not read as the limit itself."""
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * (2**20 + 1))
    [failure] = _docs(path, limit=2**20)
    assert isinstance(failure, LoadFailure)
    assert "1048577 bytes is over the 1 MiB limit (1048576 bytes" in failure.reason


def test_beir_bad_lines_fail_alone(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"_id": "1", "title": "", "text": "fine"}),
                "{not json",
                json.dumps({"title": "no id", "text": "x"}),
                json.dumps({"_id": "4", "text": ""}),
                json.dumps({"_id": "5", "text": "also fine"}),
            ]
        )
    )
    out = _docs(path)
    assert [d.id for d in out if isinstance(d, LoadedDocument)] == ["1", "5"]
    failures = [d for d in out if isinstance(d, LoadFailure)]
    assert [f.name for f in failures] == [
        "corpus.jsonl:2",
        "corpus.jsonl:3",
        "corpus.jsonl:4 (_id 4)",
    ]


def test_beir_json_array(tmp_path: Path) -> None:
    path = tmp_path / "corpus.json"
    path.write_text(json.dumps([{"_id": "a", "text": "one"}, {"_id": "b", "text": "two"}]))
    assert [d.id for d in _docs(path)] == ["a", "b"]  # type: ignore[union-attr]


def test_discover_recurses_filters_and_reports_missing(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "c")
    (root / "sub").mkdir()
    (root / "sub" / "deep.md").write_text("# Deep\n\ntext")
    (root / ".git").mkdir()
    (root / ".git" / "x.md").write_text("# hidden")
    (root / "notes.xyz").write_text("not ours")
    files, missing = discover([root, tmp_path / "nope"])
    names = {p.name for p in files}
    assert "deep.md" in names and "x.md" not in names and "notes.xyz" not in names
    assert [m.reason for m in missing] == ["no such file or directory"]
    md_only, _ = discover([root], include=["*.md"], exclude=["sub/*"])
    assert {p.name for p in md_only} == {"scurvy.md"}
