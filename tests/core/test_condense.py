"""Follow-up questions made stand-alone: the offline rule, the LLM path through the real SDKs
(injected transports), the registry, and the answerer retrieving and logging both texts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest

from ragloop.core.answering import Answerer, QueryRequest
from ragloop.core.condense import (
    CONDENSE_SYSTEM,
    Condensed,
    Condenser,
    LLMCondenser,
    NoCondenser,
    RuleCondenser,
    build_condenser,
    clean_reply,
    default_registry,
    leans_on_previous,
    rewrite,
)
from ragloop.core.errors import ConfigError
from ragloop.core.generators.anthropic_llm import AnthropicGenerator
from ragloop.core.generators.base import Generator, LLMGenerator, Turn
from ragloop.core.generators.openai_compat import OpenAICompatGenerator
from ragloop.core.runtime import Runtime
from ragloop.core.settings import Settings
from ragloop.core.storage.querylog import QueryLog
from ragloop.ingest.pipeline import Ingestor
from tests.core.generators.wire import (
    MODEL,
    anthropic_error,
    anthropic_events,
    anthropic_message,
    openai_completion,
    sse,
)
from tests.fakes import FakeGenerator

GIT = [Turn("How do I create a git commit?", "Run git commit -m 'message'.")]

# ---- the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question",
    [
        "How do I rebase a branch onto main?",
        "Is there a limit on the size of a commit?",  # existential "there"
        "Which command shows the files that changed?",  # relative "that"
        "Which languages such as Python use indentation?",  # "such as"
        "What does 'rebase' mean?",
        "What is Python?",
    ],
)
def test_a_self_contained_question_is_left_exactly_as_typed(question: str) -> None:
    assert not leans_on_previous(question)
    assert RuleCondenser().condense(question, GIT) == Condensed(question, "none")


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("and how do I undo it?", "How do I undo it (create git commit)?"),
        ("What about branches?", "What about branches (create git commit)?"),
        ("Where are they stored?", "Where are they stored (create git commit)?"),
        (
            "How is that different from a stash",
            "How is that different from a stash (create git commit)",
        ),
        ("Examples?", "Examples (create git commit)?"),
        ("How long did it stay there?", "How long did it stay there (create git commit)?"),
    ],
)
def test_a_follow_up_gets_the_previous_questions_topic(question: str, expected: str) -> None:
    assert leans_on_previous(question)
    assert RuleCondenser().condense(question, GIT) == Condensed(expected, "rule")


def test_words_the_follow_up_already_has_are_not_repeated() -> None:
    # "commits" and "commit" are one word to the rule (light stem, any case).
    assert rewrite("Can I sign commits there?", "How do I create a git commit?") == (
        "Can I sign commits there (create git)?"
    )
    assert rewrite("And git commit it?", "How do I create a git commit?") == (
        "Git commit it (create)?"
    )


def test_a_chain_of_follow_ups_keeps_its_topic_and_the_rule_is_deterministic() -> None:
    history = [
        Turn("Who founded Apple?", "Steve Jobs, Steve Wozniak and Ronald Wayne."),
        Turn("When was it?", "In 1976."),
        Turn("Tell me a joke", ""),  # an unanswered turn still counts as asked
    ]
    once = RuleCondenser().condense("And where did they start it?", history)
    assert once.text == "Where did they start it (joke)?"
    chained = RuleCondenser().condense("When was it?", history[:1])
    assert chained == Condensed("When was it (founded Apple)?", "rule")
    later = RuleCondenser().condense("Where was that?", history[:2])
    assert later.text == "Where was that (founded Apple)?"
    assert [RuleCondenser().condense("Where was that?", history[:2]) for _ in range(3)] == [
        later
    ] * 3


def test_no_history_or_nothing_to_carry_leaves_the_question() -> None:
    assert RuleCondenser().condense("and it?", ()) == Condensed("and it?", "none")
    assert RuleCondenser().condense("and it?", [Turn("What is it?", "x")]).method == "none"
    assert NoCondenser().condense("and it?", GIT) == Condensed("and it?", "none")


def test_clean_reply_takes_the_question_from_a_chatty_reply() -> None:
    assert clean_reply('\n Stand-alone question: "How do I undo a git commit?"\n') == (
        "How do I undo a git commit?"
    )
    assert clean_reply("  \n") == ""


# ---- the LLM path through the real SDKs ------------------------------------------------------

QUESTION = "and how do I undo it?"
STANDALONE = "How do I undo a git commit?"


class Recorder:
    """A MockTransport handler: records requests, replays one scripted reply or error."""

    def __init__(self, reply: Callable[[], Any]) -> None:
        self.reply = reply
        self.requests: list[Any] = []

    def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        return self.reply()

    def body(self, i: int = -1) -> dict[str, Any]:
        return dict(json.loads(self.requests[i].content))


def anthropic(rec: Recorder, timeout_s: float = 30.0) -> AnthropicGenerator:
    return AnthropicGenerator(
        api_key="sk-ant-test",
        model=MODEL,
        timeout_s=timeout_s,
        max_retries=3,
        retry_wait_s=0.0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(rec)),
    )


def test_llm_rewrite_through_the_anthropic_sdk() -> None:
    rec = Recorder(lambda: httpx2.Response(200, json=anthropic_message(STANDALONE)))
    gen = anthropic(rec)
    condenser = LLMCondenser(lambda: gen, max_tokens=64, timeout_s=2.5)
    assert condenser.condense(QUESTION, GIT) == Condensed(STANDALONE, "llm")
    (request,) = rec.requests
    assert request.url.path == "/v1/messages"
    body = rec.body()
    assert body["model"] == MODEL and body["max_tokens"] == 64 and not body.get("stream")
    assert body["system"] == CONDENSE_SYSTEM
    assert body["messages"] == [
        {
            "role": "user",
            "content": "Conversation so far:\n"
            "User: How do I create a git commit?\n"
            "Assistant: Run git commit -m 'message'.\n\n"
            "Last question: and how do I undo it?\n\n"
            "Stand-alone question:",
        }
    ]
    assert request.extensions["timeout"]["read"] == 2.5  # its own timeout, not the answer's


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (httpx2.ReadTimeout("read timed out"), "anthropic request timed out after 2.5s"),
        (
            httpx2.Response(529, json=anthropic_error("overloaded_error", "busy")),
            "anthropic API HTTP 529 (overloaded_error: busy)",
        ),
        (httpx2.Response(200, json=anthropic_message("  ")), "anthropic gave no usable question"),
    ],
)
def test_any_llm_failure_falls_back_to_the_rule_at_once(failure: Any, error: str) -> None:
    def reply() -> Any:
        if isinstance(failure, Exception):
            raise failure
        return failure

    rec = Recorder(reply)
    gen = anthropic(rec)
    out = LLMCondenser(lambda: gen, timeout_s=2.5).condense(QUESTION, GIT)
    assert out == Condensed("How do I undo it (create git commit)?", "rule", f"condense: {error}")
    assert len(rec.requests) == 1  # one short call: never retried on the request path


def test_llm_rewrite_through_the_openai_compatible_client() -> None:
    rec = Recorder(lambda: httpx.Response(200, json=openai_completion(STANDALONE)))
    gen = OpenAICompatGenerator(
        base_url="http://llm.local/v1",
        model="llama3.1",
        timeout_s=30.0,
        transport=httpx.MockTransport(rec),
    )
    out = LLMCondenser(lambda: gen, max_tokens=40, timeout_s=1.5).condense(QUESTION, GIT)
    assert out == Condensed(STANDALONE, "llm")
    (request,) = rec.requests
    assert str(request.url) == "http://llm.local/v1/chat/completions"
    body = rec.body()
    assert body["max_tokens"] == 40 and body["stream"] is False
    assert body["messages"][0] == {"role": "system", "content": CONDENSE_SYSTEM}
    assert body["messages"][1]["content"].endswith(
        f"Last question: {QUESTION}\n\nStand-alone question:"
    )
    assert request.extensions["timeout"]["read"] == 1.5

    def slow() -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    rec.reply = slow
    out = LLMCondenser(lambda: gen, timeout_s=1.5).condense(QUESTION, GIT)
    assert out.method == "rule"
    assert out.error == "condense: openai-compatible request timed out after 1.5s"


def test_no_llm_at_question_time_falls_back_too() -> None:
    out = LLMCondenser(lambda: None).condense(QUESTION, GIT)
    assert out.method == "rule" and out.error == "condense: no LLM generator is configured"


# ---- choosing a condenser ------------------------------------------------------------------


def test_auto_is_the_llm_when_one_is_configured_else_the_rule(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    gen = anthropic(Recorder(lambda: httpx2.Response(500)))
    assert isinstance(build_condenser(settings, lambda: None), RuleCondenser)
    llm = build_condenser(settings, lambda: gen)
    assert isinstance(llm, LLMCondenser)
    assert (llm.max_tokens, llm.timeout_s) == (96, 5.0)
    tuned = Settings(data_dir=tmp_path, condense_max_tokens=50, condense_timeout_s=1.0)
    built = build_condenser(tuned, lambda: gen)
    assert isinstance(built, LLMCondenser) and (built.max_tokens, built.timeout_s) == (50, 1.0)
    for name, kind in (("rule", RuleCondenser), ("OFF", NoCondenser)):
        assert isinstance(
            build_condenser(Settings(data_dir=tmp_path, condense=name), lambda: gen), kind
        )


def test_misconfigured_condense_setting_fails_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RAGLOOP_CONDENSE=llm needs an LLM generator"):
        build_condenser(Settings(data_dir=tmp_path, condense="llm"), lambda: None)
    with pytest.raises(ConfigError, match="unknown condenser 'rules'; known condensers: auto, llm"):
        build_condenser(Settings(data_dir=tmp_path, condense="rules"), lambda: None)


class ShoutCondenser(Condenser):
    """A fake plugin condenser: upper-cases the question."""

    name = "shout"

    def condense(self, question: str, history: Sequence[Turn]) -> Condensed:
        return Condensed(question.upper(), "shout")


def test_a_registered_condenser_is_built_by_name(tmp_path: Path) -> None:
    registry = default_registry()
    registry.register("shout", lambda _s, _d: ShoutCondenser())
    built = build_condenser(Settings(data_dir=tmp_path, condense="shout"), lambda: None, registry)
    assert built.condense("it?", GIT) == Condensed("IT?", "shout")


# ---- the answerer: retrieves with the stand-alone question, logs both ---------------------


@pytest.fixture
def corpus_runtime(fake_runtime: Runtime, tmp_path: Path) -> Runtime:
    (tmp_path / "scurvy.txt").write_text("Scurvy comes from a lack of vitamin and citrus.")
    (tmp_path / "volcano.txt").write_text("A volcano erupts lava and magma.")
    (tmp_path / "bread.txt").write_text("Bread needs flour and yeast.")
    Ingestor(fake_runtime).ingest([tmp_path / f"{n}.txt" for n in ("scurvy", "volcano", "bread")])
    return fake_runtime


SCURVY = [Turn("What causes scurvy?", "A lack of vitamin C [1].")]


def _answerer(rt: Runtime, generator: Generator) -> tuple[Answerer, QueryLog]:
    log = QueryLog(rt.catalog.engine)
    return Answerer(rt, log, lambda _name: generator, FakeGenerator("extractive")), log


def test_answerer_retrieves_with_the_rule_and_logs_both_texts(corpus_runtime: Runtime) -> None:
    generator = FakeGenerator()
    answerer, log = _answerer(corpus_runtime, generator)
    assert isinstance(answerer.condenser, RuleCondenser)  # auto, no LLM configured
    raw = "And how is it prevented?"
    out = answerer.answer(QueryRequest(question=raw, k=2, history=SCURVY))
    assert out.question == "How is it prevented (causes scurvy)?"
    assert (out.raw_question, out.condensed_by) == (raw, "rule")
    assert out.sources[0].source.endswith("scurvy.txt")
    assert generator.calls[-1] == out.question  # the extractive kind cannot read history
    assert "condense" in out.timings_ms
    rec = log.get(out.query_id)
    assert (rec.question, rec.raw_question) == (out.question, raw)

    alone = answerer.answer(
        QueryRequest(question="Where does lava come from?", k=2, history=SCURVY)
    )
    first = answerer.answer(QueryRequest(question="And how is it prevented?", k=2))
    for o in (alone, first):
        rec = log.get(o.query_id)
        assert rec.raw_question is None and o.condensed_by == "none"
    assert log.get(first.query_id).question == "And how is it prevented?"


def test_answerer_rewrites_with_the_llm_and_answers_the_raw_question(
    corpus_runtime: Runtime,
) -> None:
    replies: Iterator[httpx2.Response] = iter(
        [
            httpx2.Response(200, json=anthropic_message("How is scurvy prevented?")),
            httpx2.Response(
                200,
                headers={"content-type": "text/event-stream"},
                content=sse(anthropic_events(["Eat citrus [1]."])),
            ),
        ]
    )
    rec = Recorder(lambda: next(replies))
    gen = anthropic(rec)
    assert isinstance(gen, LLMGenerator)
    answerer, log = _answerer(corpus_runtime, gen)
    raw = "And how is it prevented?"
    out = answerer.answer(QueryRequest(question=raw, k=2, history=SCURVY))
    condense, answer = (json.loads(r.content) for r in rec.requests)
    assert condense["system"] == CONDENSE_SYSTEM and condense["max_tokens"] == 96
    assert "Last question: And how is it prevented?" in condense["messages"][0]["content"]
    assert rec.requests[0].extensions["timeout"]["read"] == 5.0
    # The answer sees the conversation and the question as typed.
    assert answer["stream"] is True
    assert [m["content"] for m in answer["messages"]] == [
        "What causes scurvy?",
        "A lack of vitamin C [1].",
        raw,
    ]
    assert (out.question, out.raw_question, out.condensed_by) == (
        "How is scurvy prevented?",
        raw,
        "llm",
    )
    assert out.answer == "Eat citrus [1]." and out.sources[0].source.endswith("scurvy.txt")
    logged = log.get(out.query_id)
    assert (logged.question, logged.raw_question) == ("How is scurvy prevented?", raw)


def test_condense_off_retrieves_as_typed(corpus_runtime: Runtime) -> None:
    log = QueryLog(corpus_runtime.catalog.engine)
    answerer = Answerer(
        corpus_runtime,
        log,
        lambda _name: FakeGenerator(),
        FakeGenerator("extractive"),
        condenser=NoCondenser(),
    )
    out = answerer.answer(QueryRequest(question="And how is it prevented?", k=2, history=SCURVY))
    assert out.question == "And how is it prevented?" and out.raw_question is None
