"""Install a real entry point for a test: a dist-info directory and a module on ``sys.path``."""

from __future__ import annotations

from pathlib import Path

import pytest


def install_entry_point(
    root: Path, monkeypatch: pytest.MonkeyPatch, group: str, name: str, module: str, source: str
) -> None:
    """Publish ``module:factory`` (``source`` defines ``factory``) as ``name`` in ``group``.

    ``importlib.metadata`` finds it exactly as it finds an installed plugin's, so registries
    are tested through the real lookup. ``module`` must be unique per test (it stays imported).
    """
    dist = root / f"{module}_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{name} = {module}:factory\n")
    (root / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(root))
