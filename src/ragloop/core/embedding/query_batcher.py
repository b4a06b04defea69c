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

Two guarantees keep one request from hurting another:

- **A failure stays with the request that caused it.** When a shared pass raises, the batch is
  split in halves and each half encoded again, down to single queries, so only the query the
  embedder cannot encode gets the error (one bad query among 16 costs about 8 extra passes).
- **Bulk work waits behind queries.** ``embed_bulk`` (``/v1/embeddings``: up to 2,048 long
  inputs) goes through the same passes in slices sized by tokens (at most ``BULK_SLICE_TOKENS``
  padded tokens and ``BULK_SLICE_TEXTS`` texts), and a pass takes the waiting queries first;
  so a query waits for at most one slice (tens of milliseconds), not for the whole request.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

EmbedFn = Callable[[Sequence[str]], np.ndarray]

#: Padded tokens (texts x longest text) in one pass of bulk work. On a CPU a forward pass costs
#: about the same per token at any batch size past a few texts, so small slices lose little
#: throughput, and a query behind one waits little: two inputs of 256 tokens are about 25 ms
#: of MiniLM on two idle cores.
BULK_SLICE_TOKENS = 512
#: Most texts in one bulk slice, however short they are.
BULK_SLICE_TEXTS = 32
#: Characters per token, to size slices when the caller has no token counts.
CHARS_PER_TOKEN = 4


def token_slices(lengths: Sequence[int], max_tokens: int, max_texts: int) -> list[list[int]]:
    """Indices ``0..len(lengths)-1`` shortest first, cut into slices whose padded size
    (texts x longest length) is at most ``max_tokens`` and that hold at most ``max_texts``
    texts; a text longer than ``max_tokens`` is a slice of its own."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)  # stable: same input, same cut
    slices: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted ascending: the text being added is the longest of the slice so far.
        if current and (
            len(current) >= max_texts or (len(current) + 1) * max(1, lengths[i]) > max_tokens
        ):
            slices.append(current)
            current = []
        current.append(i)
    if current:
        slices.append(current)
    return slices


class _Ticket:
    __slots__ = ("done", "embed", "error", "texts", "vectors", "wake")

    def __init__(self, texts: list[str], embed: EmbedFn | None = None) -> None:
        self.texts = texts
        self.embed = embed  # None: a query, encoded with the batcher's own embed_batch
        self.wake = threading.Event()
        self.done = False
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None


class QueryBatcher:
    """Encodes queries one caller at a time from the outside, in shared batches inside.

    ``embed_batch`` is an embedder's batch method (texts -> rows); ``max_batch`` caps one pass
    (1 turns coalescing off: every query is its own pass, in its caller's thread).
    """

    def __init__(self, embed_batch: EmbedFn, max_batch: int = 16) -> None:
        self.embed_batch = embed_batch
        self.max_batch = max(1, max_batch)
        self.passes = 0
        self.queries = 0
        self.bulk_passes = 0
        self._queries: deque[_Ticket] = deque()
        self._bulk: deque[_Ticket] = deque()
        self._busy = False
        self._lock = threading.Lock()

    @property
    def _pending(self) -> deque[_Ticket]:
        """Queries waiting for a pass (tests watch it to build overlaps)."""
        return self._queries

    def embed_query(self, text: str) -> np.ndarray:
        """The query's vector, encoded alone or together with concurrent callers' queries.

        Raises what the embedder raised for this query (never another query's error).
        """
        if self.max_batch == 1:
            return np.asarray(self.embed_batch([text])[0])
        ticket = _Ticket([text])
        self._submit(ticket, self._queries)
        assert ticket.vectors is not None
        return ticket.vectors[0]

    def embed_bulk(
        self,
        texts: Sequence[str],
        embed: EmbedFn,
        lengths: Sequence[int] | None = None,
        *,
        max_tokens: int = BULK_SLICE_TOKENS,
        max_texts: int = BULK_SLICE_TEXTS,
    ) -> np.ndarray:
        """Embed many texts with ``embed`` in length-sorted slices, one pass each, taken only
        when no query is waiting; rows come back in input order.

        ``lengths`` are the texts' sizes in tokens as the model reads them (special tokens
        included, capped at its longest input); without them they are estimated from the
        characters. A slice holds at most ``max_tokens`` padded tokens and ``max_texts`` texts.
        ``embed`` may differ from the query side (document-side vectors). Raises what the
        embedder raised for a slice; queries are never affected.
        """
        if not texts:
            return np.asarray(embed([]))
        if lengths is None:
            lengths = [len(t) // CHARS_PER_TOKEN + 1 for t in texts]
        elif len(lengths) != len(texts):
            raise ValueError(f"{len(lengths)} lengths for {len(texts)} texts")
        out: np.ndarray | None = None
        for idx in token_slices(lengths, max_tokens, max(1, max_texts)):
            piece = [texts[i] for i in idx]
            if self.max_batch == 1:
                rows = np.asarray(embed(piece))
            else:
                ticket = _Ticket(piece, embed)
                self._submit(ticket, self._bulk)
                assert ticket.vectors is not None
                rows = ticket.vectors
            if out is None:
                out = np.zeros((len(texts), rows.shape[1]), dtype=rows.dtype)
            out[idx] = rows
        assert out is not None
        return out

    def _submit(self, ticket: _Ticket, queue: deque[_Ticket]) -> None:
        with self._lock:
            queue.append(ticket)
            lead = not self._busy
            self._busy = True
        if not lead:
            ticket.wake.wait()  # set when done, or when this caller is to lead
        if not ticket.done:
            self._lead(ticket)
        if ticket.error is not None:
            raise ticket.error

    def _lead(self, own: _Ticket) -> None:
        # Passes run until this caller's own ticket is done: waiting queries go first, so a
        # bulk slice's caller may run a few query passes before its own. Only one leader runs
        # at a time, and its own ticket is still queued, so a pass is never empty.
        while True:
            with self._lock:
                if self._queries:
                    n = min(self.max_batch, len(self._queries))
                    batch = [self._queries.popleft() for _ in range(n)]
                    embed = self.embed_batch
                else:
                    batch = [self._bulk.popleft()]
                    embed = batch[0].embed or self.embed_batch
            self._encode(batch, embed)
            finished = any(t is own for t in batch)
            with self._lock:
                self.passes += 1
                if batch[0].embed is None:
                    self.queries += len(batch)
                else:
                    self.bulk_passes += 1
                successor = None
                if finished:
                    waiting = self._queries or self._bulk
                    successor = waiting[0] if waiting else None
                    if successor is None:
                        self._busy = False
            for t in batch:
                if t is not own:
                    t.done = True
                    t.wake.set()
            if finished:
                own.done = True
                if successor is not None:
                    successor.wake.set()  # not done: it wakes up as the next leader
                return

    def _encode(self, batch: list[_Ticket], embed: EmbedFn) -> None:
        """Encode ``batch`` in one pass; if that raises, halve it and retry each half, so the
        error reaches only the ticket(s) whose own texts the embedder refuses."""
        try:
            rows = np.asarray(embed([text for t in batch for text in t.texts]))
            if rows.shape[0] != sum(len(t.texts) for t in batch):
                raise RuntimeError(f"the embedder returned {rows.shape[0]} rows")
        except BaseException as exc:  # handed to the caller that caused it
            if len(batch) == 1:
                batch[0].error = exc
                return
            mid = len(batch) // 2
            self._encode(batch[:mid], embed)
            self._encode(batch[mid:], embed)
            return
        start = 0
        for t in batch:
            t.vectors = rows[start : start + len(t.texts)]
            start += len(t.texts)
