"""``releasebot serve``: the webhook receiver, health and metrics. A thin shell.

Every delivery is verified (401 otherwise), capped at :data:`MAX_BODY` (413), parsed (400 when
malformed), deduplicated on its delivery id, routed by :mod:`bot.intake` to the models it
concerns, and answered 202 at once; the work happens on a :class:`CoalescingQueue`, so GitHub's
10-second limit is never at risk and a burst for one model costs one reconcile. A periodic resync
queues every model, which catches whatever a webhook missed (MLflow delivers best effort).

Three kinds of work reach the queue: a model to reconcile (coalescing), a commit to validate for
the ``releasebot/validate`` check run (coalescing per commit), and a comment command (one per
delivery). The :class:`Worker` does them; this module only decides what to queue. Unknown events
are answered 202 and logged, with no work.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot import intake
from bot.catalog import Catalog
from bot.errors import SecurityError
from bot.intake import CheckRequest, CommandRequest
from bot.metrics import Metrics
from bot.workqueue import CoalescingQueue

# Metric labels come only from this set: a header is attacker-controlled until the signature checks
# out, and every distinct label value would be a new time series held in memory.
GITHUB_EVENTS = frozenset(
    {"pull_request", "pull_request_review", "push", "check_run", "issue_comment", "installation", "ping"}
)
MAX_BODY = 1024 * 1024  # GitHub caps payloads at 25 MB; ours are small, and a cap bounds memory per request
DEDUPE_WINDOW = 10_000
log = logging.getLogger("releasebot.server")


@dataclass(frozen=True)
class Settings:
    github_secret: str
    mlflow_secret: str
    resync_seconds: float = 300.0


class _Seen:
    """Delivery ids seen recently (bounded): a retried delivery is answered but not queued again."""

    def __init__(self, size: int = DEDUPE_WINDOW) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def first_time(self, delivery: str) -> bool:
        with self._lock:
            if delivery in self._ids:
                return False
            self._ids[delivery] = None
            if len(self._ids) > self._size:
                self._ids.popitem(last=False)
            return True


class Worker(Protocol):
    def reconcile(self, model: str) -> None: ...

    def validate(self, check: CheckRequest) -> None: ...

    def command(self, request: CommandRequest) -> None: ...


@dataclass(frozen=True)
class _Model:
    name: str


class Receiver:
    """The app's state: queue, metrics, dedupe. The worker does the work, one item at a time."""

    def __init__(
        self,
        settings: Settings,
        catalog: Callable[[], Catalog],
        worker: Worker,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings, self.catalog, self.clock = settings, catalog, clock
        self.metrics = metrics or Metrics()
        self.registry = self.metrics.registry
        self.seen = _Seen()

        def work(item: Hashable) -> None:
            if isinstance(item, _Model):
                with self.metrics.reconcile_seconds.time():
                    worker.reconcile(item.name)
            elif isinstance(item, CheckRequest):
                worker.validate(item)
            elif isinstance(item, CommandRequest):
                worker.command(item)

        def failed(item: Hashable, exc: BaseException) -> None:
            self.metrics.reconcile_failures.inc()
            log.error("%s failed: %s", item, exc)

        self.queue = CoalescingQueue(work, failed)
        self.metrics.queue_depth_from(self.queue.depth)
        self._stop = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.queue.start()
        threading.Thread(target=self._resync, name="releasebot-resync", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.queue.stop()  # drains what is queued

    def _resync(self) -> None:
        while not self._stop.wait(self.settings.resync_seconds):
            try:
                models = self.catalog().models
            except Exception as exc:  # the repo may be briefly unreadable; try again next round
                log.error("resync skipped: %s", exc)
                continue
            for model in models:
                self.queue.put(_Model(model.name))

    # -- endpoints ----------------------------------------------------------------------------

    async def _body(self, request: Request) -> bytes | Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY:
            return PlainTextResponse("payload too large", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                return PlainTextResponse("payload too large", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    def _accept(self, source: str, kind: str, delivery: str, payload: object, route: Callable) -> Response:
        if not self.seen.first_time(f"{source}:{delivery}"):
            self.metrics.events.labels(source, kind, "duplicate").inc()
            return JSONResponse({"queued": [], "note": "duplicate delivery"}, 202)
        routed = route(payload, self.catalog()) if isinstance(payload, dict) else intake.Routed(note="not an object")
        for model in sorted(routed.models):
            self.queue.put(_Model(model))
        for item in (*routed.checks, *routed.commands):
            self.queue.put(item)
        queued = [*sorted(routed.models), *(f"validate {c.head_sha[:12]}" for c in routed.checks)]
        queued += [f"command on #{c.number}" for c in routed.commands]
        outcome = "queued" if queued else "ignored"
        self.metrics.events.labels(source, kind, outcome).inc()
        log.info("%s %s %s: %s", source, kind, delivery, routed.note)
        return JSONResponse({"queued": queued, "note": routed.note}, 202)

    async def github(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            self.metrics.events.labels("github", "unknown", "too-large").inc()
            return body
        header = request.headers.get("x-github-event", "")
        kind = header if header in GITHUB_EVENTS else "other"
        try:
            intake.verify_github(self.settings.github_secret, body, request.headers.get("x-hub-signature-256"))
            payload = json.loads(body)
        except SecurityError as exc:
            self.metrics.events.labels("github", kind, "unauthorized").inc()
            return PlainTextResponse(str(exc), 401)
        except ValueError:
            self.metrics.events.labels("github", kind, "malformed").inc()
            return PlainTextResponse("body is not JSON", 400)
        delivery = request.headers.get("x-github-delivery", "")
        return self._accept("github", kind, delivery, payload, lambda p, c: intake.route_github(header, p, c, delivery))

    async def mlflow(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            self.metrics.events.labels("mlflow", "unknown", "too-large").inc()
            return body
        h = request.headers
        try:
            intake.verify_mlflow(
                self.settings.mlflow_secret,
                h.get("x-mlflow-delivery-id"),
                h.get("x-mlflow-timestamp"),
                body,
                h.get("x-mlflow-signature"),
                self.clock(),
            )
            payload = json.loads(body)
        except SecurityError as exc:
            self.metrics.events.labels("mlflow", "unknown", "unauthorized").inc()
            return PlainTextResponse(str(exc), 401)
        except ValueError:
            self.metrics.events.labels("mlflow", "unknown", "malformed").inc()
            return PlainTextResponse("body is not JSON", 400)
        kind = f"{payload.get('entity')}.{payload.get('action')}" if isinstance(payload, dict) else "unknown"
        kind = kind if kind in intake.MLFLOW_EVENTS else "other"
        return self._accept("mlflow", kind, h.get("x-mlflow-delivery-id", ""), payload, intake.route_mlflow)

    async def scrape(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(self, request: Request) -> Response:
        try:
            self.catalog()
        except Exception as exc:  # not ready until the environments repo and its catalog load
            return PlainTextResponse(f"not ready: {exc}", 503)
        return PlainTextResponse("ready")


def create_app(receiver: Receiver) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        receiver.start()
        try:
            yield
        finally:
            receiver.stop()  # drains the queue before the process exits

    return Starlette(
        routes=[
            Route("/webhooks/github", receiver.github, methods=["POST"]),
            Route("/webhooks/mlflow", receiver.mlflow, methods=["POST"]),
            Route("/metrics", receiver.scrape),
            Route("/healthz", receiver.healthz),
            Route("/readyz", receiver.readyz),
        ],
        lifespan=lifespan,
    )
