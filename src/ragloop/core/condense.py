"""Follow-up questions rewritten into stand-alone questions before retrieval.

In a chat, "and how do I undo it?" means "how do I undo a git commit?"; retrieved as typed it
finds nothing, is logged as a miss and would become a meaningless training question. A
``Condenser`` turns the last question of a conversation into one that stands alone; the
answerer retrieves with that text and logs it as the query's ``question`` (what the user typed
is kept beside it as ``raw_question``). A request without history is never rewritten.

Built-ins, chosen by ``RAGLOOP_CONDENSE``:

- ``rule`` (offline, deterministic, microseconds): a question that leans on the previous one
  (an anaphor such as it/they/this/those/there, a leading "and"/"but"/"what about"/"how
  about", or two words at most) gets the previous stand-alone question's content words added
  in brackets: "and how do I undo it?" after "How do I create a git commit?" becomes "How do I
  undo it (create git commit)?". Any other question is left exactly as typed. Earlier turns
  are condensed the same way first, so a chain of follow-ups keeps its topic.
- ``llm``: the configured LLM generator rewrites the question in one short call with its own
  token budget and timeout (``RAGLOOP_CONDENSE_MAX_TOKENS``, ``RAGLOOP_CONDENSE_TIMEOUT_S``);
  any provider failure or unusable reply falls back to the rule.
- ``off``: questions are retrieved as typed.
- ``auto`` (default): ``llm`` when an LLM generator is configured, else ``rule``.

Third parties add condensers through the ``ragloop.condensers`` entry point group (a factory
taking ``(settings, deps)``), tests through ``CondenserRegistry.register``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragloop.core.errors import ConfigError, GeneratorError
from ragloop.core.generators.base import LLMGenerator, Turn
from ragloop.core.generators.extractive import stem
from ragloop.core.registry import Registry

if TYPE_CHECKING:
    from ragloop.core.settings import Settings

ENTRY_POINT_GROUP = "ragloop.condensers"
CONDENSE_MODES = ("auto", "rule", "llm", "off")

#: Content words carried from the previous question at most (its first ones).
MAX_CARRIED_TERMS = 8
#: A question of this many words or fewer leans on the previous one ("Examples?", "And Mac?").
SHORT_WORDS = 2

# Words that carry no topic: function words, question words, auxiliaries, pronouns, fillers.
_STOP = frozenset(
    """a about above after again against all also am an and any anything are as at be because
    been before being below between both but by can could did do does doing done down during
    each either else ever few for from further get gets got had has have having he her here
    hers herself him himself his how however i if in into is it its itself just kind know like
    many may me might more most much must my myself no nor not now of off ok okay on once one
    ones only or other our ours ourselves out over own per please same she should so some
    something such tell than that the their theirs them themselves then there these they thing
    things this those through thus to too under until up upon us very via was way ways we were
    what whatever when where whether which while who whom whose why will with within without
    would yes yet you your yours yourself yourselves""".split()
)
# Words that stand for something said before.
_ANAPHORS = frozenset(
    """it its itself they them their theirs themselves he him his himself she her hers herself
    this these those such former latter aforementioned""".split()
)
# "that" is a demonstrative (anaphor) after these, a relative pronoun or conjunction after a
# noun or a content verb ("the river that flows", "he said that").
_BEFORE_DEMONSTRATIVE = frozenset(
    """about after against am and are as at before by can could did do does during for from
    how in into is of on or than to was were what when where which who why will with would
    under over like""".split()
)
# Existential "there" ("is there a limit", "there are two ways") refers to no place.
_EXISTENTIAL_NEIGHBOURS = frozenset(
    """is are was were be been being isn't aren't wasn't weren't will would can could should
    might may must exist exists existed remain remains seem seems 's 're""".split()
)
# A leading connective says "continuing": dropped from the rewrite ("and", "but"), or kept
# because it carries the question ("what about", "how about").
_DROPPED_LEADS = ("and then", "and", "but", "also", "so", "then", "or", "plus", "ok", "okay")
_KEPT_LEADS = ("what about", "how about", "what of", "what else", "same for", "same with")

# Words, with a contraction as a token of its own ("there's" -> "there", "'s").
_TOKEN = re.compile(r"(?<=\w)['’]\w+|\w+")


@dataclass(frozen=True)
class Condensed:
    """A question as retrieval should see it."""

    #: The stand-alone question (the question as typed when nothing needed rewriting).
    text: str
    #: What produced ``text``: ``llm``, ``rule``, or ``none`` (left as typed).
    method: str
    #: The LLM's failure when the rule stood in for it, else None.
    error: str | None = None


class Condenser(ABC):
    """Rewrites the last question of a conversation so that it stands alone."""

    #: Registry name (``rule``, ``llm``, ``off``).
    name: str

    @abstractmethod
    def condense(self, question: str, history: Sequence[Turn]) -> Condensed:
        """The stand-alone form of ``question`` given the earlier turns (oldest first).

        Never raises for a provider failure: a condenser that cannot do better returns the
        question unchanged (method ``none``) or the rule's rewrite.
        """


class NoCondenser(Condenser):
    """Leaves every question as typed (``RAGLOOP_CONDENSE=off``)."""

    name = "off"

    def condense(self, question: str, history: Sequence[Turn]) -> Condensed:
        """``question`` unchanged."""
        return Condensed(question, "none")


class RuleCondenser(Condenser):
    """The offline rule (see the module docstring); deterministic and free of I/O."""

    name = "rule"

    def condense(self, question: str, history: Sequence[Turn]) -> Condensed:
        """``question`` with the previous stand-alone question's topic, when it leans on it."""
        previous = ""
        for turn in history:
            if turn.question.strip():
                previous = rewrite(turn.question, previous)
        text = rewrite(question, previous)
        return Condensed(text, "none" if text == question else "rule")


