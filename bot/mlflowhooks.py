"""MLflow's webhook for releasebot: registered once, with the events releasebot routes and its secret.

:func:`ensure` makes the MLflow tracking server deliver to ``serve``'s ``/webhooks/mlflow``:
a webhook already registered for that URL is updated (events, secret, active) rather than
registered again, so running ``releasebot mlflow webhook create`` twice leaves one webhook. The
events are exactly those :mod:`bot.intake` routes (``intake.MLFLOW_EVENTS``). :func:`test` asks
MLflow to send its own test delivery (signed with the secret), which ``serve`` answers only when
the signature holds.

What the MLflow server itself must allow is the server's business and is refused there, with
MLflow's message passed on: webhooks need a SQL backend store; delivery to a private address or
over plain ``http`` needs ``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS`` and ``MLFLOW_WEBHOOK_ALLOWED_SCHEMES``
on the server; secrets need a fixed ``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`` there. Deliveries
themselves are not watched here: ``serve`` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import intake
from bot.errors import ConfigError, PermanentUpstreamError, UpstreamError
from bot.registry import Registry

NAME = "releasebot"
_PAGE = 100


@dataclass(frozen=True)
class Registered:
    action: str  # "created" or "updated"
    webhook_id: str
    name: str
    url: str
    events: tuple[str, ...]
    duplicates: tuple[str, ...] = ()  # other webhooks for the same URL, left alone


@dataclass(frozen=True)
class Tested:
    success: bool
    status: int | None  # the receiver's answer; None when there was none
    said: str  # the receiver's answer (its first 200 characters), or why there was none


def events() -> list[str]:
    return sorted(intake.MLFLOW_EVENTS)


def read_secret(path: Path) -> str:
    """A secret file, byte for byte. Surrounding whitespace is refused rather than stripped: the
    Secret serve reads would keep it, and the signatures would never match."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"--secret-file {path}: {exc.strerror or exc}") from None
    if not text:
        raise ConfigError(f"--secret-file {path} is empty")
    if text != text.strip():
        raise ConfigError(
            f"--secret-file {path} starts or ends with whitespace (a newline?): serve's Secret would hold it "
            "too, so write the file without one (printf '%s' ...)"
        )
    return text


def _webhooks(registry: Registry) -> list[Any]:
    found: list[Any] = []
    token = None
    while True:
        page = registry._call("list webhooks", registry.client.list_webhooks, _PAGE, token)
        found += list(page)
        token = getattr(page, "token", None)
        if not token:
            return found


def _explained(exc: UpstreamError) -> UpstreamError:
    """MLflow's refusal, with what the server's operator can do about it."""
    said = str(exc)
    if "does not support" in said:  # a file store: answered as a server error, but no retry helps
        return PermanentUpstreamError(f"{said}; MLflow keeps webhooks only in a SQL backend store")
    if "scheme" in said or "non-public" in said or "resolve" in said:
        return PermanentUpstreamError(
            f"{said}; for plain http or a private address the MLflow server needs "
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true"
        )
    return exc


def ensure(registry: Registry, url: str, secret: str, name: str = NAME) -> Registered:
    """The webhook for ``url``: registered, or brought up to date when it already is."""
    try:
        return _ensure(registry, url, secret, name)
    except UpstreamError as exc:
        explained = _explained(exc)
        if explained is exc:
            raise
        raise explained from exc


def _ensure(registry: Registry, url: str, secret: str, name: str) -> Registered:
    wanted = events()
    same = [w for w in _webhooks(registry) if w.url == url]
    if same:
        first = same[0]
        # Always updated: MLflow never returns a webhook's secret, so a stale one cannot be seen.
        hook = registry._call(
            f"update webhook {first.webhook_id}",
            lambda: registry.client.update_webhook(
                first.webhook_id, name=name, url=url, events=wanted, secret=secret, status="ACTIVE"
            ),
        )
        action = "updated"
    else:
        hook = registry._call(
            "create webhook",
            lambda: registry.client.create_webhook(
                name, url, wanted, description="releasebot: alias and tag events", secret=secret
            ),
        )
        action = "created"
    return Registered(
        action,
        hook.webhook_id,
        hook.name,
        hook.url,
        tuple(sorted(str(e) for e in hook.events)),
        tuple(w.webhook_id for w in same[1:]),
    )


def test(registry: Registry, webhook_id: str) -> Tested:
    """MLflow's own test delivery of an alias event to the webhook, and what the receiver said."""
    event = "model_version_alias.created"
    result = registry._call(f"test webhook {webhook_id}", registry.client.test_webhook, webhook_id, event)
    said = result.response_body if result.response_status is not None else result.error_message
    return Tested(bool(result.success), result.response_status, (said or "").strip()[:200])
