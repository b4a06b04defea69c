"""Choosing a generator: the registry, ``auto``, and configuration errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest

from ragloop.core.errors import ConfigError, InvalidInputError
from ragloop.core.generators.anthropic_llm import AnthropicGenerator
from ragloop.core.generators.base import Generator, LLMGenerator
from ragloop.core.generators.extractive import ExtractiveGenerator
from ragloop.core.generators.openai_compat import OpenAICompatGenerator
from ragloop.core.generators.registry import (
    GeneratorDeps,
    GeneratorRegistry,
    build_generator,
    check_generator_setting,
    default_registry,
    resolve_generator_name,
)
from ragloop.core.settings import Settings, load_settings
from tests.core.entry_points import install_entry_point
from tests.core.generators.wire import CONTEXTS, anthropic_events, openai_sse, sse


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(data_dir=tmp_path, **values)


def test_auto_falls_back_to_extractive_when_nothing_is_configured(tmp_path: Path) -> None:
    gen = build_generator(settings(tmp_path))
    assert isinstance(gen, ExtractiveGenerator)
    assert not isinstance(gen, LLMGenerator)


def test_auto_prefers_anthropic_then_openai(tmp_path: Path) -> None:
    both = settings(tmp_path, anthropic_api_key="sk-ant", openai_base_url="http://h:1/v1")
    assert resolve_generator_name(both) == "anthropic"
    gen = build_generator(both)
    assert isinstance(gen, AnthropicGenerator) and gen.model == "claude-sonnet-5-5"
    url_only = settings(tmp_path, openai_base_url="http://h:1/v1", openai_model="qwen3")
    gen = build_generator(url_only)
    assert isinstance(gen, OpenAICompatGenerator) and gen.model == "qwen3"


def test_auto_reads_anthropic_api_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env")
    monkeypatch.setenv("RAGLOOP_ANTHROPIC_MODEL", "claude-haiku-5-5")
    gen = build_generator(load_settings(data_dir=tmp_path))
    assert isinstance(gen, AnthropicGenerator) and gen.model == "claude-haiku-5-5"


def test_blank_key_counts_as_unset(tmp_path: Path) -> None:
    assert resolve_generator_name(settings(tmp_path, anthropic_api_key="  ")) == "extractive"


def test_explicit_choice_and_name_override(tmp_path: Path) -> None:
    cfg = settings(tmp_path, generator="extractive", anthropic_api_key="sk-ant")
    assert isinstance(build_generator(cfg), ExtractiveGenerator)
    assert isinstance(build_generator(cfg, "anthropic"), AnthropicGenerator)
    assert isinstance(build_generator(cfg, "EXTRACTIVE"), ExtractiveGenerator)


def test_anthropic_without_key_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        build_generator(settings(tmp_path, generator="anthropic"))


def test_openai_without_url_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RAGLOOP_OPENAI_BASE_URL"):
        build_generator(settings(tmp_path, generator="openai"))
    with pytest.raises(ConfigError, match="http://"):
        build_generator(settings(tmp_path, generator="openai", openai_base_url="localhost:11434"))


def test_unknown_name_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_generator(settings(tmp_path), "gpt-9")
    for name in ("auto", "anthropic", "openai", "extractive"):
        assert name in info.value.message


def test_an_unknown_configured_generator_fails_at_start_up_listing_the_known_ones(
    tmp_path: Path,
) -> None:
    cfg = settings(tmp_path, generator="gpt-9")  # any string is a valid setting...
    with pytest.raises(ConfigError) as info:  # ...until it is checked against the registry
        check_generator_setting(cfg)
    assert "RAGLOOP_GENERATOR" in info.value.message
    for name in ("auto", "anthropic", "openai", "extractive"):
        assert name in info.value.message
    with pytest.raises(ConfigError, match="unknown generator 'gpt-9'"):
        build_generator(cfg)  # the configured name is a ConfigError, a requested one a 400
    for ok in ("auto", "Extractive", "anthropic"):
        check_generator_setting(settings(tmp_path, generator=ok))


def test_create_app_checks_the_generator_before_opening_anything(tmp_path: Path) -> None:
    from ragloop.service.app import create_app

    with pytest.raises(ConfigError, match="known generators: auto, anthropic"):
        create_app(settings(tmp_path / "data", generator="gpt-9"))
    assert not (tmp_path / "data").exists()


def test_an_entry_point_generator_can_be_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = (
        "from ragloop.core.generators.extractive import ExtractiveGenerator\n"
        "def factory(settings, deps):\n"
        "    return ExtractiveGenerator(max_sentences=2)\n"
    )
    install_entry_point(
        tmp_path / "site", monkeypatch, "ragloop.generators", "terse", "terse_gen", source
    )
    cfg = settings(tmp_path, generator="terse")
    check_generator_setting(cfg)
    assert "terse" in default_registry().names()
    gen = build_generator(cfg)
    assert isinstance(gen, ExtractiveGenerator) and gen.max_sentences == 2


def test_registered_factory_receives_settings_and_deps(tmp_path: Path) -> None:
    seen: list[GeneratorDeps] = []

    def factory(_settings: Settings, deps: GeneratorDeps) -> Generator:
        seen.append(deps)
        return ExtractiveGenerator(max_sentences=1)

    registry = GeneratorRegistry()
    registry.register("Mine", factory)
    assert registry.names() == ["mine"]
    transport = httpx.MockTransport(lambda r: httpx.Response(500))
    gen = registry.create("mine", settings(tmp_path), openai_transport=transport)
    assert isinstance(gen, ExtractiveGenerator) and gen.max_sentences == 1
    assert seen[0].openai_transport is transport
    assert set(default_registry().names()) >= {"anthropic", "openai", "extractive"}


def test_built_generators_use_the_injected_transports(tmp_path: Path) -> None:
    def anthropic_handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=sse(anthropic_events(["From Claude [1]."])))

    def openai_handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=openai_sse(["From llama [2]."]))

    cfg = settings(
        tmp_path,
        anthropic_api_key="sk-ant",
        openai_base_url="http://h:1/v1",
        generator_timeout_s=3,
        max_answer_tokens=99,
    )
    kwargs: dict[str, Any] = {
        "anthropic_http_client": httpx2.Client(transport=httpx2.MockTransport(anthropic_handler)),
        "openai_transport": httpx.MockTransport(openai_handler),
    }
    claude = build_generator(cfg, **kwargs)
    assert claude.generate("q", CONTEXTS).text == "From Claude [1]."
    assert isinstance(claude, AnthropicGenerator) and claude.max_tokens == 99
    llama = build_generator(cfg, "openai", **kwargs)
    assert llama.generate("q", CONTEXTS).text == "From llama [2]."
    assert isinstance(llama, OpenAICompatGenerator) and llama.timeout_s == 3