class LLMCondenser(Condenser):
    """One short LLM call per follow-up; the rule answers when the LLM cannot."""

    name = "llm"

    #: Earlier turns shown to the LLM at most, and the characters kept of each answer.
    max_turns = 6
    answer_chars = 400

    def __init__(
        self,
        llm: Callable[[], LLMGenerator | None],
        *,
        max_tokens: int = 96,
        timeout_s: float = 5.0,
        max_chars: int = 2000,
        fallback: Condenser | None = None,
    ) -> None:
        self.llm = llm
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.max_chars = max_chars
        self.fallback = fallback or RuleCondenser()

    def condense(self, question: str, history: Sequence[Turn]) -> Condensed:
        """The LLM's stand-alone question, or the fallback's with the reason in ``error``."""
        turns = [t for t in history if t.question.strip()][-self.max_turns :]
        if not turns:
            return Condensed(question, "none")
        llm = self.llm()
        if llm is None:
            return self._fallback(question, history, "no LLM generator is configured")
        try:
            reply = llm.complete_short(
                CONDENSE_SYSTEM, self._prompt(question, turns), self.max_tokens, self.timeout_s
            )
        except GeneratorError as exc:
            return self._fallback(question, history, exc.message)
        text = clean_reply(reply)
        if not text or len(text) > self.max_chars:
            return self._fallback(question, history, f"{llm.name} gave no usable question")
        return Condensed(text, "none" if text == question else "llm")

    def _prompt(self, question: str, turns: Sequence[Turn]) -> str:
        lines = ["Conversation so far:"]
        for turn in turns:
            lines.append(f"User: {_flat(turn.question)}")
            answer = _flat(turn.answer)
            if answer:
                cut = answer[: self.answer_chars]
                lines.append(f"Assistant: {cut}{'…' if len(answer) > len(cut) else ''}")
        lines += ["", f"Last question: {_flat(question)}", "", "Stand-alone question:"]
        return "\n".join(lines)

    def _fallback(self, question: str, history: Sequence[Turn], error: str) -> Condensed:
        done = self.fallback.condense(question, history)
        return Condensed(done.text, done.method, f"condense: {error}")


CONDENSE_SYSTEM = """\
You rewrite the last question of a conversation so that it can be understood without the \
conversation, for a document search. Replace pronouns and references to earlier turns \
("it", "that", "the second one", "what about ...") with what they stand for. Keep the \
user's wording, language and intent otherwise; add no facts and do not answer. If the \
question already stands alone, return it unchanged. Reply with the question only, on one line."""

# Labels a model may put before its rewrite ("Stand-alone question: ...").
_LABEL = re.compile(r"^(?:stand-?alone question|rewritten question|question)\s*:\s*", re.I)


def clean_reply(reply: str) -> str:
    """The question in an LLM's reply: its first non-empty line, without label or quotes."""
    for line in reply.splitlines():
        text = _LABEL.sub("", line.strip()).strip().strip("\"'“”`").strip()
        if text:
            return text
    return ""


def _flat(text: str) -> str:
    return " ".join(text.split())


# ---- the rule ------------------------------------------------------------------------------


def content_words(text: str) -> list[str]:
    """Topic words of ``text`` in order, as written, each once (compared case-insensitively
    and by light stem, so "Normans" and "Norman" count once)."""
    seen: set[str] = set()
    out: list[str] = []
    for word in _TOKEN.findall(text):
        low = word.lower()
        key = stem(low)
        if word[0] in "'’" or low in _STOP or key in seen:
            continue
        seen.add(key)
        out.append(word)
    return out


