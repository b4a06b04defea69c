"""Client keys: "any key required?" is cached briefly; this object's own changes apply at once."""

from __future__ import annotations

import pytest

from ragloop.core.storage.catalog import Catalog
from ragloop.service import apikeys
from ragloop.service.apikeys import ApiKeys


def test_own_changes_apply_at_once(catalog: Catalog) -> None:
    keys = ApiKeys(catalog.engine)
    assert not keys.required()
    record, plaintext = keys.create("ci")
    assert keys.required() and keys.verify(plaintext) == record.id
    keys.revoke(record.id)
    # Revoking the last key locks its holder out; it never turns authentication off.
    assert keys.required() and keys.verify(plaintext) is None


def test_another_process_keys_count_once_the_cached_answer_expires(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(apikeys.time, "monotonic", lambda: clock[0])
    server = ApiKeys(catalog.engine)
    assert not server.required()
    _, plaintext = ApiKeys(catalog.engine).create("cli")  # as `ragloop keys create` would
    assert not server.required()  # the cached answer, within REQUIRED_TTL_S
    clock[0] += apikeys.REQUIRED_TTL_S
    assert server.required()
    assert server.verify(plaintext) is not None  # verification itself is never cached


def test_env_keys_always_required(catalog: Catalog) -> None:
    keys = ApiKeys(catalog.engine, ("k-one",))
    assert keys.required() and keys.verify("k-one") == "env-0" and keys.verify("nope") is None
