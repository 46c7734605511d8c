"""Webhook intake: is a delivery genuine, and what does it ask for? Pure.

An event never says *what to do* to the environments: it only names models for the reconciler to
look at again, so duplicates, reordering and missed deliveries change nothing (the periodic
resync catches those). Two GitHub events ask for more: a pull request head to validate (the
``releasebot/validate`` check run) and a ``/releasebot`` comment to answer.

* GitHub: ``X-Hub-Signature-256`` is ``sha256=`` + hex HMAC-SHA256 of the raw body.
* MLflow: ``X-MLflow-Signature`` is ``v1,`` + base64 HMAC-SHA256 of
  ``{delivery id}.{timestamp}.{raw body}``; a timestamp more than five minutes off is refused
  (a replayed delivery keeps its old timestamp and signature).

Comparisons are constant-time. This module does no I/O and keeps no state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.catalog import CATALOG_FILE, Catalog
from bot.errors import SecurityError

MAX_SKEW_SECONDS = 300
COMMAND_PREFIX = "/releasebot"
MLFLOW_EVENTS = frozenset({"model_version_alias.created", "model_version_alias.deleted", "model_version_tag.set"})


def verify_github(secret: str, body: bytes, header: str | None) -> None:
    if not header or not header.startswith("sha256="):
        raise SecurityError("missing or malformed X-Hub-Signature-256")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(header.removeprefix("sha256="), expected):
        raise SecurityError("X-Hub-Signature-256 does not match the body")


def sign_mlflow(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify_mlflow(
    secret: str, delivery_id: str | None, timestamp: str | None, body: bytes, header: str | None, now: float
) -> None:
    if not delivery_id or not timestamp or not header:
        raise SecurityError("missing X-MLflow-Delivery-Id, X-MLflow-Timestamp or X-MLflow-Signature")
    try:
        sent = int(timestamp)
    except ValueError:
        raise SecurityError("X-MLflow-Timestamp is not a number") from None
    if abs(now - sent) > MAX_SKEW_SECONDS:
        raise SecurityError(f"X-MLflow-Timestamp is {int(now - sent)} s off; more than {MAX_SKEW_SECONDS} s is refused")
    if not hmac.compare_digest(header, sign_mlflow(secret, delivery_id, timestamp, body)):
        raise SecurityError("X-MLflow-Signature does not match the body")


@dataclass(frozen=True)
class CheckRequest:
    """Validate this commit of the environments repo and report it as the ``releasebot/validate``
    check run. Equal requests coalesce in the work queue."""

    head_sha: str
    head_branch: str
    pull_number: int | None = None


@dataclass(frozen=True)
class CommandRequest:
    """A ``/releasebot`` comment. The delivery id keeps two identical comments two requests."""

    delivery: str
    number: int  # the issue or pull request it was said on
    on_pull_request: bool
    user: str
    line: str  # the command line itself, "/releasebot ..."
    issue_body: str  # a drift alert issue names its (environment, model) in a marker here


@dataclass(frozen=True)
class Routed:
    """What an event asks for: models to reconcile, commits to validate, commands to answer."""

    models: frozenset[str] = frozenset()
    checks: tuple[CheckRequest, ...] = ()
    commands: tuple[CommandRequest, ...] = ()
    note: str = ""
    walks: bool = False  # bring forward every walk waiting for its next look (main's checks moved)


def _model_of_branch(branch: str) -> str | None:
    parts = branch.split("/")
    return parts[2] if len(parts) == 4 and parts[0] == "releasebot" else None


def _models_of_paths(cat: Catalog, paths: Iterable[str]) -> set[str]:
    names = {m.name for m in cat.models}
    found: set[str] = set()
    for path in paths:
        if path == CATALOG_FILE:
            return names  # the catalog changed: everything may have
        parts = path.split("/")
        if len(parts) >= 3 and parts[1] in names:
            found.add(parts[1])
    return found


def _command_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.strip().startswith(COMMAND_PREFIX):
            return line.strip()
    return None


def route_github(event: str, payload: dict[str, Any], cat: Catalog, delivery: str = "") -> Routed:
    action = payload.get("action")
    if event == "pull_request":
        pr = payload.get("pull_request") or {}
        head, base = pr.get("head") or {}, (pr.get("base") or {}).get("ref")
        branch, model = head.get("ref", ""), _model_of_branch(head.get("ref", ""))
        models = frozenset({model}) if model and action in ("closed", "reopened") else frozenset()
        checks: tuple[CheckRequest, ...] = ()
        if (
            action in ("opened", "synchronize", "reopened", "ready_for_review")
            and base == cat.branch
            and head.get("sha")
        ):
            checks = (CheckRequest(head["sha"], branch, pr.get("number")),)
        if not models and not checks:
            return Routed(note=f"pull_request {action}: nothing to do")
        return Routed(models, checks, note=f"pull_request {action} on {branch}")
    if event == "pull_request_review":
        branch = ((payload.get("pull_request") or {}).get("head") or {}).get("ref", "")
        model = _model_of_branch(branch)
        return Routed(frozenset({model}) if model else frozenset(), note=f"{event} {action} on {branch}")
    if event == "push":
        if payload.get("ref") != f"refs/heads/{cat.branch}":
            return Routed(note=f"push to {payload.get('ref')}: not the main branch")
        paths = [
            p for c in payload.get("commits") or [] for k in ("added", "modified", "removed") for p in c.get(k, [])
        ]
        return Routed(frozenset(_models_of_paths(cat, paths)), note=f"push to {cat.branch}")
    if event == "check_run" and action == "rerequested":
        run = payload.get("check_run") or {}
        pulls = run.get("pull_requests") or []
        branch = (run.get("check_suite") or {}).get("head_branch") or ""
        check = CheckRequest(run.get("head_sha", ""), branch, pulls[0].get("number") if pulls else None)
        return Routed(checks=(check,) if check.head_sha else (), note="check_run rerequested")
    if (event == "check_suite" and action == "completed") or event == "status":
        # A commit's checks finished: on a bot branch, its model may move (a step proposed and
        # green); on main, a deployment may have reported back, so waiting walks look now.
        if event == "status":
            sha = payload.get("sha") or ""
            branches = [b.get("name", "") for b in payload.get("branches") or [] if isinstance(b, dict)]
        else:
            suite = payload.get("check_suite") or {}
            sha, branches = suite.get("head_sha") or "", [suite.get("head_branch") or ""]
        models = frozenset(m for m in (_model_of_branch(b) for b in branches) if m)
        on_main = cat.branch in branches
        note = f"{event} on {sha[:12]}" + (": walks look again" if on_main else "")
        return Routed(models, walks=on_main, note=note if (models or on_main) else f"{event}: nothing to do")
    if event == "installation" and action == "created":
        # A fresh installation may have missed everything so far: look at every model.
        return Routed(frozenset(m.name for m in cat.models), note="installation created")
    if event == "issue_comment" and action == "created":
        comment, issue = payload.get("comment") or {}, payload.get("issue") or {}
        line = _command_line(comment.get("body") or "")
        user = comment.get("user") or {}
        if line is None or user.get("type") == "Bot":  # bots, releasebot included, are never obeyed
            return Routed(note="issue_comment: no command")
        request = CommandRequest(
            delivery,
            int(issue.get("number", 0)),
            "pull_request" in issue,
            str(user.get("login", "")),
            line,
            issue.get("body") or "",
        )
        return Routed(commands=(request,), note=f"command from {request.user} on #{request.number}")
    return Routed(note=f"{event} {action or ''}".strip() + ": nothing to do")


def route_mlflow(payload: dict[str, Any], cat: Catalog) -> Routed:
    kind = f"{payload.get('entity')}.{payload.get('action')}"
    registered = (payload.get("data") or {}).get("name")
    if kind not in MLFLOW_EVENTS:
        return Routed(note=f"{kind}: nothing to do")
    models = frozenset(m.name for m in cat.models if m.registered_model == registered)
    return Routed(models, note=f"{kind} on {registered}")
