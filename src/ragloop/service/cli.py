"""The ``ragloop`` command line: the entry point that gathers every command module."""

from __future__ import annotations

from ragloop.service import cli_ingest  # noqa: F401  (registers its commands on the app)
from ragloop.service.cli_common import app


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
