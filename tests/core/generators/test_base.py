"""The abstain filter, citation parsing and prompt construction shared by every generator."""

from __future__ import annotations

import pytest

from ragloop.core.generators.base import (
    NO_ANSWER_TEXT,
    AbstainFilter,
    Context,
    Turn,
    cited_numbers,
    one_line,
)
from ragloop.core.generators.prompts import (
    MAX_HISTORY_TURNS,
    NO_DOCUMENTS,
    conversation,
    format_context,
    system_prompt,
)
from tests.core.generators.wire import CONTEXTS


def run_filter(deltas: list[str]) -> tuple[str, bool]:
    filt = AbstainFilter()
    text = "".join(filt.feed(d) for d in deltas) + filt.close()
    return text, filt.no_answer


def chars(text: str) -> list[str]:
    return list(text)


@pytest.mark.parametrize(
    "reply",
    [
        "NO_ANSWER The documents do not mention whales.",
        "NO_ANSWER: The documents do not mention whales.",
        "  NO_ANSWER — The documents do not mention whales.",
        "**NO_ANSWER** The documents do not mention whales.",
        "`NO_ANSWER`\nThe documents do not mention whales.",
    ],
)
def test_marker_is_replaced_however_it_is_split_or_decorated(reply: str) -> None:
    for deltas in ([reply], chars(reply), [reply[:9], reply[9:]], [reply[:4], reply[4:]]):
        text, no_answer = run_filter(deltas)
        assert no_answer is True
        assert text == f"{NO_ANSWER_TEXT} The documents do not mention whales."


def test_bare_marker() -> None:
    assert run_filter(["NO_ANSWER"]) == (NO_ANSWER_TEXT, True)
    assert run_filter(["NO_ANSWER", "", "."]) == (NO_ANSWER_TEXT, True)


@pytest.mark.parametrize(
    "reply", ["**Scurvy** is caused by a lack of vitamin C [1].", "NO. It is not [1].", "N", ""]
)
def test_ordinary_answers_pass_through_unchanged(reply: str) -> None:
    assert run_filter(chars(reply)) == (reply, False)
    assert run_filter([reply]) == (reply, False)


def test_text_is_released_as_soon_as_it_cannot_be_the_marker() -> None:
    filt = AbstainFilter()
    assert filt.feed("NO") == ""
    assert filt.feed("T ") == "NOT "
    assert filt.feed("so") == "so"


def test_cited_numbers_ignore_unknown_contexts() -> None:
    assert cited_numbers("a [2] b [1, 3] c [2][9] d [0]", 3) == [2, 1, 3]
    assert cited_numbers("a [2] b [5] c [3]", 2, {2, 5}) == [2, 5]


def test_one_line() -> None:
    assert one_line("a\n b\t c") == "a b c"
    assert one_line("x" * 300, limit=10) == "x" * 9 + "…"


def test_system_prompt_numbers_contexts_like_context_n() -> None:
    shuffled = [CONTEXTS[2], CONTEXTS[0], CONTEXTS[1]]
    prompt = system_prompt(shuffled)
    documents = prompt[prompt.index("<documents>") :]
    positions = [documents.index(f"[{n}] ") for n in (1, 2, 3)]
    assert positions == sorted(positions)
    assert "NO_ANSWER" in prompt and "outside knowledge" in prompt
    assert "[2]" in prompt  # the citation example
    assert system_prompt([]).endswith(f"{NO_DOCUMENTS}\n</documents>")


def test_format_context_without_title_or_source() -> None:
    bare = Context(7, "c", "d", "", "", " text ", 0.5)
    assert format_context(bare) == "[7]\ntext"
    titled = Context(4, "c", "d", "Title", "", "body", 0.5)
    assert format_context(titled) == "[4] Title\nbody"


def test_conversation_keeps_recent_complete_turns() -> None:
    history = [Turn(f"q{i}", f"a{i}") for i in range(MAX_HISTORY_TURNS + 3)]
    history.insert(-1, Turn("half", ""))
    messages = conversation("now?", history)
    assert messages[-1] == {"role": "user", "content": "now?"}
    assert len(messages) <= 2 * MAX_HISTORY_TURNS + 1
    assert [m["role"] for m in messages[:4]] == ["user", "assistant", "user", "assistant"]
    assert {"role": "user", "content": "half"} not in messages
    assert messages[-3] == {"role": "user", "content": f"q{MAX_HISTORY_TURNS + 2}"}
