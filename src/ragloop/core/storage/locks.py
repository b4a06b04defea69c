"""The writer lock, so two processes never write the same store at once.

With embedded Chroma it is a ``flock`` on the data dir (one process owns the embedded files);
with a Chroma server (``RAGLOOP_CHROMA_URL``) the writers may be on several hosts, so it is the
catalog's ``writer`` lease (``core.storage.leases``).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from ragloop.core.errors import ConflictError
from ragloop.core.storage.catalog import make_private_dir
from ragloop.core.storage.leases import Leases

#: The lease name of the writer rule.
WRITER_LEASE = "writer"


class _Held:
    """``with lock:`` for a class with ``acquire()`` and ``release()``."""

    def acquire(self) -> object:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class WriterLock(_Held):
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

    def acquire(self, wait_s: float | None = None) -> None:
        """Take the lock or raise ConflictError naming the holder; a lease is waited for up to
        ``wait_s`` (default: the constructor's)."""
        if self.leases is not None:
            self._acquire_lease(self.leases, self.wait_s if wait_s is None else wait_s)
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

    def _acquire_lease(self, leases: Leases, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
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


class WriteLock(Protocol):
    """What a writer of the store holds: ``threading.Lock`` or ``StoreWriteGuard``."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take it; False when ``timeout`` passed first."""
        ...

    def release(self) -> None:
        """Let it go."""
        ...


class StoreWriteGuard(_Held):
    """One writer of the store at a time: among this process's threads (ingest jobs, deletes,
    promotions and rollbacks), and, given a lease-backed ``WriterLock`` (a Chroma server shared
    by replicas), among all processes on every host.

    ``acquire(timeout=t)`` waits up to ``t`` seconds for each part; a lease still held by
    another process after that raises ConflictError naming it, so a caller never writes beside
    another replica's ingest or promotion.
    """

    def __init__(self, lock: WriterLock | None = None) -> None:
        self.lock = lock
        self._mutex = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the process mutex, then the shared lock; False when the mutex timed out."""
        if not self._mutex.acquire(blocking, timeout):
            return False
        if self.lock is not None:
            try:
                self.lock.acquire(0.0 if not blocking else None if timeout < 0 else timeout)
            except BaseException:
                self._mutex.release()
                raise
        return True

    def release(self) -> None:
        """Release both, the shared lock first."""
        try:
            if self.lock is not None:
                self.lock.release()
        finally:
            self._mutex.release()
