"""Kubernetes, as a release walk needs it: Argo CD Applications and KServe InferenceServices, read-only.

A walk asks the cluster two questions (see "A release is a walk" in DESIGN.md): did Argo CD sync
the merged commit and call the environment Healthy (:meth:`Cluster.application`), and is the
InferenceService Ready with the new revision, and how is its traffic split
(:meth:`Cluster.inference_service`, or :meth:`Cluster.inference_services` for a whole namespace
in one list call during a full pass). Answers are the frozen values of :mod:`bot.plan.types`;
nothing downstream sees a raw object or the ``kubernetes`` library.

The parsing is two pure functions, :func:`app_status` and :func:`isvc_status`, so that they are
tested on upstream's own status objects without any server.

Failures map onto :mod:`bot.errors`: an absent object is ``None`` (the walk decides what that
means); 401/403 is :class:`PermanentUpstreamError` naming the verb and resource the bot's RBAC
lacks; 429, 5xx, refused connections and timeouts are :class:`TransientUpstreamError`. Every
request carries a timeout, and the client's own retries are off so that the worker's backoff is
the only retry loop.

Deliberately not here: writes of any kind (Git is the only way into the cluster), watches (the
walk is level-triggered and re-reads what a key needs), and any decision about what a status
means for the walk (that is :mod:`bot.plan`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from bot import settings
from bot.errors import PermanentUpstreamError, TransientUpstreamError, UpstreamError
from bot.plan.types import AppStatus, CanaryStatus, IsvcStatus, Traffic

__all__ = ["Cluster", "app_status", "isvc_status"]

ARGOCD = ("argoproj.io", "v1alpha1", "applications")
KSERVE = ("serving.kserve.io", "v1beta1", "inferenceservices")
TIMEOUT = (5.0, 15.0)  # (connect, read) seconds: a slow API server must not stall a worker
_BODY_LIMIT = 300  # an API error body can be a whole object; a log line needs its message

T = TypeVar("T")


class Cluster:
    """Read-only access to one cluster's API server with the bot's own credentials.

    Inside a pod (``KUBERNETES_SERVICE_HOST`` set) the ServiceAccount token is used; elsewhere a
    kubeconfig: ``kubeconfig`` if given, else ``$KUBECONFIG``, else ``~/.kube/config``, in
    ``context`` or the file's current context.
    """

    def __init__(
        self,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        timeout: float | tuple[float, float] = TIMEOUT,
    ) -> None:
        cfg = client.Configuration()
        try:
            if settings.IN_POD.get(os.environ) and kubeconfig is None:
                config.load_incluster_config(client_configuration=cfg)
            else:
                path = os.fspath(kubeconfig) if kubeconfig is not None else settings.PLAIN_KUBECONFIG.get(os.environ)
                config.load_kube_config(
                    config_file=path or os.path.expanduser("~/.kube/config"),
                    context=context,
                    client_configuration=cfg,
                    persist_config=False,
                )
        except (config.ConfigException, OSError) as exc:
            raise PermanentUpstreamError(f"Kubernetes: cannot load credentials: {exc}") from exc
        # urllib3 would retry a refused connection three times on its own; the worker retries
        # TransientUpstreamError with backoff, and two nested loops multiply.
        cfg.retries = 0
        self.host = cfg.host
        self.timeout = timeout
        self._api = client.ApiClient(cfg)
        self._custom = client.CustomObjectsApi(self._api)

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reads -------------------------------------------------------------------------------

    def application(self, name: str, namespace: str) -> AppStatus | None:
        """The Argo CD Application ``name`` in Argo CD's ``namespace``; ``None`` if there is none."""
        obj = self._get(ARGOCD, namespace, name)
        return None if obj is None else app_status(obj)

    def inference_service(self, namespace: str, name: str) -> IsvcStatus | None:
        obj = self._get(KSERVE, namespace, name)
        return None if obj is None else isvc_status(obj)

    def inference_services(self, namespace: str) -> dict[str, IsvcStatus]:
        """Every InferenceService of ``namespace`` by name, in one list call (for full passes)."""
        group, version, plural = KSERVE
        listed = self._call(
            "list",
            KSERVE,
            namespace,
            None,
            lambda: self._custom.list_namespaced_custom_object(
                group, version, namespace, plural, _request_timeout=self.timeout
            ),
        )
        if listed is None:
            raise PermanentUpstreamError(
                f"Kubernetes at {self.host} serves no {plural}.{group}/{version} (is KServe installed?)"
            )
        out = {}
        for item in listed.get("items") or []:
            status = isvc_status(item)
            out[status.name] = status
        return out

    # --- plumbing ----------------------------------------------------------------------------

    def _get(self, resource: tuple[str, str, str], namespace: str, name: str) -> dict[str, Any] | None:
        group, version, plural = resource
        return self._call(
            "get",
            resource,
            namespace,
            name,
            lambda: self._custom.get_namespaced_custom_object(
                group, version, namespace, plural, name, _request_timeout=self.timeout
            ),
        )

    def _call(
        self, verb: str, resource: tuple[str, str, str], namespace: str, name: str | None, fn: Callable[[], T]
    ) -> T | None:
        group, _, plural = resource
        what = f"{verb} {plural}.{group} in namespace {namespace!r}" + (f" ({name})" if name else "")
        try:
            return fn()
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _api_error(self.host, verb, resource, namespace, what, exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # Refused, reset, DNS, TLS, and read/connect timeouts all land here; with retries off,
            # urllib3 wraps the cause in MaxRetryError, and the cause is what a reader needs.
            cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
            raise TransientUpstreamError(
                f"Kubernetes at {self.host} is unreachable or too slow: {what}: {type(cause).__name__}"
            ) from exc


def _api_error(
    host: str, verb: str, resource: tuple[str, str, str], namespace: str, what: str, exc: ApiException
) -> UpstreamError:
    group, _, plural = resource
    said = _status_message(exc)
    if exc.status == 401:
        return PermanentUpstreamError(f"Kubernetes at {host} rejected the bot's credentials: {what}: {said}")
    if exc.status == 403:
        return PermanentUpstreamError(
            f"Kubernetes at {host} forbids {what}: the bot's RBAC needs verb {verb!r} on resource "
            f"{plural!r} of API group {group!r} in namespace {namespace!r} (the ClusterRole and Role in "
            f"releasebot/ of the environments repository grant it): {said}"
        )
    if exc.status == 429 or (exc.status or 0) >= 500:
        delay = _retry_after(exc.headers)
        return TransientUpstreamError(f"Kubernetes at {host}: {what}: HTTP {exc.status}: {said}", delay=delay)
    return PermanentUpstreamError(f"Kubernetes at {host}: {what}: HTTP {exc.status}: {said}")


def _status_message(exc: ApiException) -> str:
    """The API server answers errors with a ``Status`` object; its ``message`` is the useful part."""
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else (exc.body or "")
    try:
        message = json.loads(body).get("message") or exc.reason or ""
    except (ValueError, AttributeError):
        message = body or exc.reason or ""
    message = " ".join(str(message).split())
    return message if len(message) <= _BODY_LIMIT else message[: _BODY_LIMIT - 3] + "..."


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    try:
        return float((headers or {}).get("Retry-After", ""))
    except ValueError:
        return None


# --- parsing: raw objects -> plan values (pure) ----------------------------------------------


def _time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it (``...Z``), as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def app_status(obj: Mapping[str, Any]) -> AppStatus:
    """An Argo CD Application object (as the API returns it) as an :class:`AppStatus`.

    A missing ``status.sync.revision`` stays ``None`` (not synced to anything we can name).
    History entries without a revision or a deployment time are skipped; the rest are ordered
    by Argo CD's history id, which it assigns in deployment order.
    """
    status = _dict(obj.get("status"))
    sync = _dict(status.get("sync"))
    operation = _dict(status.get("operationState"))
    history = []
    for entry in sorted(_list(status.get("history")), key=lambda h: _int(_dict(h).get("id")) or 0):
        entry = _dict(entry)
        # A multi-source Application records ``revisions`` instead; its first source is the repository.
        revision = _str(entry.get("revision")) or next(iter(_list(entry.get("revisions"))), None)
        deployed = _time(entry.get("deployedAt"))
        if isinstance(revision, str) and revision and deployed is not None:
            history.append((revision, deployed))
    resources = {}
    for res in _list(status.get("resources")):
        res = _dict(res)
        health = _str(_dict(res.get("health")).get("status"))
        kind, name = _str(res.get("kind")), _str(res.get("name"))
        if health and kind and name:
            resources[(kind, res.get("namespace") or "", name)] = health
    return AppStatus(
        name=str(_dict(obj.get("metadata")).get("name") or ""),
        sync_status=_str(sync.get("status")),
        sync_revision=_str(sync.get("revision")),
        health=_str(_dict(status.get("health")).get("status")),
        operation_phase=_str(operation.get("phase")),
        operation_message=_str(operation.get("message")),
        history=tuple(history),
        resources=resources,
    )


def _why_not_ready(conditions: list[dict[str, Any]]) -> str:
    """The first failing condition, said in one line: type, reason, message.

    ``Ready`` only summarises the others, so a failing component condition is preferred to it;
    ``Stopped`` is failing when it is True.
    """
    failing = [
        c
        for c in conditions
        if (c.get("status") == "True") == (c.get("type") == "Stopped") and c.get("type") is not None
    ]
    if not failing:
        return "InferenceService has not reported its conditions yet"
    first = next((c for c in failing if c.get("type") != "Ready"), failing[0])
    parts = [str(first.get("type")), str(first.get("status"))]
    parts += [str(first[k]) for k in ("reason", "message") if first.get(k)]
    return " ".join(": ".join(parts).split())


def _failure_line(info: dict[str, Any]) -> str | None:
    if not info:
        return None
    head = ": ".join(str(info[k]) for k in ("reason", "message") if info.get(k)) or "model failure"
    where = [f"{k} {info[k]}" for k in ("modelRevisionName", "location", "exitCode", "time") if info.get(k) is not None]
    return " ".join((head + (f" ({', '.join(where)})" if where else "")).split())


def isvc_status(obj: Mapping[str, Any]) -> IsvcStatus:
    """A KServe InferenceService object (as the API returns it) as an :class:`IsvcStatus`.

    Ready is the ``Ready`` condition being True; with no status at all the service is not Ready.
    Traffic and rolled-out revisions come from the predictor component (Knative/Serverless);
    ``canaryStatuses`` from KServe 0.20's ``spec.canary[]`` (Standard). The deployment mode is
    the status's, or the annotation that chose it when the status does not say yet.
    """
    meta = _dict(obj.get("metadata"))
    status = _dict(obj.get("status"))
    conditions = [_dict(c) for c in _list(status.get("conditions"))]
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    stopped = any(c.get("type") == "Stopped" and c.get("status") == "True" for c in conditions)
    predictor = _dict(_dict(status.get("components")).get("predictor"))
    model = _dict(status.get("modelStatus"))
    traffic = tuple(
        Traffic(
            revision=_str(t.get("revisionName")),
            percent=_int(t.get("percent")),
            latest=t.get("latestRevision") is True,
            tag=_str(t.get("tag")),
        )
        for t in map(_dict, _list(predictor.get("traffic")))
    )
    canaries = tuple(
        CanaryStatus(
            name=str(c.get("name") or ""),
            ready=c.get("ready") is True,
            traffic_percent=_int(c.get("trafficPercent")) or 0,
        )
        for c in map(_dict, _list(status.get("canaryStatuses")))
    )
    mode = _str(status.get("deploymentMode")) or _str(
        _dict(meta.get("annotations")).get("serving.kserve.io/deploymentMode")
    )
    return IsvcStatus(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        generation=_int(meta.get("generation")),
        observed_generation=_int(status.get("observedGeneration")),
        ready=ready and not stopped,
        reason=None if ready and not stopped else _why_not_ready(conditions),
        deployment_mode=mode,
        latest_ready_revision=_str(predictor.get("latestReadyRevision")),
        latest_created_revision=_str(predictor.get("latestCreatedRevision")),
        latest_rolledout_revision=_str(predictor.get("latestRolledoutRevision")),
        previous_rolledout_revision=_str(predictor.get("previousRolledoutRevision")),
        traffic=traffic,
        canaries=canaries,
        transition_status=_str(model.get("transitionStatus")),
        failure=_failure_line(_dict(model.get("lastFailureInfo"))),
    )
