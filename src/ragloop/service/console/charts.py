"""The overview's two charts, laid out here and drawn as inline SVG by ``_charts.html``.

No chart library and no script: the server computes every coordinate, the template writes
``<svg>`` elements with presentation attributes (allowed by the pages' Content Security
Policy, which refuses inline styles). Each chart has a title for screen readers and the page
keeps its numbers in a table as well.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragloop.core.records import ModelVersion

#: Colours of the miss reasons (the legend's swatches use the same).
REASON_COLOURS = {
    "low_score": "#4a2fa8",
    "no_overlap": "#2f6f96",
    "weak_top": "#1f7a63",
    "no_answer": "#9a6a00",
    "negative_feedback": "#a4161a",
}
#: The metric plot's series colours: the version challenged, and the candidate.
CURRENT_COLOUR = "#5b5b66"
CANDIDATE_COLOUR = "#4a2fa8"
REFUSED_COLOUR = "#a4161a"
HELD_OUT = "held-out pairs"


@dataclass
class Tick:
    """An axis label at a position."""

    at: float
    text: str


@dataclass
class GatePoint:
    """One retrain's gate on the plot: the challenged version's score and the candidate's."""

    version: str
    parent: str
    gate_set: str
    current: float
    candidate: float
    promoted: bool
    x: float = 0.0
    y_current: float = 0.0
    y_candidate: float = 0.0

    @property
    def dataset(self) -> bool:
        """True when the gate ran on an admin-named dataset rather than held-out pairs."""
        return self.gate_set != HELD_OUT

    @property
    def short_set(self) -> str:
        """The gate set as the axis shows it."""
        return self.gate_set.rpartition("/")[0] or self.gate_set if self.dataset else "held-out"


@dataclass
class MetricPlot:
    """The primary metric across versions (empty ``points``: no retrain was gated yet)."""

    metric: str
    points: list[GatePoint]
    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float
    y_ticks: list[Tick] = field(default_factory=list)
    current_colour: str = CURRENT_COLOUR
    candidate_colour: str = CANDIDATE_COLOUR
    refused_colour: str = REFUSED_COLOUR

    def line(self, attr: str) -> str:
        """An SVG ``points`` list through one series."""
        return " ".join(f"{p.x:.1f},{getattr(p, attr):.1f}" for p in self.points)


def _scale(lo: float, hi: float, top: float, bottom: float) -> Any:
    def y(value: float) -> float:
        return bottom - (value - lo) / (hi - lo) * (bottom - top)

    return y


def metric_plot(versions: Sequence[ModelVersion]) -> MetricPlot:
    """Every gated version's primary metric, the challenged version's beside it, oldest first."""
    points: list[GatePoint] = []
    metric = "ndcg@10"
    for v in versions:
        gate = v.info.get("gate")
        if not isinstance(gate, Mapping):
            continue
        metric = str(gate.get("primary", metric))
        current, candidate = gate.get("current") or {}, gate.get("candidate") or {}
        if metric not in current or metric not in candidate:
            continue
        points.append(
            GatePoint(
                version=v.version,
                parent=v.parent or "",
                gate_set=str(gate.get("gate_set", HELD_OUT)),
                current=float(current[metric]),
                candidate=float(candidate[metric]),
                promoted=bool(gate.get("promote")),
            )
        )
    step = 110.0
    left, right, top, bottom_margin = 52.0, 16.0, 14.0, 46.0
    width = max(360.0, left + right + step * len(points))
    height = 230.0
    bottom = height - bottom_margin
    plot = MetricPlot(metric, points, width, height, left, width - right, top, bottom)
    if not points:
        return plot
    values = [p.current for p in points] + [p.candidate for p in points]
    lo = max(0.0, math.floor(min(values) * 20) / 20)
    hi = min(1.0, math.ceil(max(values) * 20) / 20)
    if hi - lo < 0.05:
        lo, hi = max(0.0, hi - 0.1), max(hi, 0.1)
    if hi <= lo:
        hi = lo + 0.1
    y = _scale(lo, hi, top, bottom)
    n_ticks = 5
    plot.y_ticks = [
        Tick(y(lo + (hi - lo) * i / (n_ticks - 1)), f"{lo + (hi - lo) * i / (n_ticks - 1):.2f}")
        for i in range(n_ticks)
    ]
    span = (width - right - left) / len(points)
    for i, p in enumerate(points):
        p.x = left + span * (i + 0.5)
        p.y_current = y(p.current)
        p.y_candidate = y(p.candidate)
    return plot


@dataclass
class Segment:
    """One reason's part of a day's bar."""

    reason: str
    count: int
    y: float
    height: float
    colour: str


@dataclass
class DayBar:
    """One day's stacked bar."""

    day: str
    total: int
    x: float
    segments: list[Segment]
    label: str = ""


@dataclass
class MissesChart:
    """Misses per day, stacked by reason."""

    bars: list[DayBar]
    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float
    bar_width: float
    y_ticks: list[Tick]
    legend: list[tuple[str, str]]


def misses_chart(
    days: Sequence[str], per_day: Mapping[str, Mapping[str, int]], reasons: Sequence[str]
) -> MissesChart:
    """A stacked bar per day (a query with two reasons counts in both)."""
    left, right, top, bottom_margin = 36.0, 10.0, 10.0, 34.0
    slot = 34.0
    width = left + right + slot * max(1, len(days))
    height = 170.0
    bottom = height - bottom_margin
    busiest = max((sum(per_day.get(d, {}).values()) for d in days), default=0)
    top_value = max(1, busiest)
    # Whole-number ticks: 0, then up to four more.
    step = max(1, math.ceil(top_value / 4))
    top_value = step * math.ceil(top_value / step)
    y = _scale(0.0, float(top_value), top, bottom)
    ticks = [Tick(y(v), str(v)) for v in range(0, top_value + 1, step)]
    bars = []
    for i, day in enumerate(days):
        counts = per_day.get(day, {})
        x = left + slot * i + 5
        level = 0
        segments = []
        for reason in reasons:
            n = int(counts.get(reason, 0))
            if n <= 0:
                continue
            y_top, y_bottom = y(level + n), y(level)
            segments.append(
                Segment(reason, n, y_top, y_bottom - y_top, REASON_COLOURS.get(reason, "#555"))
            )
            level += n
        # Every other day is labelled (month-day), and the last one always.
        label = day[5:] if i % 2 == (len(days) - 1) % 2 else ""
        bars.append(DayBar(day, level, x, segments, label))
    legend = [(r, REASON_COLOURS.get(r, "#555")) for r in reasons]
    return MissesChart(
        bars, width, height, left, width - right, top, bottom, slot - 10, ticks, legend
    )
