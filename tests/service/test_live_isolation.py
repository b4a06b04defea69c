"""A real server (uvicorn on loopback) with the real bundled model: one client sends malformed
Unicode, oversized and huge-but-legal inputs to every query route while 8 clients query; not
one legitimate request may fail."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragloop.core.runtime import open_runtime
from ragloop.core.settings import Settings
from ragloop.ingest.pipeline import Ingestor
from ragloop.service.app import create_app
from tests.ingest.samples import write_corpus
from tests.integrations.live import serve

pytestmark = pytest.mark.integration

BODY_LIMIT = 64 * 1024
SURROGATE = "x \\ud800"  # a JSON escape json.loads turns into a lone surrogate
QUESTIONS = ["What causes scurvy?", "How do volcanoes erupt?", "whale songs", "vitamin C"]


def _bad_requests() -> Iterator[tuple[str, bytes, dict[str, str]]]:
    """(path, body, headers) of everything the hostile client sends, round after round."""
    js = {"content-type": "application/json"}
    for template, path in [
        ('{"question": "%s"}', "/v1/query"),
        ('{"question": "%s"}', "/v1/query/stream"),
        ('{"question": "%s"}', "/api/answer"),
        ('{"question": "%s"}', "/stream"),
        ('{"question": "%s"}', "/api/search"),
        ('{"messages": [{"role": "user", "content": "%s"}]}', "/v1/chat/completions"),
        ('{"input": ["ok", "%s"]}', "/v1/embeddings"),
        ('{"question": "ok", "conversation_id": "%s"}', "/api/answer"),
        ('{"feedback": "LIKE", "conversation_id": "%s", "question_index": 0}', "/api/feedback"),
    ]:
        yield path, (template % SURROGATE).encode(), js
    yield (
        "/api/feedback",
        b'{"feedback":"LIKE","conversation_id":"c","question_index":' + str(2**64).encode() + b"}",
        js,
    )
    yield "/api/answer", json.dumps({"question": "why " * 1000}).encode(), js  # over 2,000 chars
    for path in ("/v1/query", "/api/answer", "/api/search", "/v1/chat/completions", "/stream"):
        yield path, json.dumps({"question": "x" * (BODY_LIMIT + 1)}).encode(), js  # over the limit


def _send_declared_huge(url: str) -> bytes:
    """Declare a 200 MB body, send 1 KB of it, and read the answer: refused without the rest."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200000000\r\n\r\n" + b"{" + b" " * 1023
        )
        return sock.recv(4096)


def test_a_hostile_client_fails_no_legitimate_request(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", generator="extractive", max_body_bytes=BODY_LIMIT
    )
    rt = open_runtime(settings)
    Ingestor(rt).ingest([write_corpus(tmp_path / "docs")])
    rt.close()
    failures: list[str] = []
    refused: dict[int, int] = {}
    done = threading.Event()

    with serve(create_app(settings)) as url:

        def legitimate(worker: int) -> None:
            with httpx.Client(base_url=url, timeout=120) as http:
                for i in range(8):
                    q = QUESTIONS[(worker + i) % len(QUESTIONS)]
                    calls: list[tuple[str, dict[str, Any]]] = [
                        ("/v1/query", {"question": q, "k": 3}),
                        ("/api/answer", {"question": q}),
                        ("/api/search", {"question": q}),
                        ("/v1/chat/completions", {"messages": [{"role": "user", "content": q}]}),
                        ("/v1/embeddings", {"input": [q], "input_type": "query"}),
                    ]
                    path, body = calls[i % len(calls)]
                    r = http.post(path, json=body)
                    if r.status_code != 200:
                        failures.append(f"{path} {r.status_code} {r.text[:200]}")

        def hostile() -> None:
            with httpx.Client(base_url=url, timeout=300) as http:
                while not done.is_set():
                    for path, body, headers in _bad_requests():
                        r = http.post(path, content=body, headers=headers)
                        refused[r.status_code] = refused.get(r.status_code, 0) + 1
                    # Huge but legal: many long inputs in one embeddings call.
                    r = http.post("/v1/embeddings", json={"input": ["long text " * 300] * 64})
                    refused[r.status_code] = refused.get(r.status_code, 0) + 1
                    # A streamed (chunked) body over the limit, counted as it arrives.
                    chunks = iter([b'{"question": "'] + [b"y" * 8192] * 16 + [b'"}'])
                    r = http.post("/api/answer", content=chunks, headers=headers)
                    refused[r.status_code] = refused.get(r.status_code, 0) + 1

        bad = threading.Thread(target=hostile)
        bad.start()
        workers = [threading.Thread(target=legitimate, args=(w,)) for w in range(8)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(600)
        done.set()
        bad.join(600)
        answer = _send_declared_huge(url)

    assert failures == []
    assert set(refused) <= {200, 400, 413}, refused  # refused with a reason, never a 500
    assert refused.get(400) and refused.get(413)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
