"""A per-data-dir writer lock, so two processes never write the same store at once."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from ragloop.core.errors import ConflictError
from ragloop.core.storage.catalog import make_private_dir


class WriterLock:
    """An exclusive, non-blocking ``flock`` on ``<data_dir>/writer.lock``.

    The kernel releases it when the holder dies (even on ``kill -9``), so a crash never leaves
    a stale lock behind.
    """

    def __init__(self, data_dir: Path, purpose: str = "write") -> None:
        self.path = data_dir / "writer.lock"
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ConflictError naming the holder."""
        make_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # it names the holder's pid
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConflictError(
                f"{self.path.parent} is in use by {holder}; wait for it to finish, or send this "
                "work to the running server over its API"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({self.purpose})".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
