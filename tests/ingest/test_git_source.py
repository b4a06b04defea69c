"""Git ingest against a real repository made with the git command: files by globs at a ref,
sources naming file and commit, and re-ingest touching only the files whose blob changed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ragloop.core.runtime as runtime_module
from ragloop.cli.main import app
from ragloop.core.errors import InvalidInputError
from ragloop.core.runtime import Runtime
from ragloop.ingest.git_source import GitSource, git_document_id
from ragloop.ingest.pipeline import Ingestor
from tests.fakes import KeywordEmbedder, fake_registry


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def write(repo: Path, rel: str, text: str) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def para(*words: str) -> str:
    return " ".join(w for w in words for _ in range(8)) + "\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Two commits: the second changes a.md, adds c.rst and deletes b.md (tag v1 = first)."""
    root = tmp_path / "handbook"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, "README.md", "# Handbook\n\n" + para("ocean", "whale"))
    write(root, "docs/a.md", "# Volcano\n\n" + para("lava", "magma"))
    write(root, "docs/b.md", "# Citrus\n\n" + para("scurvy", "citrus"))
    write(root, "src/tool.py", "print('python snake')\n")
    write(root, ".github/notes.md", "# Hidden\n\n" + para("train"))
    (root / "docs" / "link.md").symlink_to("a.md")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    git(root, "tag", "v1")
    write(root, "docs/a.md", "# Volcano\n\n" + para("lava", "magma") + "\n" + para("coral"))
    write(root, "docs/c.rst", "Bread\n=====\n\n" + para("bread", "flour", "yeast"))
    (root / "docs" / "b.md").unlink()
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "second")
    return root


def test_second_ingest_touches_only_changed_files(
    repo: Path, fake_runtime: Runtime, fake_embedder: KeywordEmbedder
) -> None:
    first_commit = git(repo, "rev-parse", "v1")
    head = git(repo, "rev-parse", "HEAD")
    key = str(repo.resolve())
    first = Ingestor(fake_runtime).ingest_source(GitSource(str(repo), ref="v1"))
    assert first.failed == [] and first.added == 3  # README, a.md, b.md
    docs = {d.meta["file"]: d for d in fake_runtime.catalog.list_documents()}
    assert set(docs) == {"README.md", "docs/a.md", "docs/b.md"}  # no .py, hidden, link
    a = docs["docs/a.md"]
    assert a.id == git_document_id(key, "docs/a.md")
    assert a.source == f"handbook:docs/a.md@{first_commit[:12]}"
    assert a.meta["commit"] == first_commit
    assert {"name": "handbook:docs/link.md", "reason": "a symbolic link, not read"} in (
        first.skipped
    )
    readme_before = docs["README.md"]

    calls = len(fake_embedder.calls)
    second = Ingestor(fake_runtime).ingest_source(GitSource(str(repo)), prune=True)
    assert (second.added, second.updated, second.unchanged, second.removed) == (1, 1, 1, 1)
    after = {d.meta["file"]: d for d in fake_runtime.catalog.list_documents()}
    assert set(after) == {"README.md", "docs/a.md", "docs/c.rst"}
    # Only the changed and the new file were chunked and embedded.
    new_chunks = [
        c
        for f in ("docs/a.md", "docs/c.rst")
        for c in fake_runtime.catalog.chunks_of(after[f].id)
        if after[f].meta["commit"] == head
    ]
    fresh = [c for c in new_chunks if "coral" in c.text or "bread" in c.text]
    assert second.chunks_embedded == len(fresh) >= 2
    assert len(fake_embedder.calls) > calls
    # The unchanged file was not rewritten: same row, same commit in its source.
    assert after["README.md"] == readme_before
    assert after["docs/c.rst"].source == f"handbook:docs/c.rst@{head[:12]}"
    assert after["docs/a.md"].meta["blob"] != a.meta["blob"]
    # A third run costs nothing.
    calls = len(fake_embedder.calls)
    third = Ingestor(fake_runtime).ingest_source(GitSource(str(repo)), prune=True)
    assert (third.unchanged, third.chunks_embedded, third.removed) == (3, 0, 0)
    assert len(fake_embedder.calls) == calls


def test_clone_url_at_a_ref_with_include_globs(repo: Path, fake_runtime: Runtime) -> None:
    url = repo.resolve().as_uri()  # file:// : cloned like any remote
    source = GitSource(url, ref="v1", include=["docs/*.md"], exclude=["*b.md"])
    report = Ingestor(fake_runtime).ingest_source(source)
    assert report.failed == [] and source.commit == git(repo, "rev-parse", "v1")
    docs = fake_runtime.catalog.list_documents()
    assert [d.meta["file"] for d in docs] == ["docs/a.md"]
    assert docs[0].path == f"git:{url}/docs/a.md"


def test_unknown_ref_and_missing_repository_are_refused(repo: Path, fake_runtime: Runtime) -> None:
    with pytest.raises(InvalidInputError, match="no commit 'nope'"):
        Ingestor(fake_runtime).ingest_source(GitSource(str(repo), ref="nope"))
    with pytest.raises(InvalidInputError, match="no such repository"):
        GitSource(str(repo / "missing"))
    with pytest.raises(InvalidInputError, match="cannot clone"):
        Ingestor(fake_runtime).ingest_source(GitSource((repo / "missing").as_uri()))


def test_bad_file_is_reported_and_the_batch_goes_on(repo: Path, fake_runtime: Runtime) -> None:
    (repo / "docs" / "bin.txt").write_bytes(b"\x00\x01binary")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "binary")
    report = Ingestor(fake_runtime).ingest_source(GitSource(str(repo)))
    assert report.added == 3
    assert [f["reason"] for f in report.failed] == ["binary content (NUL bytes), not a text file"]
    assert report.failed[0]["name"].startswith("handbook:docs/bin.txt@")


def test_cli_git(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder: KeywordEmbedder
) -> None:
    monkeypatch.setattr(runtime_module, "default_registry", lambda: fake_registry(fake_embedder))
    env = {"RAGLOOP_EMBEDDER": "fake-keyword", "RAGLOOP_DATA_DIR": str(tmp_path / "d")}
    result = CliRunner().invoke(
        app, ["ingest", "--git", str(repo), "--ref", "v1", "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["added"] == 3
    both = CliRunner().invoke(app, ["ingest", "--git", str(repo), str(repo)], env=env)
    assert both.exit_code == 1 and "--git takes no PATH" in both.output
