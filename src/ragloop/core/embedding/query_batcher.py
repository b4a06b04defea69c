"""Coalesce concurrent query encodes into one batch (dynamic batching, without a timer).

Each request encodes one short question, and on a CPU a forward pass over one question costs
nearly as much as over eight (the per-call work of dispatching every layer dominates: measured
about 4-7 ms for one MiniLM query, about 2-3 ms per query in a batch of 8 with bf16 weights).
Under concurrent load the waiting questions therefore share a pass: the first caller runs at
once with what is queued (alone when the service is idle, so a lone query never waits), and
whoever arrives meanwhile is encoded in the next pass, led by the oldest waiter. There is no
background thread and no delay window: batching happens only when requests already overlap.

Batching changes no vector beyond float rounding: the embedders pad each sub-batch and mask
the padding, so a question's embedding does not depend on its neighbours.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np


class _Ticket:
    __slots__ = ("done", "error", "text", "vector", "wake")

    def __init__(self, text: str) -> None:
        self.text = text
        self.wake = threading.Event()
        self.done = False
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None


class QueryBatcher:
    """Encodes queries one caller at a time from the outside, in shared batches inside.

    ``embed_batch`` is an embedder's batch method (texts -> rows); ``max_batch`` caps one pass
    (1 turns coalescing off: every query is its own pass, in its caller's thread).
    """

    def __init__(
        self, embed_batch: Callable[[Sequence[str]], np.ndarray], max_batch: int = 16
    ) -> None:
        self.embed_batch = embed_batch
        self.max_batch = max(1, max_batch)
        self.passes = 0
        self.queries = 0
        self._pending: deque[_Ticket] = deque()
        self._busy = False
        self._lock = threading.Lock()

    def embed_query(self, text: str) -> np.ndarray:
        """The query's vector, encoded alone or together with concurrent callers' queries.

        Raises what the embedder raised for the pass that held this query.
        """
        if self.max_batch == 1:
            return np.asarray(self.embed_batch([text])[0])
        ticket = _Ticket(text)
        with self._lock:
            self._pending.append(ticket)
            lead = not self._busy
            self._busy = True
        if not lead:
            ticket.wake.wait()  # set when done, or when this caller is to lead the next pass
        if not ticket.done:
            self._lead()
        if ticket.error is not None:
            raise ticket.error
        assert ticket.vector is not None
        return ticket.vector

    def _lead(self) -> None:
        # The leader's own ticket is the oldest pending one, so it is always in this pass.
        with self._lock:
            batch = [
                self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))
            ]
        try:
            vectors = np.asarray(self.embed_batch([t.text for t in batch]))
            for t, v in zip(batch, vectors, strict=True):
                t.vector = v
        except BaseException as exc:  # every waiter of this pass gets the failure, none hangs
            for t in batch:
                t.error = exc
        with self._lock:
            self.passes += 1
            self.queries += len(batch)
            successor = self._pending[0] if self._pending else None
            if successor is None:
                self._busy = False
        for t in batch:
            t.done = True
            t.wake.set()
        if successor is not None:
            successor.wake.set()  # not done: it wakes up as the next leader
