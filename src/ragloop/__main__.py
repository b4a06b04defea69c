"""``python -m ragloop``: the same command line as the ``ragloop`` script."""

from ragloop.cli.main import main

main()
