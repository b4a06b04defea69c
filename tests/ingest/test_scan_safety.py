"""What ingest does with things that are not regular files, and with links that leave the tree.

Real FIFOs, real symlinks and the real /dev/null: each is reported with what it is, nothing
blocks, and a link out of the named folder is refused unless allowed. The device is /dev/null,
not /dev/zero: should the check ever regress, reading it ends at once instead of filling memory.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragloop.cli.main import app
from ragloop.core.runtime import Runtime
from ragloop.ingest.loaders import Loaded, LoadFailure, discover, load_file
from ragloop.ingest.pipeline import Ingestor

FIFO = "is a FIFO, not a regular file"
DEVICE = "is a device file, not a regular file"
LOOP = "symlink loop"
LEAVES = "link leaves the ingested folder"


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    """A folder with one of every awkward entry, and a file outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("A volcano outside the tree.\n")
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / ".private").mkdir()
    (root / "sub" / "real.md").write_text("# Real\n\nA whale swims in the ocean.\n")
    (root / ".private" / "kept.md").write_text("# Kept\n\nCoral reefs shelter fish.\n")
    os.mkfifo(root / "pipe.txt")
    (root / "loop.md").symlink_to("loop.md")
    (root / "ring1.txt").symlink_to("ring2.txt")
    (root / "ring2.txt").symlink_to("ring1.txt")
    (root / "broken.md").symlink_to("missing.md")
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    (root / "outdir").symlink_to(outside)  # links to folders are not followed
    (root / "alias.md").symlink_to("sub/real.md")  # same file as sub/real.md: taken once
    (root / "visible.md").symlink_to(".private/kept.md")  # a link inside the tree
    (root / "device.txt").symlink_to("/dev/null")
    return root, outside


def _reasons(failures: list[dict[str, str]]) -> dict[str, str]:
    return {Path(f["name"]).name: f["reason"] for f in failures}


def test_directory_scan_reports_each_entry_that_is_not_a_regular_file(
    tmp_path: Path, fake_runtime: Runtime
) -> None:
    root, _ = _tree(tmp_path)
    report = Ingestor(fake_runtime).ingest([root])
    reasons = _reasons(report.failed)
    assert reasons.pop("pipe.txt") == FIFO
    assert reasons.pop("loop.md") == LOOP
    assert reasons.pop("ring1.txt") == reasons.pop("ring2.txt") == LOOP
    assert reasons.pop("broken.md").startswith("broken symlink")
    assert reasons.pop("leak.txt").startswith(LEAVES)
    assert reasons.pop("device.txt") == DEVICE
    assert reasons == {}
    sources = sorted(Path(d.source).name for d in fake_runtime.catalog.list_documents())
    assert sources == ["real.md", "visible.md"]  # the alias of real.md is not a duplicate
    assert report.added == 2


def test_named_paths_say_what_they_are(tmp_path: Path, fake_runtime: Runtime) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.txt"
    loop.symlink_to(loop.name)
    device = tmp_path / "device.txt"
    device.symlink_to("/dev/null")
    named = [fifo, loop, tmp_path / "missing.txt", device, Path("/dev/null")]
    report = Ingestor(fake_runtime).ingest(named)
    assert _reasons(report.failed) == {
        "pipe.txt": FIFO,
        "loop.txt": LOOP,
        "missing.txt": "no such file or directory",
        "device.txt": DEVICE,
        "null": DEVICE,
    }
    assert report.added == 0


def test_loading_a_fifo_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    got: list[Loaded] = []
    worker = threading.Thread(target=lambda: got.extend(load_file(fifo, 2**20)), daemon=True)
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # it waits for a writer: be that writer so the thread ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=5)
        pytest.fail("load_file blocked opening a FIFO")
    assert [(f.name, f.reason) for f in got if isinstance(f, LoadFailure)] == [(str(fifo), FIFO)]
    assert len(got) == 1


def test_loading_a_device_is_refused(tmp_path: Path) -> None:
    device = tmp_path / "device.txt"
    device.symlink_to("/dev/null")
    [failure] = list(load_file(device, 2**20))
    assert getattr(failure, "reason", "") == DEVICE


def test_links_out_of_the_tree_are_refused_unless_allowed(
    tmp_path: Path, fake_runtime: Runtime
) -> None:
    root, outside = _tree(tmp_path)
    files, failures = discover([root])
    assert outside / "secret.txt" not in {Path(os.path.realpath(p)) for p in files}
    [leak] = [f for f in failures if f.name.endswith("leak.txt")]
    assert leak.reason.startswith(LEAVES) and str(outside / "secret.txt") in leak.reason
    report = Ingestor(fake_runtime).ingest([root], follow_outside_links=True)
    assert "leak.txt" not in _reasons(report.failed)
    sources = sorted(Path(d.source).name for d in fake_runtime.catalog.list_documents())
    assert sources == ["leak.txt", "real.md", "visible.md"]


def test_a_named_folder_that_is_a_link_keeps_its_inside_links(tmp_path: Path) -> None:
    root, _ = _tree(tmp_path)
    link = tmp_path / "docs-link"
    link.symlink_to(root)
    files, failures = discover([link])
    assert sorted(p.name for p in files) == ["real.md", "visible.md"]
    assert [Path(f.name).name for f in failures if f.reason.startswith(LEAVES)] == ["leak.txt"]


def test_prune_keeps_a_document_whose_file_became_a_fifo(
    tmp_path: Path, fake_runtime: Runtime
) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "a.md").write_text("# A\n\nA whale.\n")
    (root / "b.md").write_text("# B\n\nA volcano.\n")
    Ingestor(fake_runtime).ingest([root])
    (root / "a.md").unlink()
    os.mkfifo(root / "a.md")
    report = Ingestor(fake_runtime).ingest([root], prune=True)
    assert _reasons(report.failed) == {"a.md": FIFO}
    assert report.removed == 0 and fake_runtime.catalog.counts()["documents"] == 2


def test_cli_ingest_offers_follow_outside_links() -> None:
    result = CliRunner().invoke(app, ["ingest", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--follow-outside-links" in result.output
