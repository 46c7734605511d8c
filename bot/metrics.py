"""The Prometheus metrics ``releasebot serve`` exposes on ``/metrics``, in two registries.

``receiver`` holds what the HTTP side counts (deliveries, the queue, the worker process's
health, the build and the resync interval); ``worker`` holds what the work counts (reconciles,
GitHub calls, pull requests, checks, commands) and what the last pass saw per key (when it last
succeeded, the release walk under way, drift). The two never share a family, so their
expositions can be served one after the other: in ``serve`` the worker runs in its own process,
counts into its own :class:`Metrics`, and the receiver asks it for the ``worker`` half (see
:mod:`bot.workerprocess`).

One object holds them all so that the receiver, the worker and the GitHub forge count into the
same place, and a test can make a fresh set (no process-wide default registry). Every label value
comes from a fixed set chosen here or by the caller, or from the catalog (environment and model
names), never from request input.

The per-key series follow :meth:`Metrics.record_pass`: a series exists while there is something
to say. A walk's series are *removed* when the walk ends, not set to 0: ``count()`` then counts
walks under way, a step 0 never reads as a walk, and the "stuck walk" rule cannot fire on the
remains of a finished one. Drift has no series until a drift check judged the version serving.
A key whose pass failed keeps what the last good pass said (so an alert does not resolve
because the registry was briefly unreadable); a key that left the catalog loses every series.

This module decides nothing about walks or drift; the worker (:mod:`bot.service`) translates a
pass into :class:`KeyState` values.
"""

from __future__ import annotations

import contextlib
import platform
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot import __version__

_KEY = ["environment", "model"]


@dataclass(frozen=True)
class WalkState:
    """A release walk under way on main, as the metrics show it."""

    step: int  # counted from 1, as pull request titles count ("canary 10% (1 of 3)")
    percent: int  # the canary's share of traffic at that step
    started: float | None  # when (Unix time) the commit that set this step landed on main
    deadline: float  # seconds a step takes at most when all goes well (see bot.service)


@dataclass(frozen=True)
class KeyState:
    """What one pass found for one (environment, model)."""

    environment: str
    model: str
    ok: bool  # the pass planned this key without an error
    drift: bool | None = None  # the drift check's verdict on the version serving; None: none yet
    walk: WalkState | None = None


class Metrics:
    def __init__(self) -> None:
        r = self.receiver = CollectorRegistry()
        self.events = Counter("releasebot_events", "Webhook deliveries", ["source", "type", "outcome"], registry=r)
        self._depth = Gauge("releasebot_queue_depth", "Work items waiting", registry=r)
        self.worker_up = Gauge("releasebot_worker_up", "1 while the worker is up with its catalog loaded", registry=r)
        self.worker_restarts = Counter(
            "releasebot_worker_restarts", "Worker process exits that were not asked for", registry=r
        )
        self.build_info = Gauge(
            "releasebot_build_info",
            "Always 1: the releasebot and Python versions running",
            ["version", "python"],
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.resync_seconds = Gauge(
            "releasebot_resync_interval_seconds",
            "Seconds between full resyncs: every model is queued this often",
            registry=r,
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
        self.last_success = Gauge(
            "releasebot_last_successful_reconcile_timestamp_seconds",
            "When (Unix time) a pass last planned and carried out this key without an error",
            _KEY,
            registry=w,
        )
        self.walk_step = Gauge(
            "releasebot_walk_step",
            "The canary step of the release walk under way on main, counted from 1",
            _KEY,
            registry=w,
        )
        self.walk_percent = Gauge(
            "releasebot_walk_canary_percent", "The canary's share of traffic at the walk's step", _KEY, registry=w
        )
        self.walk_started = Gauge(
            "releasebot_walk_step_started_timestamp_seconds",
            "When (Unix time) the commit that set the walk's current step landed on main",
            _KEY,
            registry=w,
        )
        self.walk_deadline = Gauge(
            "releasebot_walk_step_deadline_seconds",
            "Seconds a step takes at most when all goes well: the canary deadline plus its interval",
            _KEY,
            registry=w,
        )
        self.drift_detected = Gauge(
            "releasebot_drift_detected",
            "1 while the drift check finds drift on the version serving, 0 when it finds none",
            _KEY,
            registry=w,
        )
        self._keys_lock = threading.Lock()  # keys run on several threads; the set of keys is shared
        self._keys: set[tuple[str, str]] = set()

    def queue_depth_from(self, depth: Callable[[], int]) -> None:
        self._depth.set_function(depth)

    def worker_exposition(self) -> bytes:
        return generate_latest(self.worker)

    def record_pass(self, model: str | None, keys: Iterable[KeyState], at: float) -> None:
        """What a pass over ``model`` (None: every model) found, at ``at`` (Unix time).

        ``keys`` holds every key the pass covered; a key with series that the pass covered but
        ``keys`` lacks has left the catalog, and its series go.
        """
        keys = list(keys)
        with self._keys_lock:
            seen = {(k.environment, k.model) for k in keys}
            gone = {k for k in self._keys if (model is None or k[1] == model) and k not in seen}
            for key in gone:
                for gauge in (self.last_success, self.drift_detected, *self._walk_gauges()):
                    _remove(gauge, key)
            self._keys -= gone
            for k in keys:
                if not k.ok:
                    continue  # what the last good pass said stands
                key = (k.environment, k.model)
                self._keys.add(key)
                self.last_success.labels(*key).set(at)
                if k.drift is None:
                    _remove(self.drift_detected, key)
                else:
                    self.drift_detected.labels(*key).set(1 if k.drift else 0)
                self._set_walk(key, k.walk)

    def _walk_gauges(self) -> tuple[Gauge, ...]:
        return (self.walk_step, self.walk_percent, self.walk_started, self.walk_deadline)

    def _set_walk(self, key: tuple[str, str], walk: WalkState | None) -> None:
        if walk is None:
            for gauge in self._walk_gauges():
                _remove(gauge, key)
            return
        self.walk_step.labels(*key).set(walk.step)
        self.walk_percent.labels(*key).set(walk.percent)
        self.walk_deadline.labels(*key).set(walk.deadline)
        if walk.started is None:
            # Without the step's landing time there is no honest age: no series, so the stuck
            # rule stays silent rather than measuring from a made-up start.
            _remove(self.walk_started, key)
        else:
            self.walk_started.labels(*key).set(walk.started)


def _remove(gauge: Gauge, key: tuple[str, str]) -> None:
    with contextlib.suppress(KeyError):  # older prometheus_client raises for a series never set
        gauge.remove(*key)
