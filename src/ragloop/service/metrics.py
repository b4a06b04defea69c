"""Prometheus metrics of one app instance (its own registry, so tests can build many apps).

Several worker processes (``ragloop serve --workers N``) share one port, and a scrape lands on
any one of them; so when ``PROMETHEUS_MULTIPROC_DIR`` is set (``serve`` sets it up for N > 1),
prometheus-client's multiprocess mode applies: every process writes its counters and
histograms to files in that folder, and a scrape sums them over all processes. The catalog
gauges are read from the catalog at scrape time either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class _CatalogCollector(Collector):
    """Reads the live numbers from the catalog at scrape time (no stale gauges)."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        data = self.read()
        docs = GaugeMetricFamily("ragloop_documents", "Documents in the catalog")
        docs.add_metric([], data["documents"])
        chunks = GaugeMetricFamily("ragloop_chunks", "Chunks in the catalog")
        chunks.add_metric([], data["chunks"])
        active = GaugeMetricFamily(
            "ragloop_active_model", "The active model version (value 1)", labels=["version"]
        )
        active.add_metric([data["model_version"]], 1)
        yield from (docs, chunks, active)


class Metrics:
    """Request latency by route, queries, misses by reason, and catalog gauges."""

    def __init__(self, read_catalog: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "ragloop_request_seconds",
            "HTTP request latency by route",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.queries = Counter(
            "ragloop_queries", "Questions answered", ["generator"], registry=self.registry
        )
        self.misses = Counter(
            "ragloop_misses", "Misses by reason", ["reason"], registry=self.registry
        )
        self.catalog = _CatalogCollector(read_catalog)
        self.registry.register(self.catalog)

    def render(self) -> bytes:
        """The exposition text: every worker process's counters in multiprocess mode."""
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        merged.register(self.catalog)
        return generate_latest(merged)
