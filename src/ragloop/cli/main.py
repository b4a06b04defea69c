"""The ``ragloop`` command line: the entry point that gathers every command module."""

from __future__ import annotations

# Each module registers its commands as it loads, so this order is the order of `ragloop
# --help` (commands first, then the command groups).
# isort: off
from ragloop.cli import eval, ingest, query, status, retrain, serve, misses  # noqa: F401
from ragloop.cli import pairs, models, keys  # noqa: F401
from ragloop.cli import migrate, worker  # noqa: F401

# isort: on
from ragloop.cli.common import app


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
