"""Atomic file writes: a file appears under its final name complete, or not at all.

Exports and backend decisions are written by whichever process gets there first and read by
every other one, so a crash or a concurrent writer must never leave a half-written file under
the name that is loaded. Everything is written to a unique temporary name beside the target (the
same file system, so the rename is atomic) and renamed over it on success.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden name beside ``path``, unique per process and call."""
    # pid plus random bits: two processes writing the same target never share a temporary.
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on a clean exit it is renamed to ``path``.

    If the block raises, ``path`` is left as it was and the temporary file is removed, so a
    check done inside the block (an export that does not reproduce its source) can veto it.
    """
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8) so readers see the old file or the whole new one."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
