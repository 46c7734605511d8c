"""The Prometheus metrics ``releasebot serve`` exposes on ``/metrics``, in two registries.

``receiver`` holds what the HTTP side counts (deliveries, the queue, the worker process's
health); ``worker`` holds what the work counts (reconciles, GitHub calls, pull requests, checks,
commands). The two never share a family, so their expositions can be served one after the
other: in ``serve`` the worker runs in its own process, counts into its own :class:`Metrics`, and
the receiver asks it for the ``worker`` half (see :mod:`bot.workerprocess`).

One object holds them all so that the receiver, the worker and the GitHub forge count into the
same place, and a test can make a fresh set (no process-wide default registry). Every label value
comes from a fixed set chosen here or by the caller, never from request input.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        r = self.receiver = CollectorRegistry()
        self.events = Counter("releasebot_events", "Webhook deliveries", ["source", "type", "outcome"], registry=r)
        self._depth = Gauge("releasebot_queue_depth", "Work items waiting", registry=r)
        self.worker_up = Gauge("releasebot_worker_up", "1 while the worker is up with its catalog loaded", registry=r)
        self.worker_restarts = Counter(
            "releasebot_worker_restarts", "Worker process exits that were not asked for", registry=r
        )

        w = self.worker = CollectorRegistry()
        self.reconcile_seconds = Histogram("releasebot_reconcile_seconds", "Time per model reconcile", registry=w)
        self.reconcile_failures = Counter("releasebot_reconcile_failures", "Work items that raised", registry=w)
        self.github_calls = Counter(
            "releasebot_github_calls", "GitHub REST operations, by outcome", ["outcome"], registry=w
        )
        self.github_rate_remaining = Gauge(
            "releasebot_github_rate_limit_remaining", "X-RateLimit-Remaining of the last GitHub answer", registry=w
        )
        self.github_rate_remaining.set(float("nan"))  # unknown before the first answer, not 0 (= exhausted)
        self.pull_requests = Counter(
            "releasebot_pull_requests", "Pull requests opened, updated and closed", ["action"], registry=w
        )
        self.checks = Counter(
            "releasebot_checks", "releasebot/validate check runs, by conclusion", ["conclusion"], registry=w
        )
        self.commands = Counter(
            "releasebot_commands", "Comment commands, by outcome", ["command", "outcome"], registry=w
        )

    def queue_depth_from(self, depth: Callable[[], int]) -> None:
        self._depth.set_function(depth)

    def worker_exposition(self) -> bytes:
        return generate_latest(self.worker)
