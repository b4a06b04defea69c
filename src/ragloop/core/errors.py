"""One error hierarchy for all of ragloop.

Domain code raises these; the HTTP layer maps ``http_status`` to a response and the CLI prints
``str(error)`` as one line with a non-zero exit. Nothing outside ``service`` knows about HTTP.

::

    RagloopError (500)                      anything we raise on purpose
    ├── ConfigError (500)                   settings that cannot work (checked at start-up)
    │   └── ModelUnavailableError (500)     an embedder that is unknown or not installed
    ├── InvalidInputError (400)             a request or argument we refuse
    │   ├── UnsupportedFormatError (415)    a file type we have no loader for
    │   └── PayloadTooLargeError (413)      a file or request over its limit
    ├── DocumentError (422)                 one document that cannot be loaded (empty, corrupt)
    ├── NotFoundError (404)                 an id that does not exist
    ├── ConflictError (409)                 state forbids it now (a job already running, ...)
    ├── AuthError (401)                     missing or wrong credentials
    │   └── ForbiddenError (403)            credentials fine, action not allowed / not enabled
    ├── RateLimitedError (429)              one caller sent more than its configured share
    ├── StoreError (503)                    the vector store or catalog failed underneath us
    └── GeneratorError (502)                an LLM provider failed; callers degrade to extractive
"""

from __future__ import annotations


class RagloopError(Exception):
    """Base of every error ragloop raises on purpose; carries an HTTP status for the API."""

    http_status: int = 500
    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(RagloopError):
    """Settings that cannot work; raised at start-up, before any request is served."""

    code = "config_error"


class ModelUnavailableError(ConfigError):
    """An embedder that is unknown or whose weights are not installed; names the fix."""

    code = "model_unavailable"


class InvalidInputError(RagloopError):
    """Input we refuse: bad arguments, out-of-range values, malformed bodies."""

    http_status = 400
    code = "invalid_input"


class UnsupportedFormatError(InvalidInputError):
    """A file whose type no loader handles."""

    http_status = 415
    code = "unsupported_format"


class PayloadTooLargeError(InvalidInputError):
    """A file or request over its configured size limit."""

    http_status = 413
    code = "payload_too_large"


class DocumentError(RagloopError):
    """One document that cannot be loaded (empty, binary, corrupt, not UTF-8)."""

    http_status = 422
    code = "document_error"


class NotFoundError(RagloopError):
    """An id (document, chunk, job, model version) that does not exist."""

    http_status = 404
    code = "not_found"


class ConflictError(RagloopError):
    """The current state forbids the action (a job already running, a store owned elsewhere)."""

    http_status = 409
    code = "conflict"


class AuthError(RagloopError):
    """Missing or invalid credentials."""

    http_status = 401
    code = "unauthorized"


class ForbiddenError(AuthError):
    """Valid or absent credentials, but the action is not allowed or not enabled."""

    http_status = 403
    code = "forbidden"


class RateLimitedError(RagloopError):
    """A caller (an API key, or an address when anonymous) over its configured rate or size
    limit; ``retry_after_s`` says when the request would be admitted."""

    http_status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreError(RagloopError):
    """The vector store or the catalog failed underneath us."""

    http_status = 503
    code = "store_unavailable"


class GeneratorError(RagloopError):
    """An LLM provider failed (timeout, rate limit, 5xx, bad key); the service degrades to the
    extractive answer instead of failing the request."""

    http_status = 502
    code = "generator_error"
