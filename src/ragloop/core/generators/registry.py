"""Generators by name, and the ``auto`` choice between them.

Built-ins (``anthropic``, ``openai``, ``extractive``) are registered explicitly by
``default_registry``; third parties add theirs through the ``ragloop.generators`` entry point
group (a factory taking ``(settings, deps)``), tests by ``register``. ``build_generator``
resolves ``RAGLOOP_GENERATOR``: ``auto`` picks anthropic when an Anthropic key is set, else
openai when its base URL is set, else extractive. Naming a provider that is not configured is a
``ConfigError`` that says which variable to set, raised at start-up rather than per query.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragloop.core.errors import ConfigError, InvalidInputError
from ragloop.core.generators.base import Generator

if TYPE_CHECKING:
    import httpx
    import httpx2

    from ragloop.core.settings import Settings

ENTRY_POINT_GROUP = "ragloop.generators"


@dataclass(frozen=True)
class GeneratorDeps:
    """Injected transports, so tests drive the real clients without a network."""

    #: Passed to ``anthropic.Anthropic(http_client=...)``; the SDK 2.x needs ``httpx2``.
    anthropic_http_client: httpx2.Client | None = None
    #: Passed to ``httpx.Client(transport=...)`` of the OpenAI-compatible generator.
    openai_transport: httpx.BaseTransport | None = None


GeneratorFactory = Callable[["Settings", GeneratorDeps], Generator]


class GeneratorRegistry:
    """Generator factories by (case-insensitive) name."""

    def __init__(self) -> None:
        self._factories: dict[str, GeneratorFactory] = {}

    def register(self, name: str, factory: GeneratorFactory) -> None:
        """Register (or replace) ``factory`` under ``name``."""
        self._factories[name.lower()] = factory

    def names(self) -> list[str]:
        """Registered names, built-ins and entry points, sorted."""
        eps = [ep.name.lower() for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
        return sorted(set(self._factories) | set(eps))

    def create(
        self,
        name: str,
        settings: Settings,
        *,
        anthropic_http_client: httpx2.Client | None = None,
        openai_transport: httpx.BaseTransport | None = None,
    ) -> Generator:
        """Build the generator registered as ``name``.

        An unknown name is an ``InvalidInputError`` (400) listing the known ones: settings
        cannot hold one (``RAGLOOP_GENERATOR`` is validated), so it comes from a request.
        """
        deps = GeneratorDeps(anthropic_http_client, openai_transport)
        key = name.lower()
        if key in self._factories:
            return self._factories[key](settings, deps)
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name.lower() == key:
                factory: GeneratorFactory = ep.load()
                return factory(settings, deps)
        known = ", ".join(["auto", *self.names()])
        raise InvalidInputError(f"unknown generator {name!r}; known generators: {known}")


def _anthropic(settings: Settings, deps: GeneratorDeps) -> Generator:
    if not has_anthropic_key(settings):
        raise ConfigError(
            "RAGLOOP_GENERATOR=anthropic needs an API key: set ANTHROPIC_API_KEY "
            "(or RAGLOOP_ANTHROPIC_API_KEY), or choose another generator"
        )
    from ragloop.core.generators.anthropic_llm import AnthropicGenerator

    return AnthropicGenerator.from_settings(settings, http_client=deps.anthropic_http_client)


def _openai(settings: Settings, deps: GeneratorDeps) -> Generator:
    if not settings.openai_base_url:
        raise ConfigError(
            "RAGLOOP_GENERATOR=openai needs a server: set RAGLOOP_OPENAI_BASE_URL, "
            "e.g. http://localhost:11434/v1 for Ollama, or choose another generator"
        )
    if not settings.openai_base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"RAGLOOP_OPENAI_BASE_URL must start with http:// or https:// "
            f"(got {settings.openai_base_url!r})"
        )
    from ragloop.core.generators.openai_compat import OpenAICompatGenerator

    return OpenAICompatGenerator.from_settings(settings, transport=deps.openai_transport)


def _extractive(settings: Settings, deps: GeneratorDeps) -> Generator:
    from ragloop.core.generators.extractive import ExtractiveGenerator

    return ExtractiveGenerator()


def default_registry() -> GeneratorRegistry:
    """A registry with the built-in generators registered."""
    registry = GeneratorRegistry()
    registry.register("anthropic", _anthropic)
    registry.register("openai", _openai)
    registry.register("extractive", _extractive)
    return registry


def has_anthropic_key(settings: Settings) -> bool:
    """Whether a non-blank Anthropic API key is configured."""
    key = settings.anthropic_api_key
    return key is not None and bool(key.get_secret_value().strip())


def resolve_generator_name(settings: Settings, name: str | None = None) -> str:
    """The generator name to build: ``name`` or ``settings.generator``, with ``auto`` resolved."""
    chosen = (name or settings.generator).lower()
    if chosen != "auto":
        return chosen
    if has_anthropic_key(settings):
        return "anthropic"
    if settings.openai_base_url:
        return "openai"
    return "extractive"


def build_generator(
    settings: Settings,
    name: str | None = None,
    *,
    anthropic_http_client: httpx2.Client | None = None,
    openai_transport: httpx.BaseTransport | None = None,
    registry: GeneratorRegistry | None = None,
) -> Generator:
    """Build the generator the settings (or ``name``) choose, resolving ``auto``.

    Raises ``InvalidInputError`` for an unknown name, and ``ConfigError`` for ``anthropic`` or
    ``openai`` chosen without its key or URL (the message names the variable to set). Building
    makes no network call; the first request does.
    """
    reg = registry or default_registry()
    return reg.create(
        resolve_generator_name(settings, name),
        settings,
        anthropic_http_client=anthropic_http_client,
        openai_transport=openai_transport,
    )
