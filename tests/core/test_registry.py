"""The generic registry: names, entry points, and errors that list what is known."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ragloop.core.errors import ConfigError, InvalidInputError
from ragloop.core.registry import Registry
from tests.core.entry_points import install_entry_point

GROUP = "ragloop.tests.widgets"
Factory = Callable[[], str]


def _registry() -> Registry[Factory]:
    registry: Registry[Factory] = Registry("widget", GROUP, special=("auto",))
    registry.register("Round", lambda: "round")
    return registry


def test_registered_names_are_case_insensitive_and_replaceable() -> None:
    registry = _registry()
    assert registry.names() == ["round"]
    assert registry.get("ROUND")() == "round"
    registry.register("round", lambda: "rounder")
    assert registry.get("round")() == "rounder"
    assert registry.find("square") is None


def test_entry_points_are_listed_and_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = "def factory():\n    return 'from the plugin'\n"
    install_entry_point(tmp_path, monkeypatch, GROUP, "Square", "widgets_square", source)
    registry = _registry()
    assert registry.names() == ["round", "square"]
    factory = registry.get("square")
    assert factory() == "from the plugin"
    # A registered name wins over a published one of the same name.
    registry.register("square", lambda: "local")
    assert registry.get("Square")() == "local"


def test_an_unknown_name_raises_the_callers_error_with_every_known_name() -> None:
    registry = _registry()
    with pytest.raises(ConfigError) as config:
        registry.get("hexagon", hint="set RAGLOOP_WIDGET to one of those")
    assert config.value.message == (
        "unknown widget 'hexagon'; known widgets: auto, round; set RAGLOOP_WIDGET to one of those"
    )
    with pytest.raises(InvalidInputError, match=r"known widgets: auto, round$"):
        registry.get("hexagon", InvalidInputError)
    empty: Registry[Factory] = Registry("gadget", GROUP + ".none")
    assert empty.unknown("x") == "unknown gadget 'x'; known gadgets: none"
