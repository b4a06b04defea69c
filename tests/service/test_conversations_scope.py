"""A conversation belongs to the client that started it: another caller, anonymous or keyed,
finds no such conversation (it gets a new conversation id), never its history."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from ragloop.core.storage.schema import queries
from ragloop.service.conversations import Conversations
from tests.fakes import FakeGenerator
from tests.service.conftest import ClientFactory

KA, KB = {"X-API-Key": "ka"}, {"X-API-Key": "kb"}


def _ask(client: TestClient, cid: str | None = None, **headers: str) -> dict[str, Any]:
    body: dict[str, Any] = {"question": "whale ocean"}
    if cid is not None:
        body["conversation_id"] = cid
    r = client.post("/api/answer", json=body, headers=headers)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _set_asker(client: TestClient, cid: str, who: str | None) -> None:
    """Mark a conversation's queries as asked by ``who`` (a key id; None: anonymous), as when
    keys are added to, or removed from, a server's settings."""
    engine = client.app.state.rl.querylog.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(update(queries).where(queries.c.conversation_id == cid).values(client=who))


def _conversations(client: TestClient) -> Conversations:
    return Conversations(client.app.state.rl.querylog.engine)  # type: ignore[attr-defined]


def test_an_anonymous_caller_cannot_read_a_keyed_conversation(
    make_client: ClientFactory,
) -> None:
    gen = FakeGenerator("fake")
    client = make_client({"fake": gen})
    cid = _ask(client)["conversation_id"]
    _set_asker(client, cid, "env-0")  # started by a key's holder
    conversations = _conversations(client)
    assert conversations.turns(cid, None) == []
    assert conversations.turns(cid, "env-0") != []
    again = _ask(client, cid)
    # Not found for this caller: a new conversation, with none of the keyed one's turns.
    assert again["conversation_id"] != cid
    assert gen.histories[-1] == []
    feedback = {"feedback": "DISLIKE", "conversation_id": cid, "question_index": 0}
    assert client.post("/api/feedback", json=feedback).status_code == 404


def test_a_keyed_caller_cannot_read_another_keys_or_an_anonymous_conversation(
    make_client: ClientFactory,
) -> None:
    gen = FakeGenerator("fake")
    client = make_client({"fake": gen}, api_keys="ka,kb")
    cid = _ask(client, **KA)["conversation_id"]
    theirs = _ask(client, cid, **KB)
    assert theirs["conversation_id"] != cid and gen.histories[-1] == []
    mine = _ask(client, cid, **KA)
    assert mine["conversation_id"] == cid and len(gen.histories[-1]) == 1
    _set_asker(client, cid, None)  # asked while no key was in use
    assert _conversations(client).turns(cid, "env-0") == []
    later = _ask(client, cid, **KA)
    assert later["conversation_id"] != cid and gen.histories[-1] == []


def test_an_unknown_id_and_your_own_conversation_keep_their_id(client: TestClient) -> None:
    assert _ask(client, "my-own-name")["conversation_id"] == "my-own-name"
    assert _conversations(client).resume("my-own-name", None)[0] == "my-own-name"
    assert len(_conversations(client).resume("my-own-name", None)[1]) == 1
    assert _ask(client, "my-own-name")["conversation_id"] == "my-own-name"


def test_a_continued_conversation_shows_the_answer_prompt_the_questions_as_typed(
    make_client: ClientFactory,
) -> None:
    # The log keeps a follow-up's stand-alone rewrite as its question and the typed text as
    # raw_question; the history handed to the generator is the conversation as it was.
    gen = FakeGenerator("fake")
    client = make_client({"fake": gen})
    cid = _ask(client)["conversation_id"]
    body = {"question": "and what about it?", "conversation_id": cid}
    assert client.post("/api/answer", json=body).status_code == 200
    engine = client.app.state.rl.querylog.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        logged = conn.execute(
            queries.select().where(queries.c.conversation_id == cid).order_by(queries.c.created_at)
        ).all()
    assert logged[1].raw_question == "and what about it?" != logged[1].question
    _ask(client, cid)
    assert [t.question for t in gen.histories[-1]] == ["whale ocean", "and what about it?"]
