"""Conversations, read from the query log: the queries sharing a ``conversation_id``.

DocsGPT-style clients continue a conversation by its id and rate an answer by its position in
the conversation (``question_index``). Both are answered from the ``queries`` table: the N-th
query of a conversation (0-based, by ``created_at``) is question N. When API keys are in use a
conversation belongs to the key that started it, so one client cannot read or rate another's.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, Engine, select

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

    def turns(self, conversation_id: str, client: str | None = None, last: int = 20) -> list[Turn]:
        """The conversation's last ``last`` exchanges, oldest first; empty for an unknown id."""
        stmt = (
            select(t.queries.c.question, t.queries.c.answer)
            .where(*self._scope(conversation_id, client))
            .order_by(t.queries.c.created_at.desc())
            .limit(last)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [Turn(question=q, answer=a or "") for q, a in reversed(rows)]

    def query_id_at(self, conversation_id: str, index: int, client: str | None = None) -> str:
        """The id of question ``index`` (0-based) of a conversation; NotFoundError if absent."""
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
        cond = [t.queries.c.conversation_id == conversation_id]
        if client is not None:
            cond.append(t.queries.c.client == client)
        return cond
