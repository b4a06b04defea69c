"""Conversations, read from the query log: the queries sharing a ``conversation_id``.

DocsGPT-style clients continue a conversation by its id and rate an answer by its position in
the conversation (``question_index``). Both are answered from the ``queries`` table: the N-th
query of a conversation (0-based, by ``created_at``) is question N. A conversation belongs to
the client that started it (its API key, or anonymous callers as one client while no key is in
use): another client, anonymous or keyed, finds no such conversation, so it can neither read
nor rate it, and continuing that id gives it a conversation of its own under a new id.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, Engine, func, select

from ragloop.core.errors import InvalidInputError, NotFoundError
from ragloop.core.generators.base import Turn
from ragloop.core.storage import schema as t

#: The ``queries.conversation_id`` column's width.
MAX_CONVERSATION_ID_CHARS = 64


class Conversations:
    """Looks up the turns and queries of a conversation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def new_id() -> str:
        """A fresh conversation id."""
        return uuid.uuid4().hex

    @staticmethod
    def check_id(conversation_id: str) -> str:
        """The id stripped; InvalidInputError when it is empty or too long for the log."""
        cid = conversation_id.strip()
        if not cid or len(cid) > MAX_CONVERSATION_ID_CHARS:
            raise InvalidInputError(
                f"conversation_id must be 1 to {MAX_CONVERSATION_ID_CHARS} characters"
            )
        return cid

    def resume(
        self, conversation_id: str, client: str | None, last: int = 20
    ) -> tuple[str, list[Turn]]:
        """The id to continue under and the caller's last ``last`` turns of it, oldest first.

        The caller's own conversation keeps its id; an id never seen is kept too (a new
        conversation the client named); an id that belongs to another client is not found for
        this one, which gets a fresh id and no turns, so the two never share a conversation.
        """
        turns = self.turns(conversation_id, client, last)
        if turns or not self._exists(conversation_id):
            return conversation_id, turns
        return self.new_id(), []

    def _exists(self, conversation_id: str) -> bool:
        """True when any client's query carries this conversation id."""
        stmt = select(t.queries.c.id).where(t.queries.c.conversation_id == conversation_id)
        with self.engine.connect() as conn:
            return conn.execute(stmt.limit(1)).first() is not None

    def turns(self, conversation_id: str, client: str | None, last: int = 20) -> list[Turn]:
        """The last ``last`` exchanges of ``client``'s conversation, oldest first; empty for an
        unknown id or another client's (``client`` None: anonymous callers). Each question as
        the user typed it (the answer prompt sees the conversation as it was; the condenser
        makes the stand-alone versions again)."""
        stmt = (
            select(
                func.coalesce(t.queries.c.raw_question, t.queries.c.question), t.queries.c.answer
            )
            .where(*self._scope(conversation_id, client))
            .order_by(t.queries.c.created_at.desc())
            .limit(last)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [Turn(question=q, answer=a or "") for q, a in reversed(rows)]

    def query_id_at(self, conversation_id: str, index: int, client: str | None) -> str:
        """The id of question ``index`` (0-based) of ``client``'s conversation; NotFoundError
        if absent or another client's."""
        if index < 0:
            raise InvalidInputError(f"question_index must be 0 or more, got {index}")
        stmt = (
            select(t.queries.c.id)
            .where(*self._scope(conversation_id, client))
            .order_by(t.queries.c.created_at)
            .offset(index)
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            raise NotFoundError(
                f"conversation {conversation_id!r} has no question number {index} "
                "(question_index counts from 0)"
            )
        return str(row[0])

    @staticmethod
    def _scope(conversation_id: str, client: str | None) -> list[ColumnElement[bool]]:
        """The conversation's queries asked by ``client``; None is the anonymous client, whose
        queries have no client, never "any client"."""
        who = t.queries.c.client.is_(None) if client is None else t.queries.c.client == client
        return [t.queries.c.conversation_id == conversation_id, who]
