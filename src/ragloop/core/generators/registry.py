"""Generators by name, and the ``auto`` choice between them.

Built-ins (``anthropic``, ``openai``, ``extractive``) are registered explicitly by
``default_registry``; third parties add theirs through the ``ragloop.generators`` entry point
group (a factory taking ``(settings, deps)``), tests by ``register``. ``build_generator``
resolves ``RAGLOOP_GENERATOR``: ``auto`` picks anthropic when an Anthropic key is set, else
openai when its base URL is set, else extractive. ``check_generator_setting`` refuses a name no
generator answers to, and naming a provider that is not configured is a ``ConfigError`` that
says which variable to set: both at start-up rather than per query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragloop.core.errors import ConfigError, InvalidInputError, RagloopError
from ragloop.core.generators.base import Generator
from ragloop.core.registry import Registry

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


#: What the registry holds per name: builds that provider's generator (``GeneratorFactory``
#: in ``base`` is the by-name builder the service takes).
ProviderFactory = Callable[["Settings", GeneratorDeps], Generator]


class GeneratorRegistry(Registry[ProviderFactory]):
    """Generator factories by (case-insensitive) name; ``auto`` is resolved before lookup."""

    def __init__(self) -> None:
        super().__init__("generator", ENTRY_POINT_GROUP, special=("auto",))

    def create(
        self,
        name: str,
        settings: Settings,
        *,
        anthropic_http_client: httpx2.Client | None = None,
        openai_transport: httpx.BaseTransport | None = None,
        unknown: type[RagloopError] = InvalidInputError,
    ) -> Generator:
        """Build the generator registered as ``name``.

        An unknown name raises ``unknown`` listing the known ones: ``InvalidInputError`` (400)
        by default, for a name that came with a request; ``ConfigError`` for the configured one.
        """
        factory = self.get(name, unknown)
        return factory(settings, GeneratorDeps(anthropic_http_client, openai_transport))


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


def check_generator_setting(settings: Settings, registry: GeneratorRegistry | None = None) -> None:
    """Refuse a ``RAGLOOP_GENERATOR`` that names no generator, built-in or entry point.

    Called at start-up (``create_app``, the CLI), so a typo fails there with a ``ConfigError``
    listing the known names rather than on the first question. Whether the named provider is
    configured (its key, its URL) is checked when it is built.
    """
    name = settings.generator.lower()
    if name != "auto":
        (registry or default_registry()).get(
            name, ConfigError, hint="set RAGLOOP_GENERATOR to one of those"
        )


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

    An unknown ``name`` is an ``InvalidInputError`` (it came with a request), an unknown
    configured generator a ``ConfigError``; ``anthropic`` or ``openai`` chosen without its key
    or URL is a ``ConfigError`` naming the variable to set. Building makes no network call; the
    first request does.
    """
    reg = registry or default_registry()
    return reg.create(
        resolve_generator_name(settings, name),
        settings,
        anthropic_http_client=anthropic_http_client,
        openai_transport=openai_transport,
        unknown=ConfigError if name is None else InvalidInputError,
    )
