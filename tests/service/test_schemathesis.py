"""Schemathesis fuzzes every operation in /openapi.json on a live loopback server, without and
then with credentials: every phase (examples, coverage, fuzzing, and the stateful phase that
follows the schema's links from one response into the next request), a bounded number of
examples each. No answer may be a 5xx, or have a status or content type the schema does not
document; and without credentials nothing is uploaded or deleted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from tests.integrations.live import fake_app, serve

pytestmark = pytest.mark.integration  # a live server and the st fuzzer: ~25 s

TOKEN = "fuzz-admin"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance"
PHASES = "examples,coverage,fuzzing,stateful"
#: Requests that would change the corpus.
WRITES = re.compile(r"^(POST /v1/documents|POST /api/upload|DELETE /v1/documents/.+)$")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, FastAPI]]:
    # api_keys="" keeps the client routes open, so the fuzzer reaches their logic; writes stay
    # closed to anyone without the admin token.
    app = fake_app(tmp_path, admin_token=TOKEN, max_file_mb=1, api_keys="")
    with serve(app) as url:
        yield url, app


def fuzz(url: str, cwd: Path, name: str, *headers: str) -> tuple[str, list[dict[str, Any]]]:
    """Run ``st`` over every operation; its output and the requests it made (a HAR log)."""
    st = Path(sys.executable).parent / "st"
    har = cwd / f"{name}.har"
    args = [
        str(st),
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--phases",
        PHASES,
        "--max-examples",
        "10",
        "--seed",
        "20261122",
        "--generation-database",
        "none",
        "--no-shrink",
        "--report",
        "har",
        "--report-har-path",
        str(har),
    ]
    for header in headers:
        args += ["--header", header]
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,  # schemathesis writes its state folder into the working directory
        env=os.environ | {"NO_COLOR": "1"},
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-6000:] + proc.stderr[-2000:]
    for phase in ("Coverage", "Fuzzing", "Stateful"):  # ran, and passed
        assert re.search(rf"✅\s+{phase}", out), out[-3000:]
    # It really exercised the API: hundreds of cases across every operation.
    generated = re.search(r"(\d+) generated", out)
    assert generated and int(generated.group(1)) > 500, out[-2000:]
    entries: list[dict[str, Any]] = json.loads(har.read_text())["log"]["entries"]
    return out, entries


def requests_made(entries: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """``("METHOD /path", status)`` of each request."""
    out = []
    for e in entries:
        path = re.sub(r"^https?://[^/]+", "", e["request"]["url"]).split("?")[0]
        out.append((f"{e['request']['method']} {path}", int(e["response"]["status"])))
    return out


def corpus(app: FastAPI) -> dict[str, Any]:
    """Everything an upload or a delete would change."""
    rt = app.state.rl.runtime
    docs = rt.catalog.list_documents(limit=100_000, offset=0)
    active = rt.catalog.active_version()
    uploads = app.state.rl.settings.uploads_dir
    return {
        "documents": sorted((d.id, d.content_hash, d.n_chunks) for d in docs),
        "counts": rt.catalog.counts(),
        "vectors": rt.store.count(active.collection),
        "uploads": sorted(
            str(p.relative_to(uploads)) for p in uploads.rglob("*") if ".staging" not in p.parts
        )
        if uploads.exists()
        else [],
    }


def test_no_server_error_and_nothing_undocumented(
    live: tuple[str, FastAPI], tmp_path: Path
) -> None:
    url, app = live
    before = corpus(app)

    # Without credentials: the fuzzer tries every write, and every one is refused.
    _, entries = fuzz(url, tmp_path, "anonymous")
    writes = [(op, status) for op, status in requests_made(entries) if WRITES.match(op)]
    tried = {op.split(" ")[0] + " " + op.split(" ")[1].split("/")[2] for op, _ in writes}
    assert tried == {"POST documents", "POST upload", "DELETE documents"}, tried
    assert all(400 <= status < 500 for _, status in writes), writes
    assert any(status == 401 for _, status in writes)
    assert corpus(app) == before

    # With the admin token: every route is open (writes included) and still well-behaved.
    _, entries = fuzz(url, tmp_path, "admin", f"Authorization: Bearer {TOKEN}")
    made = requests_made(entries)
    assert any(op.startswith("GET /admin/") and status == 200 for op, status in made)
