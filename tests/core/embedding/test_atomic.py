"""Atomic writes: the target holds the old file or the whole new one, never a part."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragloop.core.embedding.atomic import atomic_write_text, replacing, temporary_sibling


def test_atomic_write_text_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "meta.json"
    target.write_text("old")
    atomic_write_text(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_text("good")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the check failed")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_temporaries_are_hidden_siblings_unique_per_call(tmp_path: Path) -> None:
    a, b = temporary_sibling(tmp_path / "x.onnx"), temporary_sibling(tmp_path / "x.onnx")
    assert a != b and a.parent == tmp_path
    assert a.name.startswith(".x.onnx.") and a.name.endswith(".tmp")
