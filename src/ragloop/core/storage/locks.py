"""The writer lock, so two processes never write the same store at once.

With embedded Chroma it is a ``flock`` on the data dir (one process owns the embedded files);
with a Chroma server (``RAGLOOP_CHROMA_URL``) the writers may be on several hosts, so it is the
catalog's ``writer`` lease (``core.storage.leases``).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from ragloop.core.errors import ConflictError
from ragloop.core.storage.catalog import make_private_dir
from ragloop.core.storage.leases import Leases

#: The lease name of the writer rule.
WRITER_LEASE = "writer"


class WriterLock:
    """An exclusive, non-blocking ``flock`` on ``<data_dir>/writer.lock``.

    The kernel releases it when the holder dies (even on ``kill -9``), so a crash never leaves
    a stale lock behind.

    With ``leases`` it is the catalog's ``writer`` lease instead (a Chroma server shared by
    processes on several hosts): ``acquire`` waits up to ``wait_s`` for it, then raises
    ConflictError naming the holder; a holder that dies loses it after the lease TTL.
    """

    def __init__(
        self,
        data_dir: Path,
        purpose: str = "write",
        leases: Leases | None = None,
        wait_s: float = 0.0,
    ) -> None:
        self.path = data_dir / "writer.lock"
        self.purpose = purpose
        self.leases = leases
        self.wait_s = wait_s
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ConflictError naming the holder."""
        if self.leases is not None:
            self._acquire_lease(self.leases)
            return
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

    def _acquire_lease(self, leases: Leases) -> None:
        deadline = time.monotonic() + self.wait_s
        while not leases.try_acquire(WRITER_LEASE):
            if time.monotonic() >= deadline:
                holder = leases.holder(WRITER_LEASE)
                name = holder[0] if holder else "another process"
                raise ConflictError(
                    f"the store is being written by {name}; wait for it to finish, or send "
                    "this work to the running server over its API"
                )
            time.sleep(0.2)

    def release(self) -> None:
        """Drop the lock."""
        if self.leases is not None:
            self.leases.release(WRITER_LEASE)
            return
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
