"""The retrain scheduler: every N hours and/or after M new misses; off by default.

With several replicas on one catalog, each runs a scheduler but only the holder of the
``scheduler`` lease looks at the triggers (another takes over within the lease TTL when it
dies), and the one-job rule (``JobStore``) refuses a second job whatever happens. Both
triggers count from the newest retrain job in the catalog (the schedule's hours, and the misses
logged since), so a new holder neither restarts the schedule nor counts misses twice.
"""

from __future__ import annotations

import contextlib
import threading
import time

from ragloop.core.errors import RagloopError
from ragloop.core.storage.leases import Leases
from ragloop.core.storage.querylog import QueryLog
from ragloop.finetune.options import RetrainOptions
from ragloop.finetune.retrain import RetrainManager

#: The lease name of the replica whose scheduler looks at the triggers.
SCHEDULER_LEASE = "scheduler"


class Scheduler:
    """A background thread that starts a retrain when a trigger fires and none is running."""

    def __init__(
        self,
        manager: RetrainManager,
        log: QueryLog,
        every_hours: float,
        after_misses: int,
        tick_s: float = 60.0,
        leases: Leases | None = None,
    ) -> None:
        self.manager = manager
        self.log = log
        self.every_s = every_hours * 3600
        self.after_misses = after_misses
        self.tick_s = tick_s
        self.leases = leases
        self._stop = threading.Event()
        self._last = time.time()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="retrain-scheduler")

    @property
    def enabled(self) -> bool:
        """Whether any trigger is configured."""
        return self.every_s > 0 or self.after_misses > 0

    def start(self) -> None:
        """Start the thread when a trigger is configured."""
        if self.enabled:
            self.thread.start()

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()

    def due(self) -> str | None:
        """Why a retrain is due now, or None."""
        newest = self.manager.jobs.recent("retrain", 1)
        if newest:
            self._last = max(self._last, newest[0].created_at)
        if self.every_s > 0 and time.time() - self._last >= self.every_s:
            return "schedule"
        new = self.log.misses_since(self._last)
        if self.after_misses > 0 and new >= self.after_misses:
            return f"{new} new misses"
        return None

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            if self.leases is not None and not self.leases.try_acquire(SCHEDULER_LEASE):
                continue
            reason = self.due()
            if reason is None or self.manager.running() is not None:
                continue
            # Nothing to train on yet is fine: the next trigger tries again.
            with contextlib.suppress(RagloopError):
                self.manager.start(RetrainOptions())
            self._last = time.time()
