"""The ``ragloop`` command line: the entry point that gathers every command module."""

from __future__ import annotations

from ragloop.service import (  # noqa: F401  (each module registers its commands)
    cli_eval,
    cli_ingest,
    cli_loop,
    cli_pairs,
    cli_serve,
)
from ragloop.service.cli_common import app


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
