"""The Prometheus metrics ``releasebot serve`` exposes on ``/metrics``, in one registry.

One object holds them all so that the receiver, the worker and the GitHub forge count into the
same place, and a test can make a fresh set (no process-wide default registry). Every label value
comes from a fixed set chosen here or by the caller, never from request input.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.events = Counter("releasebot_events", "Webhook deliveries", ["source", "type", "outcome"], registry=r)
        self.reconcile_seconds = Histogram("releasebot_reconcile_seconds", "Time per model reconcile", registry=r)
        self.reconcile_failures = Counter("releasebot_reconcile_failures", "Work items that raised", registry=r)
        self.github_calls = Counter(
            "releasebot_github_calls", "GitHub REST operations, by outcome", ["outcome"], registry=r
        )
        self.github_rate_remaining = Gauge(
            "releasebot_github_rate_limit_remaining", "X-RateLimit-Remaining of the last GitHub answer", registry=r
        )
        self.github_rate_remaining.set(float("nan"))  # unknown before the first answer, not 0 (= exhausted)
        self.pull_requests = Counter(
            "releasebot_pull_requests", "Pull requests opened, updated and closed", ["action"], registry=r
        )
        self.checks = Counter(
            "releasebot_checks", "releasebot/validate check runs, by conclusion", ["conclusion"], registry=r
        )
        self.commands = Counter(
            "releasebot_commands", "Comment commands, by outcome", ["command", "outcome"], registry=r
        )
        self._depth = Gauge("releasebot_queue_depth", "Work items waiting", registry=r)

    def queue_depth_from(self, depth: Callable[[], int]) -> None:
        self._depth.set_function(depth)
