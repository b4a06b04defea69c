"""Schemathesis fuzzes every operation in /openapi.json on a live loopback server: no 5xx."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integrations.live import fake_app, serve

pytestmark = pytest.mark.integration  # a live server and the st fuzzer: ~12 s

TOKEN = "fuzz-admin"


@pytest.fixture
def live_url(tmp_path: Path) -> Iterator[str]:
    # api_keys="" keeps the client routes open, so the fuzzer reaches their logic.
    app = fake_app(tmp_path, admin_token=TOKEN, max_file_mb=1, api_keys="")
    with serve(app) as url:
        yield url


def test_no_operation_returns_a_server_error(live_url: str, tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "st"
    proc = subprocess.run(
        [
            str(st),
            "run",
            f"{live_url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "30",
            "--seed",
            "20261122",
            "--generation-database",
            "none",
            "--header",
            f"Authorization: Bearer {TOKEN}",
        ],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=tmp_path,  # schemathesis writes its state folder into the working directory
        env=os.environ | {"NO_COLOR": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # it really exercised the API: hundreds of generated cases across every operation
    passed = re.search(r"(\d+) passed\s*\n\s*\nSeed", proc.stdout)
    assert passed and int(passed.group(1)) > 200, proc.stdout[-2000:]
