"""The service tests' app factory, shared with the learning-loop tests."""

from tests.service.conftest import make_client  # noqa: F401
