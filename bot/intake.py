"""Webhook intake: is a delivery genuine, and what does it ask for? Pure.

An event never says *what to do* to the environments: it only names models for the reconciler to
look at again, so duplicates, reordering and missed deliveries change nothing (the periodic
resync catches those). Some GitHub events ask for more: a commit to validate (the
``releasebot/validate`` check run: a pull request's head, or a merge queue group's head) and a
``/releasebot`` comment to answer.

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
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.catalog import CATALOG_FILE, Catalog
from bot.errors import InvalidRequest, SecurityError

MAX_SKEW_SECONDS = 300
COMMAND_PREFIX = "/releasebot"
MLFLOW_EVENTS = frozenset({"model_version_alias.created", "model_version_alias.deleted", "model_version_tag.set"})
MAX_TIMESTAMP_DIGITS = 12
# GitHub's payloads nest about ten levels deep (a pull request's head repository's owner is
# five); MLflow's three. Sixty-four leaves room and keeps the parser's recursion shallow.
MAX_DEPTH = 64
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def verify_github(secret: str, body: bytes, header: str | None) -> None:
    # Header values arrive decoded as latin-1, so anything may be in them; only ASCII can be a
    # hex digest, and compare_digest refuses to compare non-ASCII text at all.
    if not header or not header.isascii() or not header.startswith("sha256="):
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
    # ASCII digits only, and few of them: int() also reads other scripts' digits, and a huge
    # number cannot be subtracted from a float clock.
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS):
        raise SecurityError("X-MLflow-Timestamp is not a number of seconds")
    sent = int(timestamp)
    if abs(now - sent) > MAX_SKEW_SECONDS:
        raise SecurityError(f"X-MLflow-Timestamp is {int(now - sent)} s off; more than {MAX_SKEW_SECONDS} s is refused")
    if not header.isascii() or not hmac.compare_digest(header, sign_mlflow(secret, delivery_id, timestamp, body)):
        raise SecurityError("X-MLflow-Signature does not match the body")


def parse_json(body: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The body as JSON, refusing nesting deeper than ``max_depth`` *before* parsing: the parser
    recurses per level, and a body of a million ``[`` would otherwise end in a RecursionError."""
    # Most bodies cannot be that deep at all; counting brackets is done in C.
    if body.count(b"[") + body.count(b"{") > max_depth and _depth(body, max_depth) > max_depth:
        raise InvalidRequest(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(body)
    except ValueError as exc:  # includes UnicodeDecodeError and integers too long to convert
        raise InvalidRequest(f"body is not JSON: {str(exc)[:200]}") from None


_TOKENS = re.compile(rb'["\\\[\]{}]')


def _depth(body: bytes, stop: int) -> int:
    """Deepest bracket nesting outside strings, scanning only quotes, backslashes and brackets
    (linear in the body; stops as soon as ``stop`` is passed). Not a validator: the parser
    still decides whether the body is JSON."""
    depth = deepest = 0
    in_string, escaped_at = False, -1
    for match in _TOKENS.finditer(body):
        at, char = match.start(), match.group()
        if in_string:
            if at == escaped_at:
                continue  # this quote or backslash is escaped
            if char == b"\\":
                escaped_at = at + 1
            elif char == b'"':
                in_string = False
        elif char == b'"':
            in_string = True
        elif char in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop:
                    break
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


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


_KINDS = {dict: "an object", list: "an array", str: "a string", int: "an integer", bool: "a boolean"}


def json_kind(value: Any) -> str:
    return "null" if value is None else _KINDS.get(type(value), type(value).__name__)


def _get(obj: dict[str, Any], key: str, kind: type, path: str, default: Any = None, required: bool = False) -> Any:
    """``obj[key]`` when it is a ``kind``; ``default`` when absent or null (unless ``required``);
    :class:`InvalidRequest` naming the JSON path otherwise. Signed is not the same as well-formed:
    the sender's software may change, and a wrong type must be a 400, not a crash."""
    value = obj.get(key)
    if value is None and not required:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise InvalidRequest(f"{path}.{key} is {json_kind(value)}; expected {_KINDS[kind]}")
    return value


def _items(values: list[Any], kind: type, path: str) -> list[Any]:
    for i, value in enumerate(values):
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InvalidRequest(f"{path}[{i}] is {json_kind(value)}; expected {_KINDS[kind]}")
    return values


def _sha(value: str, path: str) -> str:
    if value and not _SHA.fullmatch(value):
        raise InvalidRequest(f"{path} is not a commit id")
    return value


def _head(payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A pull request event's pull request and its head branch, which GitHub always sends."""
    pr = _get(payload, "pull_request", dict, "$", required=True)
    head = _get(pr, "head", dict, "$.pull_request", required=True)
    return pr, _get(head, "ref", str, "$.pull_request.head", required=True)


def route_github(event: str, payload: dict[str, Any], cat: Catalog, delivery: str = "") -> Routed:
    """What a GitHub event asks for. Raises :class:`InvalidRequest` when an event this routes is
    not the shape GitHub documents for it; events it does not route are not looked into."""
    raw_action = payload.get("action")
    action = raw_action if isinstance(raw_action, str) else None
    if event == "pull_request":
        pr, branch = _head(payload)
        head = pr["head"]
        sha = _sha(_get(head, "sha", str, "$.pull_request.head", ""), "$.pull_request.head.sha")
        base = _get(_get(pr, "base", dict, "$.pull_request", {}), "ref", str, "$.pull_request.base", "")
        number = _get(pr, "number", int, "$.pull_request")
        model = _model_of_branch(branch)
        models = frozenset({model}) if model and action in ("closed", "reopened") else frozenset()
        checks: tuple[CheckRequest, ...] = ()
        if action in ("opened", "synchronize", "reopened", "ready_for_review") and base == cat.branch and sha:
            checks = (CheckRequest(sha, branch, number),)
        if not models and not checks:
            return Routed(note=f"pull_request {action}: nothing to do")
        return Routed(models, checks, note=f"pull_request {action} on {branch}")
    if event == "pull_request_review":
        _, branch = _head(payload)
        model = _model_of_branch(branch)
        return Routed(frozenset({model}) if model else frozenset(), note=f"{event} {action} on {branch}")
    if event == "push":
        ref = _get(payload, "ref", str, "$", "")
        if ref != f"refs/heads/{cat.branch}":
            return Routed(note=f"push to {ref}: not the main branch")
        paths: list[str] = []
        for i, commit in enumerate(_items(_get(payload, "commits", list, "$", []), dict, "$.commits")):
            for key in ("added", "modified", "removed"):
                where = f"$.commits[{i}].{key}"
                paths += _items(_get(commit, key, list, f"$.commits[{i}]", []), str, where)
        return Routed(frozenset(_models_of_paths(cat, paths)), note=f"push to {cat.branch}")
    if event == "check_run" and action == "rerequested":
        run = _get(payload, "check_run", dict, "$", required=True)
        pulls = _items(_get(run, "pull_requests", list, "$.check_run", []), dict, "$.check_run.pull_requests")
        suite = _get(run, "check_suite", dict, "$.check_run", {})
        branch = _get(suite, "head_branch", str, "$.check_run.check_suite", "")
        sha = _sha(_get(run, "head_sha", str, "$.check_run", ""), "$.check_run.head_sha")
        number = _get(pulls[0], "number", int, "$.check_run.pull_requests[0]") if pulls else None
        check = CheckRequest(sha, branch, number)
        return Routed(checks=(check,) if check.head_sha else (), note="check_run rerequested")
    if event == "merge_group" and action == "checks_requested":
        # The merge queue tests pull requests merged together on a gh-readonly-queue/... branch;
        # a check it requires must report on that group's head, or the queue waits and then drops it.
        group = _get(payload, "merge_group", dict, "$", required=True)
        sha = _sha(_get(group, "head_sha", str, "$.merge_group", required=True), "$.merge_group.head_sha")
        base = _get(group, "base_ref", str, "$.merge_group", "")
        if base != f"refs/heads/{cat.branch}" or not sha:
            return Routed(note=f"merge_group for {base or 'no base'}: not the main branch")
        branch = _get(group, "head_ref", str, "$.merge_group", "").removeprefix("refs/heads/")
        return Routed(checks=(CheckRequest(sha, branch),), note=f"merge_group checks_requested on {branch}")
    if (event == "check_suite" and action == "completed") or event == "status":
        # A commit's checks finished: on a bot branch, its model may move (a step proposed and
        # green); on main, a deployment may have reported back, so waiting walks look now.
        if event == "status":
            sha = _get(payload, "sha", str, "$", "")
            listed = _items(_get(payload, "branches", list, "$", []), dict, "$.branches")
            branches = [_get(b, "name", str, f"$.branches[{i}]", "") for i, b in enumerate(listed)]
        else:
            suite = _get(payload, "check_suite", dict, "$", required=True)
            sha = _get(suite, "head_sha", str, "$.check_suite", "")
            branches = [_get(suite, "head_branch", str, "$.check_suite", "") or ""]
        models = frozenset(m for m in (_model_of_branch(b) for b in branches) if m)
        on_main = cat.branch in branches
        note = f"{event} on {sha[:12]}" + (": walks look again" if on_main else "")
        return Routed(models, walks=on_main, note=note if (models or on_main) else f"{event}: nothing to do")
    if event == "installation" and action == "created":
        # A fresh installation may have missed everything so far: look at every model.
        return Routed(frozenset(m.name for m in cat.models), note="installation created")
    if event == "issue_comment" and action == "created":
        comment = _get(payload, "comment", dict, "$", required=True)
        issue = _get(payload, "issue", dict, "$", required=True)
        line = _command_line(_get(comment, "body", str, "$.comment", ""))
        user = _get(comment, "user", dict, "$.comment", {})
        if line is None or _get(user, "type", str, "$.comment.user") == "Bot":  # bots, releasebot too, never obeyed
            return Routed(note="issue_comment: no command")
        request = CommandRequest(
            delivery,
            _get(issue, "number", int, "$.issue", required=True),
            "pull_request" in issue,
            _get(user, "login", str, "$.comment.user", ""),
            line,
            _get(issue, "body", str, "$.issue", ""),
        )
        return Routed(commands=(request,), note=f"command from {request.user} on #{request.number}")
    return Routed(note=f"{event} {action or ''}".strip() + ": nothing to do")


def route_mlflow(payload: dict[str, Any], cat: Catalog) -> Routed:
    kind = f"{payload.get('entity')}.{payload.get('action')}"
    if kind not in MLFLOW_EVENTS:
        return Routed(note=f"{kind[:100]}: nothing to do")
    registered = _get(_get(payload, "data", dict, "$", required=True), "name", str, "$.data", required=True)
    models = frozenset(m.name for m in cat.models if m.registered_model == registered)
    return Routed(models, note=f"{kind} on {registered}")
