"""Where split pieces lie in their text, and where to cut a piece that is still too big."""

from __future__ import annotations

from collections.abc import Sequence


def split_point(text: str) -> int:
    """A cut near the middle, at whitespace when there is any."""
    mid = len(text) // 2
    left, right = text.rfind(" ", 0, mid), text.find(" ", mid)
    candidates = [i for i in (left, right) if 0 < i < len(text) - 1]
    return min(candidates, key=lambda i: abs(i - mid)) if candidates else max(1, mid)


def locate(text: str, chunks: Sequence[str]) -> list[tuple[int, str]]:
    """Start offset of each chunk; chunks are verbatim, overlapping, and in document order.

    Repeated text makes ``find`` ambiguous, so each chunk goes to the place that extends the
    covered text furthest while leaving at most whitespace uncovered before it.
    """
    out: list[tuple[int, str]] = []
    prev_start, covered = -1, 0
    for chunk in chunks:
        best, first = -1, -1
        pos = text.find(chunk, prev_start + 1)
        while pos >= 0:
            if pos + len(chunk) > covered:
                first = pos if first < 0 else first
                if text[covered:pos].strip():
                    break  # a later place would skip text
                best = pos
            pos = text.find(chunk, pos + 1)
        pos = next((p for p in (best, first) if p >= 0), max(text.find(chunk, prev_start + 1), 0))
        out.append((pos, chunk))
        prev_start, covered = pos, max(covered, pos + len(chunk))
    return out