def _words(text: str) -> list[str]:
    """Lower-case words, a contraction split off ("there's" -> "there", "'s")."""
    return [w.lower().replace("’", "'") for w in _TOKEN.findall(text)]


def leans_on_previous(question: str) -> bool:
    """Whether ``question`` needs the previous one to be understood (see the module docstring).

    A question with none of these signs is self-contained and left exactly as typed.
    """
    words = _words(question)
    if not words:
        return False
    head = " ".join(words[:3])
    if any(head == lead or head.startswith(lead + " ") for lead in _DROPPED_LEADS + _KEPT_LEADS):
        return True
    if len(words) <= SHORT_WORDS or not content_words(question):
        return True
    for i, word in enumerate(words):
        before = words[i - 1] if i else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        if word in _ANAPHORS and not (word == "such" and after == "as"):
            return True
        if word == "that" and (not before or not after or before in _BEFORE_DEMONSTRATIVE):
            return True
        if word == "there" and not (
            before in _EXISTENTIAL_NEIGHBOURS or after in _EXISTENTIAL_NEIGHBOURS
        ):
            return True
    return False


def rewrite(question: str, previous: str) -> str:
    """``question`` made stand-alone against ``previous`` (the last stand-alone question).

    Unchanged when it does not lean on the previous question or there is nothing to carry;
    otherwise a dropped lead ("and", "but") goes, and the previous question's content words
    that ``question`` lacks are added in brackets before the final punctuation.
    """
    if not previous.strip() or not leans_on_previous(question):
        return question
    have = {stem(w.lower()) for w in content_words(question)}
    carried = [w for w in content_words(previous) if stem(w.lower()) not in have]
    carried = carried[:MAX_CARRIED_TERMS]
    if not carried:
        return question
    body = _drop_lead(question.strip())
    end = len(body.rstrip("?!.;: "))
    core, punct = body[:end], body[end:].strip()
    return f"{core} ({' '.join(carried)}){punct}"


def _drop_lead(text: str) -> str:
    low = text.lower()
    for lead in _DROPPED_LEADS:
        if low.startswith(lead) and (len(low) == len(lead) or not low[len(lead)].isalnum()):
            rest = text[len(lead) :].lstrip(" ,;:-")
            if rest:
                return rest[0].upper() + rest[1:]
    return text


# ---- registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CondenserDeps:
    """What a condenser may use: the configured generator when it is an LLM (None otherwise)."""

    llm: Callable[[], LLMGenerator | None]


CondenserFactory = Callable[["Settings", CondenserDeps], Condenser]


class CondenserRegistry(Registry[CondenserFactory]):
    """Condenser factories by (case-insensitive) name; ``auto`` is resolved before lookup."""

    def __init__(self) -> None:
        super().__init__("condenser", ENTRY_POINT_GROUP, special=("auto",))


def _rule(settings: Settings, deps: CondenserDeps) -> Condenser:
    return RuleCondenser()


def _off(settings: Settings, deps: CondenserDeps) -> Condenser:
    return NoCondenser()


def _llm(settings: Settings, deps: CondenserDeps) -> Condenser:
    if deps.llm() is None:
        raise ConfigError(
            "RAGLOOP_CONDENSE=llm needs an LLM generator: set ANTHROPIC_API_KEY or "
            "RAGLOOP_OPENAI_BASE_URL (with RAGLOOP_GENERATOR auto, anthropic or openai), or set "
            "RAGLOOP_CONDENSE to rule or auto"
        )
    return LLMCondenser(
        deps.llm,
        max_tokens=settings.condense_max_tokens,
        timeout_s=settings.condense_timeout_s,
        max_chars=settings.max_question_chars,
    )


def default_registry() -> CondenserRegistry:
    """A registry with the built-in condensers (``rule``, ``llm``, ``off``) registered."""
    registry = CondenserRegistry()
    registry.register("rule", _rule)
    registry.register("llm", _llm)
    registry.register("off", _off)
    return registry


def build_condenser(
    settings: Settings,
    llm: Callable[[], LLMGenerator | None],
    registry: CondenserRegistry | None = None,
) -> Condenser:
    """The condenser ``RAGLOOP_CONDENSE`` names, ``auto`` resolved (``llm`` when ``llm()``
    gives a generator, else ``rule``). An unknown name, or ``llm`` without an LLM, is a
    ``ConfigError`` (raised at start-up, where the answerer is built)."""
    name = settings.condense.lower()
    if name == "auto":
        name = "llm" if llm() is not None else "rule"
    factory = (registry or default_registry()).get(
        name, ConfigError, hint="set RAGLOOP_CONDENSE to one of those"
    )
    return factory(settings, CondenserDeps(llm))
