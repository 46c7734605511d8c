"""``releasebot serve``: the webhook receiver, health and metrics. A thin shell.

Every delivery is capped at :data:`MAX_BODY` (413), verified (401 otherwise), checked for depth
and parsed (400 when malformed, or when an event it routes is not the shape that event needs),
deduplicated on its delivery id, routed by :mod:`bot.intake` to the models it
concerns, and answered 202 at once; the work happens on a :class:`CoalescingQueue`, so GitHub's
10-second limit is never at risk and a burst for one model costs one reconcile. A periodic resync
queues every model, which catches whatever a webhook missed (MLflow delivers best effort).

Three kinds of work reach the queue: a model to reconcile (coalescing), a commit to validate for
the ``releasebot/validate`` check run (coalescing per commit), and a comment command (one per
delivery). A :class:`bot.work.Work` does them (in ``serve``, a worker process: this process only
answers HTTP, so the work never holds its GIL); this module only decides what to queue. Unknown
events are answered 202 and logged, with no work. Until the work has a catalog to route with,
deliveries get 503 and ``/readyz`` says why. ``GET /app/setup`` is where GitHub sends whoever
registered or installed the App: a page (:func:`bot.githubapp.setup_page`) with the next step.

``/`` is the status page (:mod:`bot.statuspage`): the rows each pass of the worker left
(:meth:`bot.work.Work.status`), laid out in catalog order. A page load runs no pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot import githubapp, intake, status, statuspage
from bot.catalog import Catalog
from bot.errors import InvalidRequest, SecurityError
from bot.redact import redact
from bot.work import Reconcile, Work

# Metric labels come only from this set: a header is attacker-controlled until the signature checks
# out, and every distinct label value would be a new time series held in memory.
GITHUB_EVENTS = frozenset(
    {
        "pull_request",
        "pull_request_review",
        "push",
        "check_run",
        "check_suite",
        "status",
        "merge_group",
        "issue_comment",
        "installation",
        "ping",
    }
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


class Receiver:
    """The app's state: dedupe, metrics, and where the work goes."""

    def __init__(self, settings: Settings, work: Work, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.work, self.clock = settings, work, clock
        self.catalog: Callable[[], Catalog] = work.catalog
        self.queue = work.queue
        self.metrics = work.metrics
        self.metrics.resync_seconds.set(settings.resync_seconds)
        # Refused signatures start at 0: a counter series born at 1 has no increase() to alert on.
        for source, kind in [*(("github", k) for k in sorted(GITHUB_EVENTS | {"other"})), ("mlflow", "unknown")]:
            self.metrics.events.labels(source, kind, "unauthorized")
        self.seen = _Seen()
        self._stop = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.work.start()
        threading.Thread(target=self._resync, name="releasebot-resync", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.work.stop()  # drains what is queued

    def _resync(self) -> None:
        while not self._stop.wait(self.settings.resync_seconds):
            try:
                models = self.catalog().models
            except Exception as exc:  # the repo may be briefly unreadable; try again next round
                log.error("resync skipped: %s", exc)
                continue
            for model in models:
                self.queue.put(Reconcile(model.name))

    # -- endpoints ----------------------------------------------------------------------------

    async def _body(self, request: Request) -> bytes | Response:
        length = request.headers.get("content-length", "")
        if length.isascii() and length.isdigit() and int(length) > MAX_BODY:
            return PlainTextResponse("payload too large", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                return PlainTextResponse("payload too large", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    def _refuse(self, source: str, kind: str, outcome: str, status: int, reason: str) -> Response:
        self.metrics.events.labels(source, kind, outcome).inc()
        fields = {"source": source, "event": kind, "outcome": outcome, "status": status}
        log.warning("%s %s refused (%s, %d): %s", source, kind, outcome, status, reason, extra=fields)
        return PlainTextResponse(reason, status)

    def _accept(self, source: str, kind: str, delivery: str, payload: object, route: Callable) -> Response:
        try:
            cat = self.catalog()
        except Exception as exc:  # the worker is starting or restarting: a retry must not count as a duplicate
            self.metrics.events.labels(source, kind, "not-ready").inc()
            return PlainTextResponse(f"not ready: {exc}", 503)
        if not isinstance(payload, dict):
            reason = f"expected a JSON object, got {intake.json_kind(payload)}"
            return self._refuse(source, kind, "malformed", 400, reason)
        try:
            # Routed before the delivery id is remembered: a refused body is not a delivery.
            routed = route(payload, cat)
        except InvalidRequest as exc:
            return self._refuse(source, kind, "malformed", 400, str(exc))
        if not self.seen.first_time(f"{source}:{delivery}"):
            self.metrics.events.labels(source, kind, "duplicate").inc()
            return JSONResponse({"queued": [], "note": "duplicate delivery"}, 202)
        for model in sorted(routed.models):
            self.queue.put(Reconcile(model))
        if routed.walks:
            for key in self.queue.scheduled():
                self.queue.put(key)
        for item in (*routed.checks, *routed.commands):
            self.queue.put(item)
        queued = [*sorted(routed.models), *(f"validate {c.head_sha[:12]}" for c in routed.checks)]
        queued += [f"command on #{c.number}" for c in routed.commands]
        outcome = "queued" if queued else "ignored"
        self.metrics.events.labels(source, kind, outcome).inc()
        fields = {"source": source, "event": kind, "delivery": delivery, "outcome": outcome, "queued": queued}
        log.info("%s %s %s: %s", source, kind, delivery, routed.note, extra=fields)
        return JSONResponse({"queued": queued, "note": routed.note}, 202)

    async def github(self, request: Request) -> Response:
        header = request.headers.get("x-github-event", "")
        kind = header if header in GITHUB_EVENTS else "other"
        body = await self._body(request)
        if isinstance(body, Response):
            return self._refuse("github", "unknown", "too-large", 413, "payload too large")
        try:
            intake.verify_github(self.settings.github_secret, body, request.headers.get("x-hub-signature-256"))
        except SecurityError as exc:
            return self._refuse("github", kind, "unauthorized", 401, str(exc))
        try:
            payload = intake.parse_json(body)
        except InvalidRequest as exc:
            return self._refuse("github", kind, "malformed", 400, str(exc))
        delivery = request.headers.get("x-github-delivery", "")
        return self._accept("github", kind, delivery, payload, lambda p, c: intake.route_github(header, p, c, delivery))

    async def mlflow(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return self._refuse("mlflow", "unknown", "too-large", 413, "payload too large")
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
        except SecurityError as exc:
            return self._refuse("mlflow", "unknown", "unauthorized", 401, str(exc))
        try:
            payload = intake.parse_json(body)
        except InvalidRequest as exc:
            return self._refuse("mlflow", "unknown", "malformed", 400, str(exc))
        kind = f"{payload.get('entity')}.{payload.get('action')}" if isinstance(payload, dict) else "unknown"
        kind = kind if kind in intake.MLFLOW_EVENTS else "other"
        return self._accept("mlflow", kind, h.get("x-mlflow-delivery-id", ""), payload, intake.route_mlflow)

    async def scrape(self, request: Request) -> Response:
        # The worker's half may take a moment to come (another process); not on the event loop.
        worker = await run_in_threadpool(self.work.exposition)
        return Response(generate_latest(self.metrics.receiver) + worker, media_type=CONTENT_TYPE_LATEST)

    async def app_setup(self, request: Request) -> Response:
        # Where GitHub sends the person who registered or installed the App: the next step, for
        # people (no script). It needs no catalog, so it answers while the worker starts too.
        status, page = githubapp.setup_page(dict(request.query_params))
        return HTMLResponse(page, status, headers=githubapp.SECURITY_HEADERS)

    def _page_text(self) -> str:
        notice = None
        try:
            try:
                cat = self.catalog()
            except Exception as exc:  # the worker is starting: there is nothing to lay rows out by
                rows: tuple[status.Row, ...] = ()
                notice = f"not ready: {exc}"
            else:
                rows = status.board(cat, self.work.status())
            text = statuspage.html(rows, datetime.now(UTC), notice)
        except Exception as exc:
            log.error("the status page could not be built: %s", exc, exc_info=exc)
            text = statuspage.html((), datetime.now(UTC), f"the status page could not be built: {exc}")
        return redact(text)

    async def page(self, request: Request) -> Response:
        """The status page: the rows the worker's passes left (no pass is run for it, so a page
        load costs no git, MLflow or cluster read). Never a 5xx: whatever is missing is said."""
        # A fleet's page takes a moment to lay out: not on the event loop that answers webhooks.
        text = await run_in_threadpool(self._page_text)
        # No script may run on it, whatever a message holds; styles are inline.
        headers = {
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        }
        return HTMLResponse(text, headers=headers)

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
            Route(githubapp.GITHUB_HOOK_PATH, receiver.github, methods=["POST"]),
            Route(githubapp.MLFLOW_HOOK_PATH, receiver.mlflow, methods=["POST"]),
            Route(githubapp.SETUP_PATH, receiver.app_setup),
            Route("/", receiver.page, methods=["GET", "HEAD"]),
            Route("/metrics", receiver.scrape),
            Route("/healthz", receiver.healthz),
            Route("/readyz", receiver.readyz),
        ],
        lifespan=lifespan,
    )
