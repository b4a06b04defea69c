"""One live ragloop server per test module (fake embedder and generator, an API key)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI

from ragloop.core.storage.querylog import QueryLog
from tests.integrations.live import fake_app, serve


@dataclass
class Live:
    """A running server: its URL and its app (for looking at the query log)."""

    url: str
    app: FastAPI

    @property
    def querylog(self) -> QueryLog:
        return self.app.state.rl.querylog  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    app = fake_app(tmp_path_factory.mktemp("live"))
    with serve(app) as url:
        yield Live(url, app)
