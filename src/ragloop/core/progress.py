"""The one progress callback type: ``(stage, done, total)``, reported as work advances."""

from collections.abc import Callable

ProgressFn = Callable[[str, int, int], None]
