"""The ``ragloop`` command line: one module per command group, gathered by ``main``."""
