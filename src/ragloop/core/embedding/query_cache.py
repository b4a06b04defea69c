"""A small LRU cache of query embeddings.

Chat clients resend the same questions (retries, suggested prompts, a widget's "search" before
its "answer"), and encoding is most of a query's cost. Entries are keyed by model version as
well as text, so a swap never serves a vector of the previous model.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np


class QueryCache:
    """Thread-safe LRU of ``(version, text) -> vector``; ``size`` 0 turns it off."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(
        self, version: str, text: str, compute: Callable[[str], np.ndarray]
    ) -> np.ndarray:
        """The cached vector for ``text`` under ``version``, computing and storing it if absent.

        Computation runs outside the lock so concurrent misses encode in parallel; the vector
        is made read-only because callers share it.
        """
        if self.size <= 0:
            return compute(text)
        key = (version, text)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        vector = compute(text)
        vector.setflags(write=False)
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return vector

    def __len__(self) -> int:
        return len(self._items)
