"""Client API keys: from ``RAGLOOP_API_KEYS`` and/or created with ``ragloop keys create``.

Stored keys are kept only as SHA-256 hashes; the plaintext is shown once, at creation. Once any
key has been created, the query, feedback and upload routes require one, for good: revoking
the last key leaves every route closed rather than turning authentication off. Whether any key
exists is asked on every request, so the answer is kept for ``REQUIRED_TTL_S``: keys created
or revoked through this object take effect at once, those created by another process
(``ragloop keys`` beside a running server) within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from ragloop.core.errors import NotFoundError
from ragloop.core.storage import schema as t

KEY_PREFIX = "rl_"
#: Seconds the "are keys required" answer is reused (a catalog query per request otherwise).
REQUIRED_TTL_S = 1.0


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A stored key's public fields (never the key itself)."""

    id: str
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__) | {"active": self.revoked_at is None}


class ApiKeys:
    """Creates, lists, revokes and checks client keys."""

    def __init__(self, engine: Engine, env_keys: tuple[str, ...] = ()) -> None:
        self.engine = engine
        self._env_hashes = {hash_key(k): f"env-{i}" for i, k in enumerate(env_keys)}
        self._required: tuple[float, bool] | None = None  # (checked at, answer)

    def create(self, name: str) -> tuple[ApiKey, str]:
        """A new key; returns its record and the plaintext (shown once)."""
        plaintext = KEY_PREFIX + secrets.token_urlsafe(24)
        key = ApiKey(secrets.token_hex(4), name, plaintext[:8], time.time(), None)
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.api_keys).values(
                    id=key.id,
                    name=name,
                    key_hash=hash_key(plaintext),
                    prefix=key.prefix,
                    created_at=key.created_at,
                    revoked_at=None,
                )
            )
        self._required = None
        return key, plaintext

    def all(self) -> list[ApiKey]:
        """Stored keys, oldest first (env keys are not listed)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.api_keys).order_by(t.api_keys.c.created_at)).all()
        return [ApiKey(r.id, r.name, r.prefix, r.created_at, r.revoked_at) for r in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a stored key by id."""
        with self.engine.begin() as conn:
            n = conn.execute(
                update(t.api_keys)
                .where(t.api_keys.c.id == key_id, t.api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            ).rowcount
        self._required = None
        if not n:
            known = ", ".join(k.id for k in self.all() if k.revoked_at is None) or "none"
            raise NotFoundError(f"no active key with id {key_id!r} (active: {known})")
        return next(k for k in self.all() if k.id == key_id)

    def required(self) -> bool:
        """True when any key exists or ever existed, so requests must carry a valid one.

        Revoked keys count: revoking the last key used to turn authentication off, so one
        revocation (meant to lock a client out) opened the service to everyone.
        """
        if self._env_hashes:
            return True
        cached, now = self._required, time.monotonic()
        if cached is not None and now - cached[0] < REQUIRED_TTL_S:
            return cached[1]
        with self.engine.connect() as conn:
            row = conn.execute(select(t.api_keys.c.id).limit(1)).first()
        self._required = (now, row is not None)
        return row is not None

    def verify(self, presented: str) -> str | None:
        """The id of the key ``presented`` matches, or None."""
        digest = hash_key(presented)
        for env_hash, env_id in self._env_hashes.items():
            if hmac.compare_digest(env_hash, digest):
                return env_id
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.api_keys.c.id).where(
                    t.api_keys.c.key_hash == digest, t.api_keys.c.revoked_at.is_(None)
                )
            ).first()
        return str(row[0]) if row else None

    def get(self, key_id: str) -> ApiKey:
        """A stored key by id."""
        for k in self.all():
            if k.id == key_id:
                return k
        raise NotFoundError(f"unknown key id {key_id!r}")
