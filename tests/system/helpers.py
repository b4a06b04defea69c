"""Running the real ``ragloop`` CLI in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


def ragloop(
    *args: str, data_dir: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``ragloop ARGS --data-dir DATA_DIR`` and capture its output."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLOOP_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ragloop.cli.main", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def ragloop_json(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> Any:
    """Run a command with ``--json`` and parse stdout; fails the test on a non-zero exit."""
    proc = ragloop(*args, "--json", data_dir=data_dir, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
