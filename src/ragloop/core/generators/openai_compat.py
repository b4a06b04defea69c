"""Answers from any OpenAI-compatible chat endpoint (Ollama, vLLM, llama.cpp server), streamed.

Plain ``httpx``: ``POST {base_url}/chat/completions`` with ``stream: true`` and the SSE reply
read line by line (``data: {...}`` chunks, then ``data: [DONE]``). No SDK, since these servers
implement only a subset of the API. Failures (HTTP errors, timeouts, refused connections, error
chunks, garbled or truncated streams) each become a one-line ``GeneratorError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from ragloop.core.errors import GeneratorError
from ragloop.core.generators.base import Context, LLMGenerator, Turn, one_line
from ragloop.core.generators.prompts import conversation, system_prompt

if TYPE_CHECKING:
    from ragloop.core.settings import Settings


class OpenAICompatGenerator(LLMGenerator):
    """Streams answers from an OpenAI-compatible ``/chat/completions`` endpoint."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timeout_s = timeout_s
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # The trailing slash makes relative paths extend the base path (".../v1/chat/...").
        self._client = httpx.Client(
            base_url=self.base_url + "/",
            headers=headers,
            timeout=timeout_s,
            transport=transport,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.BaseTransport | None = None
    ) -> OpenAICompatGenerator:
        """Build from ``RAGLOOP_OPENAI_*`` settings; the caller checks the URL is set."""
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return cls(
            base_url=settings.openai_base_url or "",
            model=settings.openai_model,
            api_key=key,
            timeout_s=settings.generator_timeout_s,
            max_tokens=settings.max_answer_tokens,
            transport=transport,
        )

    def stream(
        self, question: str, contexts: Sequence[Context], history: Sequence[Turn] = ()
    ) -> Iterator[str]:
        """Yield ``choices[0].delta.content`` of each chunk; raises GeneratorError on failure."""
        messages = [{"role": "system", "content": system_prompt(contexts)}]
        messages += conversation(question, history)
        body = self._body(messages, stream=True)
        try:
            with self._client.stream("POST", "chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._status_error(response)
                yield from _parse_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        except ValueError as exc:  # JSON of a garbled chunk
            raise GeneratorError(one_line(f"openai-compatible stream unreadable: {exc}")) from exc

    def complete(self, system: str, user: str, max_tokens: int) -> str:
        """One non-streaming completion: ``choices[0].message.content``."""
        return self.complete_short(system, user, max_tokens, self.timeout_s)

    def complete_short(self, system: str, user: str, max_tokens: int, timeout_s: float) -> str:
        """One non-streaming completion within ``timeout_s`` (this generator never retries)."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        body = self._body(messages, stream=False, max_tokens=max_tokens)
        try:
            response = self._client.post("chat/completions", json=body, timeout=timeout_s)
            if response.status_code >= 400:
                raise self._status_error(response)
            content = response.json()["choices"][0]["message"].get("content")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, timeout_s) from exc
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise GeneratorError(one_line(f"openai-compatible reply unreadable: {exc!r}")) from exc
        return content if isinstance(content, str) else ""

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def _body(
        self, messages: list[dict[str, str]], *, stream: bool, max_tokens: int | None = None
    ) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens or self.max_tokens,
            "temperature": self.temperature,
            "stream": stream,
        }

    def _status_error(self, response: httpx.Response) -> GeneratorError:
        detail = response.text
        try:
            err = response.json().get("error", detail)
            detail = err.get("message", str(err)) if isinstance(err, dict) else str(err)
        except (ValueError, AttributeError):
            pass
        hint = "; check RAGLOOP_OPENAI_API_KEY" if response.status_code in (401, 403) else ""
        return GeneratorError(
            one_line(f"openai-compatible server HTTP {response.status_code}: {detail}{hint}")
        )

    def _transport_error(
        self, exc: httpx.HTTPError, timeout_s: float | None = None
    ) -> GeneratorError:
        if isinstance(exc, httpx.TimeoutException):
            waited = self.timeout_s if timeout_s is None else timeout_s
            return GeneratorError(f"openai-compatible request timed out after {waited:g}s")
        if isinstance(exc, httpx.ConnectError):
            return GeneratorError(one_line(f"could not connect to {self.base_url}: {exc}"))
        return GeneratorError(one_line(f"openai-compatible request failed: {exc!r}"))


def _parse_sse(lines: Iterator[str]) -> Iterator[str]:
    """Text deltas from SSE lines; the stream must end with ``[DONE]`` or a finish reason.

    Comments (``: keep-alive``), ``event:``/``id:`` fields and blank lines are skipped. A chunk
    carrying ``error`` (vLLM and llama.cpp report mid-stream failures that way) raises.
    """
    finished = False
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        if not payload:
            continue
        chunk = json.loads(payload)
        if not isinstance(chunk, dict):
            raise ValueError(f"chunk is not an object: {payload[:80]}")
        if "error" in chunk:
            err = chunk["error"]
            detail = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            raise GeneratorError(one_line(f"openai-compatible stream error: {detail}"))
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                yield content
            if choice.get("finish_reason"):
                finished = True
    if not finished:
        raise GeneratorError("openai-compatible stream ended before [DONE]")
