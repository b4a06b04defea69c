"""Answers from Claude through the official ``anthropic`` SDK, streamed.

The SDK (2.x) runs on ``httpx2``, so a test or a caller that wants to control the transport
passes an ``httpx2.Client`` (e.g. with ``httpx2.MockTransport``). Every provider failure, be it
a bad key, a rate limit, an overloaded or failing server, a timeout, a dropped connection or a
stream that ends early or cannot be parsed, surfaces as one ``GeneratorError`` with a one-line
message, which the service turns into the extractive fallback.

Retries are ours, not the SDK's: the SDK sleeps as long as a ``retry-after`` header says, which
could hold a query for a minute. Here a failed request is retried at most ``max_retries`` times,
only for transient statuses or a refused connection, and only when the wait is short; otherwise
the error surfaces at once and the user gets the extractive answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anthropic
import httpx2

from ragloop.core.errors import GeneratorError
from ragloop.core.generators.base import Context, LLMGenerator, Turn, one_line
from ragloop.core.generators.prompts import conversation, system_prompt

if TYPE_CHECKING:
    from anthropic.types import MessageParam

    from ragloop.core.settings import Settings

#: What a failing provider can raise: SDK errors, transport errors while reading a stream,
#: and JSON/validation errors (both ValueError) from a garbled one.
PROVIDER_FAILURES: tuple[type[Exception], ...] = (
    anthropic.AnthropicError,
    httpx2.HTTPError,
    httpx2.StreamError,
    ValueError,
)
#: Statuses worth one quick retry: timeout, lock, rate limit, server errors, overloaded (529).
_TRANSIENT = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
#: A server asking us to wait longer than this is not retried; the fallback answers instead.
MAX_RETRY_WAIT_S = 2.0

T = TypeVar("T")


class AnthropicGenerator(LLMGenerator):
    """Streams answers from a Claude model; also serves one-shot completions."""

    name = "anthropic"
    model: str

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        max_tokens: int = 1024,
        max_retries: int = 1,
        retry_wait_s: float = 0.5,
        http_client: httpx2.Client | None = None,
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.retry_wait_s = retry_wait_s
        self._client = anthropic.Anthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,  # see the module docstring: _retrying decides
            http_client=http_client,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, http_client: httpx2.Client | None = None
    ) -> AnthropicGenerator:
        """Build from ``RAGLOOP_ANTHROPIC_*`` settings; the caller checks the key is set."""
        key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else ""
        return cls(
            api_key=key,
            model=settings.anthropic_model,
            base_url=settings.anthropic_base_url,
            timeout_s=settings.generator_timeout_s,
            max_tokens=settings.max_answer_tokens,
            http_client=http_client,
        )

    def stream(
        self, question: str, contexts: Sequence[Context], history: Sequence[Turn] = ()
    ) -> Iterator[str]:
        """Yield Claude's text deltas; raises GeneratorError when the provider fails."""
        system = system_prompt(contexts)
        messages = cast("list[MessageParam]", conversation(question, history))
        try:
            events = self._retrying(
                lambda: self._client.messages.create(
                    model=self.model,
                    max_tokens=self.max_tokens,
                    system=system,
                    messages=messages,
                    stream=True,
                )
            )
            # The context manager closes the HTTP response even if our consumer stops early.
            with events:
                finished = False
                for event in events:
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        if event.delta.text:
                            yield event.delta.text
                    elif event.type == "message_stop":
                        finished = True
                if not finished:
                    raise GeneratorError("anthropic stream ended before message_stop")
        except PROVIDER_FAILURES as exc:
            raise provider_error(exc, self.timeout_s) from exc

    def complete(self, system: str, user: str, max_tokens: int) -> str:
        """One non-streaming completion; the text blocks of the reply joined."""
        return self._complete(system, user, max_tokens, self.timeout_s, retry=True)

    def complete_short(self, system: str, user: str, max_tokens: int, timeout_s: float) -> str:
        """One non-streaming completion within ``timeout_s``, never retried."""
        return self._complete(system, user, max_tokens, timeout_s, retry=False)

    def _complete(
        self, system: str, user: str, max_tokens: int, timeout_s: float, *, retry: bool
    ) -> str:
        def call() -> anthropic.types.Message:
            return self._client.messages.create(
                model=self.model,
                max_tokens=max_tokens,
                system=system,
                messages=[{"role": "user", "content": user}],
                timeout=timeout_s,
            )

        try:
            message = self._retrying(call) if retry else call()
        except PROVIDER_FAILURES as exc:
            raise provider_error(exc, timeout_s) from exc
        return "".join(block.text for block in message.content if block.type == "text")

    def close(self) -> None:
        """Close the SDK's HTTP client."""
        self._client.close()

    def _retrying(self, call: Callable[[], T]) -> T:
        """Run ``call`` (which opens a request), retrying short transient failures.

        Only opening the request is retried: once a stream has started, its text may already
        be on the user's screen, so a failure mid-stream is never retried.
        """
        attempt = 0
        while True:
            try:
                return call()
            except PROVIDER_FAILURES as exc:
                wait = self._retry_wait(exc, attempt)
                if attempt >= self.max_retries or wait is None:
                    raise
            time.sleep(wait)
            attempt += 1

    def _retry_wait(self, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before retrying ``exc``, or None when it is not worth retrying."""
        if isinstance(exc, anthropic.APITimeoutError):
            return None  # the full timeout has already been spent
        if isinstance(exc, anthropic.APIConnectionError):
            return self.retry_wait_s * 2**attempt
        if not isinstance(exc, anthropic.APIStatusError):
            return None
        headers = exc.response.headers
        if headers.get("x-should-retry") == "false" or (
            exc.status_code not in _TRANSIENT and headers.get("x-should-retry") != "true"
        ):
            return None
        asked = _retry_after(headers)
        if asked is not None:
            return asked if asked <= MAX_RETRY_WAIT_S else None
        return self.retry_wait_s * 2**attempt


def provider_error(exc: BaseException, timeout_s: float) -> GeneratorError:
    """Map an SDK, transport or parsing failure to a one-line ``GeneratorError``.

    Failures that are not SDK errors (a JSON or validation error from a garbled stream, a
    transport error raised while reading the body) are provider failures too, so they are
    reported the same way rather than escaping as a 500.
    """
    # The SDK wraps transport errors raised while sending; those raised while reading a stream
    # arrive as plain httpx2 errors.
    if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
        return GeneratorError(f"anthropic request timed out after {timeout_s:g}s")
    if isinstance(exc, httpx2.TransportError):
        return GeneratorError(one_line(f"connection to the anthropic API broke: {exc!r}"))
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__ or exc
        return GeneratorError(f"could not reach the anthropic API: {one_line(str(cause))}")
    if isinstance(exc, anthropic.APIStatusError):
        kind, detail = _error_body(exc.body)
        status = exc.status_code
        # An "event: error" inside a 200 stream (e.g. overloaded_error) carries status 200.
        where = "anthropic stream error" if status < 400 else f"anthropic API HTTP {status}"
        hint = "; check ANTHROPIC_API_KEY" if status in (401, 403) else ""
        text = f"{where} ({kind}: {detail}){hint}" if kind else f"{where}: {detail}{hint}"
        return GeneratorError(one_line(text))
    name = type(exc).__name__
    return GeneratorError(one_line(f"anthropic response could not be read ({name}: {exc})"))


def _retry_after(headers: httpx2.Headers) -> float | None:
    """The wait a response asks for (``retry-after-ms`` or ``retry-after`` seconds)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers.get(name, "")) / scale)
        except ValueError:
            continue
    return None


def _error_body(body: object) -> tuple[str, str]:
    """(error type, message) from an Anthropic error body, tolerating odd shapes."""
    if isinstance(body, dict):
        err: Any = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("type", "")), str(err.get("message", ""))
    return "", str(body or "no details")
