"""The ``ragloop`` command line: the entry point that gathers every command module."""

from __future__ import annotations

from ragloop.cli import (  # noqa: F401  (each module registers its commands)
    eval,
    ingest,
    pairs,
    retrain,
    serve,
)
from ragloop.cli.common import app


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
