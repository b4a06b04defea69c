"""Answer generators: one interface, a registry, and the built-ins (anthropic, openai, extractive).

The provider modules (``anthropic_llm``, ``openai_compat``) are imported only when their
generator is built, so importing this package stays cheap and needs no SDK.
"""

from ragloop.core.generators.base import (
    NO_ANSWER_MARKER,
    NO_ANSWER_TEXT,
    AbstainFilter,
    Answer,
    Context,
    Generator,
    LLMGenerator,
    Turn,
    cited_numbers,
)
from ragloop.core.generators.extractive import ExtractiveGenerator
from ragloop.core.generators.fallback import (
    AnswerStream,
    answer_with_fallback,
    stream_with_fallback,
)
from ragloop.core.generators.registry import (
    GeneratorDeps,
    GeneratorRegistry,
    build_generator,
    check_generator_setting,
    default_registry,
    resolve_generator_name,
)

__all__ = [
    "NO_ANSWER_MARKER",
    "NO_ANSWER_TEXT",
    "AbstainFilter",
    "Answer",
    "AnswerStream",
    "Context",
    "ExtractiveGenerator",
    "Generator",
    "GeneratorDeps",
    "GeneratorRegistry",
    "LLMGenerator",
    "Turn",
    "answer_with_fallback",
    "build_generator",
    "check_generator_setting",
    "cited_numbers",
    "default_registry",
    "resolve_generator_name",
    "stream_with_fallback",
]
