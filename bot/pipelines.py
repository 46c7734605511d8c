"""Kubeflow Pipelines: submit one run, as the retrain CronJob does (``releasebot retrain submit``).

The request is KFP v2beta1's ``CreateRun``: ``POST <endpoint>`` (``.../apis/v2beta1/runs``) with a
``V2beta1Run`` body naming the pipeline (``pipeline_version_reference``: the pipeline, and a
version unless KFP should take the latest), the experiment (KFP's default one when unset), a
display name, a description and the runtime parameters. A token file, when given, is sent as
``Authorization: Bearer <token>``; KFP without authentication (single-user, in-cluster) is common,
so no token is allowed, and the job's log says the request went without one.

Failures are sorted for the Job around the process: a 4xx, an unreadable token or a malformed
parameter will fail the same way again (:class:`PermanentUpstreamError`, :class:`ConfigError`),
while a 5xx, a 429, a timeout or a refused connection may not (:class:`TransientUpstreamError`).
The CLI maps them to different exit codes, and the CronJob's ``podFailurePolicy`` fails the Job at
once on the first kind and leaves the second to ``backoffLimit``.

It deliberately does not wait for the run, look pipelines or experiments up, or create them; it
uses the standard library's HTTP client, so the job imports nothing heavy.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import settings
from bot.errors import ConfigError, PermanentUpstreamError, TransientUpstreamError

# Where the retrain CronJob mounts the token Secret, and the variable that tells the job so.
TOKEN_FILE_ENV = settings.PIPELINES_TOKEN_FILE.name
TOKEN_MOUNT = "/var/run/secrets/releasebot/pipelines"
TOKEN_FILE = f"{TOKEN_MOUNT}/token"
# An error body is shown up to this many characters: enough for KFP's message, not a page of HTML.
_BODY_SHOWN = 500


@dataclass(frozen=True)
class RunRequest:
    """What to submit: everything ``CreateRun`` takes that releasebot sets."""

    endpoint: str
    display_name: str
    pipeline_id: str
    pipeline_version_id: str | None = None
    experiment_id: str | None = None
    description: str | None = None
    parameters: tuple[tuple[str, Any], ...] = ()

    def body(self) -> dict[str, Any]:
        """The ``V2beta1Run`` JSON object."""
        reference: dict[str, Any] = {"pipeline_id": self.pipeline_id}
        if self.pipeline_version_id:
            reference["pipeline_version_id"] = self.pipeline_version_id
        body: dict[str, Any] = {
            "display_name": self.display_name,
            "pipeline_version_reference": reference,
            "runtime_config": {"parameters": dict(self.parameters)},
        }
        if self.experiment_id:
            body["experiment_id"] = self.experiment_id
        if self.description:
            body["description"] = self.description
        return body


def parse_parameter(text: str) -> tuple[str, Any]:
    """``NAME=JSON``: the value keeps its JSON type (``30`` a number, ``"30"`` a string, ``true``)."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise ConfigError(f"--parameter {text!r}: expected NAME=VALUE (the value in JSON)")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"--parameter {name}: {raw!r} is not JSON (quote strings: {name}='\"text\"')") from exc
    if isinstance(value, dict | list) or value is None:
        raise ConfigError(f"--parameter {name}: a pipeline parameter is a string, number or boolean")
    return name, value


def parameter_arg(name: str, value: Any) -> str:
    """The ``--parameter`` argument that :func:`parse_parameter` reads back as ``value``."""
    return f"{name}={json.dumps(value)}"


def read_token(path: str | None) -> str | None:
    """The bearer token in ``path``, or None when no path is given (KFP without authentication)."""
    if not path:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the pipelines token file {path}: {exc.strerror or exc}") from exc
    if not token:
        raise ConfigError(f"the pipelines token file {path} is empty")
    return token


def submit(request: RunRequest, token: str | None, timeout: float = 30.0) -> dict[str, Any]:
    """POST the run; return KFP's answer (the created ``V2beta1Run``, with its ``run_id``)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    http = urllib.request.Request(
        request.endpoint, data=json.dumps(request.body()).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(http, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc.read())
        message = f"KFP answered {exc.code} to POST {request.endpoint}: {detail}"
        if exc.code == 429 or exc.code >= 500:
            raise TransientUpstreamError(message) from exc
        raise PermanentUpstreamError(message) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransientUpstreamError(f"POST {request.endpoint} failed: {reason}") from exc
    try:
        answer = json.loads(raw or b"{}")
    except ValueError:
        answer = {}
    return answer if isinstance(answer, dict) else {}


def _error_detail(raw: bytes) -> str:
    """KFP's error message (a ``google.rpc.Status``: ``{"code", "message", "details"}``) when the
    body is one, else the body's start. Never the request: it may carry a token."""
    text = raw.decode("utf-8", "replace")
    try:
        status = json.loads(text)
    except ValueError:
        status = None
    if isinstance(status, dict) and isinstance(status.get("message"), str):
        text = status["message"]
    text = " ".join(text.split())
    return (text[:_BODY_SHOWN] + "...") if len(text) > _BODY_SHOWN else (text or "(no body)")
