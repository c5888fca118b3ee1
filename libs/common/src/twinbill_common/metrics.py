"""Prometheus helpers: each service builds its metrics on its own registry (no import-time globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def new_registry() -> CollectorRegistry:
    """A fresh registry for one service instance (tests build several in one process)."""
    return CollectorRegistry(auto_describe=True)


def latency_histogram(name: str, documentation: str, registry: CollectorRegistry,
                      labelnames: tuple[str, ...] = ()) -> Histogram:
    """A seconds histogram with buckets from 1 ms to 10 s."""
    return Histogram(name, documentation, labelnames=labelnames, registry=registry,
                     buckets=LATENCY_BUCKETS)
