"""Canary analysis on Prometheus: is the canary of one rollout step as good as its stable revision?

The walk asks with an :class:`~bot.plan.types.AnalysisRequest` (namespace, revisions, the step's
soak window); this module answers with a :class:`~bot.plan.types.Verdict` whose measurements carry
the PromQL that ran, the canary and stable values and the threshold, so the evidence can go on the
step's pull request as it is.

Three parts, the first two pure:

* :func:`checks` builds the checks an environment's ``canary.analysis`` asks for: the defaults on
  KServe's own request metrics (request count, error ratio, p95 latency, p95 latency against the
  stable revision) and the catalog's own ``queries``.
* :func:`render` fills a query's placeholders; :func:`judge` compares values with thresholds.
* :class:`Prometheus` asks Prometheus's HTTP API (``/api/v1/query``, one instant query per check
  and revision, evaluated at the window's end) and turns its failures into the error tree:
  unreachable, 5xx, 429 and timeouts are :class:`TransientUpstreamError` (the walk looks again
  later; "Prometheus is down" is never a verdict), a query Prometheus refuses (400 ``bad_data``,
  422) is :class:`PermanentUpstreamError` naming the check and its query.

Rules of judgement:

* A check whose canary query returns no sample, or NaN, is *no data*: failed unless the catalog
  says ``noData: pass``. A canary with fewer than ``minRequests`` requests over the window makes
  every default check no data (an error ratio over three requests says nothing); catalog queries
  are judged on their own values, which need not be about requests.
* A ratio to the stable revision (``maxLatencyRatio``, a query's ``maxRatioToStable``) without
  stable data, or with no stable revision at all, is no data as well, and says so in its note.
  There is nothing to judge a ratio against on the canary alone, and the walk fails closed.
* A query that returns several series is refused as a catalog mistake (aggregate it with
  ``sum``/``max``), not judged on an arbitrary one of them.

It deliberately does not decide what a verdict means for the walk (that is the planner's), does not
wait for the soak (the walk asks when the window has passed), and keeps no state between calls.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from bot.catalog import Canary
from bot.errors import ConfigError, PermanentUpstreamError, TransientUpstreamError
from bot.plan.types import AnalysisRequest, Measurement, Verdict

__all__ = [
    "ISTIO",
    "KNATIVE",
    "Check",
    "MetricSet",
    "Prometheus",
    "analyse",
    "checks",
    "judge",
    "metric_set",
    "render",
    "window",
]


@dataclass(frozen=True)
class MetricSet:
    """PromQL for KServe's request metrics in one deployment mode, with placeholders unfilled.

    Each query yields one number for one revision over ``{{window}}``: requests served, the share
    of them that failed with a 5xx, and the p95 latency in milliseconds.
    """

    name: str
    requests: str
    error_ratio: str
    latency_p95_ms: str


def _knative() -> MetricSet:
    # Serverless (Knative) mode: every revision's pods run Knative's queue-proxy in front of the
    # model server, and it counts every request with the revision as a label, whatever runtime
    # serves the model. Names and labels are Knative Serving's documented, "Stable" queue-proxy
    # metrics (knative.dev docs, serving/services/service-metrics: revision_request_count and the
    # revision_request_latencies histogram in milliseconds, labelled namespace_name, revision_name,
    # response_code, response_code_class), as the queue-proxy's Prometheus exporter serves them.
    # Knative releases that export through OpenTelemetry instead (kn.serving.invocation.duration,
    # revision as a resource attribute) need relabelling or the catalog's own queries.
    sel = 'namespace_name="{{namespace}}", revision_name="{{revision}}"'
    return MetricSet(
        name="knative",
        requests=f"sum(increase(revision_request_count{{{sel}}}[{{{{window}}}}]))",
        # "or vector(0)": a revision that never failed has no 5xx series at all, which is a ratio
        # of 0, not missing data. A revision without requests still yields nothing (or NaN).
        error_ratio=(
            f'(sum(rate(revision_request_count{{{sel}, response_code_class="5xx"}}[{{{{window}}}}])) or vector(0))'
            f" / sum(rate(revision_request_count{{{sel}}}[{{{{window}}}}]))"
        ),
        latency_p95_ms=(
            f"histogram_quantile(0.95, sum by (le) (rate(revision_request_latencies_bucket{{{sel}}}[{{{{window}}}}])))"
        ),
    )


def _istio() -> MetricSet:
    # Standard/RawDeployment mode (KServe 0.20 spec.canary[]): no Knative revision and no
    # queue-proxy. The canary is its own Deployment, named from its predictor.name, so the request
    # names Deployments, and the standard Istio metrics are the ones that count requests per
    # Deployment with status codes: istio_requests_total and the
    # istio_request_duration_milliseconds histogram, labelled destination_workload (the
    # Deployment), destination_workload_namespace and response_code (Istio docs, "Istio Standard
    # Metrics"). reporter="destination" counts each request once, at the model's own sidecar.
    # KServe's Python model server metrics (request_predict_seconds, ...) carry only model_name and
    # no status code, so they can tell neither revisions nor errors apart. Without a mesh, name
    # the checks as catalog queries.
    sel = 'reporter="destination", destination_workload_namespace="{{namespace}}", destination_workload="{{revision}}"'
    return MetricSet(
        name="istio",
        requests=f"sum(increase(istio_requests_total{{{sel}}}[{{{{window}}}}]))",
        error_ratio=(
            f'(sum(rate(istio_requests_total{{{sel}, response_code=~"5.."}}[{{{{window}}}}])) or vector(0))'
            f" / sum(rate(istio_requests_total{{{sel}}}[{{{{window}}}}]))"
        ),
        latency_p95_ms=(
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(istio_request_duration_milliseconds_bucket{{{sel}}}[{{{{window}}}}])))"
        ),
    )


KNATIVE = _knative()
ISTIO = _istio()
_MODES = {"serverless": KNATIVE, "knative": KNATIVE, "rawdeployment": ISTIO, "standard": ISTIO}


def metric_set(deployment_mode: str) -> MetricSet:
    """The default queries for a KServe deployment mode (either of its two names)."""
    try:
        return _MODES[deployment_mode.lower()]
    except KeyError:
        raise ConfigError(
            f"no canary analysis for deployment mode {deployment_mode!r}; "
            "KServe's are Serverless (Knative) and RawDeployment (Standard)"
        ) from None


@dataclass(frozen=True)
class Check:
    """One thing to measure for the canary (and the stable revision) and the bounds it must keep.

    ``role`` is ``requests`` for the request count (too few is no data, not a miss), ``kserve`` for
    the other defaults on KServe's request metrics (they mean nothing when the canary served fewer
    than ``minRequests``), ``query`` for a catalog query. ``unit`` is for the threshold text only.
    """

    name: str
    query: str
    max: float | None = None
    min: float | None = None
    max_ratio_to_stable: float | None = None
    role: str = "query"
    unit: str = ""


def checks(canary: Canary, deployment_mode: str) -> tuple[Check, ...]:
    """The checks of one step: KServe's request metrics first, then the catalog's queries."""
    m = metric_set(deployment_mode)
    out = [Check("requests", m.requests, min=canary.min_requests, role="requests")]
    if canary.max_error_ratio is not None:
        out.append(Check("error-ratio", m.error_ratio, max=canary.max_error_ratio, role="kserve"))
    if canary.max_latency_p95_ms is not None:
        out.append(Check("latency-p95", m.latency_p95_ms, max=canary.max_latency_p95_ms, role="kserve", unit="ms"))
    if canary.max_latency_ratio is not None:
        out.append(
            Check(
                "latency-p95-ratio",
                m.latency_p95_ms,
                max_ratio_to_stable=canary.max_latency_ratio,
                role="kserve",
                unit="ms",
            )
        )
    out += [Check(q.name, q.query, q.max, q.min, q.max_ratio_to_stable) for q in canary.queries]
    return tuple(out)


def window(start: datetime, end: datetime) -> str:
    """The soak as a PromQL duration in whole seconds, e.g. ``600s``."""
    seconds = int((end - start).total_seconds())
    if seconds <= 0:
        raise ValueError(f"an analysis window must end after it starts ({start.isoformat()} .. {end.isoformat()})")
    return f"{seconds}s"


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")
PLACEHOLDERS = ("namespace", "model", "revision", "window")


def _label_value(text: str) -> str:
    # Values land inside double-quoted PromQL strings; Kubernetes names never need this, but a
    # quote must not end the string and turn the rest into PromQL.
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render(query: str, *, namespace: str, model: str, revision: str, window: str, check: str = "query") -> str:
    """Fill ``{{namespace}}``, ``{{model}}``, ``{{revision}}`` and ``{{window}}`` in a query.

    An unknown placeholder is a catalog mistake and refused here, before Prometheus is asked.
    """
    values = {"namespace": namespace, "model": model, "revision": revision, "window": window}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ConfigError(
                f"analysis query {check!r} uses {{{{{name}}}}}; the placeholders are "
                + ", ".join(f"{{{{{p}}}}}" for p in PLACEHOLDERS)
            )
        return values[name] if name == "window" else _label_value(values[name])

    return _PLACEHOLDER.sub(fill, query)


TIMES = "\u00d7"  # the multiplication sign, as people write a ratio; spelled out for the linter


def _num(x: float) -> str:
    return f"{x:g}"


def threshold_text(check: Check) -> str:
    """The bounds as a reader sees them: ``≤ 0.01``, ``≥ 100``, ``≤ 1.2 × stable``."""  # noqa: RUF002
    unit = f" {check.unit}" if check.unit else ""
    parts = []
    if check.min is not None:
        parts.append(f"≥ {_num(check.min)}{unit}")
    if check.max is not None:
        parts.append(f"≤ {_num(check.max)}{unit}")
    if check.max_ratio_to_stable is not None:
        parts.append(f"≤ {_num(check.max_ratio_to_stable)} {TIMES} stable")
    return ", ".join(parts)


def _missing(x: float | None) -> bool:
    return x is None or math.isnan(x)


def judge(
    check: Check,
    query: str,
    canary: float | None,
    stable: float | None,
    *,
    no_data: str = "fail",
    too_few_requests: str | None = None,
) -> Measurement:
    """Judge one check's values. ``too_few_requests`` says why the canary's traffic is too thin to
    judge a request-metric check (set by the caller from the request count)."""

    def outcome(passed: bool, note: str) -> Measurement:
        return Measurement(check.name, query, _clean(canary), _clean(stable), threshold_text(check), passed, note)

    def nothing(why: str) -> Measurement:
        return outcome(no_data == "pass", f"no data: {why}" + ("; noData is pass" if no_data == "pass" else ""))

    if check.role == "requests":
        served = 0.0 if canary is None or math.isnan(canary) else canary
        if check.min is not None and served < check.min:
            return nothing(f"{_num(round(served, 2))} requests, fewer than minRequests {_num(check.min)}")
        return outcome(True, "")
    if check.role == "kserve" and too_few_requests:
        return nothing(too_few_requests)
    if _missing(canary):
        return nothing("the canary query returned no sample (or NaN)")
    assert canary is not None
    failed = []
    if check.min is not None and canary < check.min:
        failed.append(f"{_num(canary)} < {_num(check.min)}")
    if check.max is not None and canary > check.max:
        failed.append(f"{_num(canary)} > {_num(check.max)}")
    if check.max_ratio_to_stable is not None:
        if _missing(stable):
            if failed:
                return outcome(False, "; ".join(failed) + "; no stable data to compare with")
            return nothing("no stable data to compare with")
        assert stable is not None
        limit = check.max_ratio_to_stable * stable
        if canary > limit:
            failed.append(f"{_num(canary)} > {_num(check.max_ratio_to_stable)} {TIMES} {_num(stable)}")
    return outcome(not failed, "; ".join(failed))


def _clean(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else x


@dataclass(frozen=True)
class _Asked:
    check: Check
    canary_query: str
    stable_query: str | None


class Prometheus:
    """Prometheus's HTTP API, as canary analysis needs it: instant queries, one number each.

    Queries go by POST (a catalog query may be 4 KiB, past what some proxies take in a URL).
    ``timeout`` bounds each HTTP request and is passed to Prometheus as the evaluation limit.
    """

    def __init__(self, url: str, timeout: float = 10.0, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def query(self, promql: str, at: datetime, check: str = "query") -> float | None:
        """One instant query at ``at``: its single value, or ``None`` when it returned nothing."""
        try:
            response = self.session.post(
                f"{self.url}/api/v1/query",
                data={"query": promql, "time": f"{at.timestamp():.3f}", "timeout": f"{self.timeout:g}s"},
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            raise TransientUpstreamError(f"Prometheus at {self.url} did not answer within {self.timeout:g}s") from exc
        except requests.RequestException as exc:
            raise TransientUpstreamError(f"Prometheus at {self.url} is unreachable: {type(exc).__name__}") from exc
        body = _json(response)
        status = response.status_code
        if status == 429 or status >= 500:
            delay = _retry_after(response.headers.get("Retry-After"))
            raise TransientUpstreamError(
                f"Prometheus at {self.url} answered {status} to check {check!r}: {_error(body)}", delay=delay
            )
        if status in (400, 422):
            # bad_data (PromQL that does not parse) or execution (it parses but cannot be
            # evaluated, e.g. many-to-many matching): the query itself is wrong.
            raise PermanentUpstreamError(f"Prometheus refused the query of check {check!r}: {_error(body)}: {promql}")
        if status != 200 or body is None or body.get("status") != "success":
            raise PermanentUpstreamError(
                f"Prometheus at {self.url} answered {status} to check {check!r}: {_error(body)} "
                "(is prometheus.url the Prometheus HTTP API?)"
            )
        return _value(body.get("data") or {}, check, promql)

    def analyse(self, canary: Canary, request: AnalysisRequest) -> Verdict:
        """Run every check of ``canary`` for the canary and the stable revision over the window."""
        w = window(request.start, request.end)
        asked = []
        for c in checks(canary, request.deployment_mode):

            def fill(revision: str, c: Check = c) -> str:
                return render(
                    c.query, namespace=request.namespace, model=request.model, revision=revision, window=w, check=c.name
                )

            stable = fill(request.stable_revision) if request.stable_revision else None
            asked.append(_Asked(c, fill(request.canary_revision), stable))
        # By position, not by name: a catalog query may share a name with a default check.
        got = [
            (
                self.query(a.canary_query, request.end, a.check.name),
                None if a.stable_query is None else self.query(a.stable_query, request.end, a.check.name),
            )
            for a in asked
        ]
        served = _clean(got[0][0]) or 0.0  # checks() puts the request count first
        thin = (
            f"the canary served {_num(round(served, 2))} requests, fewer than minRequests {canary.min_requests}"
            if served < canary.min_requests
            else None
        )
        measurements = tuple(
            judge(a.check, a.canary_query, c, s, no_data=canary.no_data, too_few_requests=thin)
            for a, (c, s) in zip(asked, got, strict=True)
        )
        return Verdict(all(m.passed for m in measurements), measurements, request.start, request.end)


def analyse(url: str, canary: Canary, request: AnalysisRequest, timeout: float = 10.0) -> Verdict:
    """Judge one rollout step on the Prometheus at ``url``."""
    return Prometheus(url, timeout).analyse(canary, request)


def _json(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error(body: dict[str, Any] | None) -> str:
    if body is None:
        return "not a Prometheus API answer"
    # Prometheus's own message; bounded, since it may quote a long query back.
    return f"{body.get('errorType', 'error')}: {str(body.get('error', ''))[:500]}"


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _value(data: dict[str, Any], check: str, promql: str) -> float | None:
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list):
        return float(result[1])
    if kind == "vector" and isinstance(result, list):
        if not result:
            return None
        if len(result) > 1:
            raise PermanentUpstreamError(
                f"the query of check {check!r} returned {len(result)} series; a check needs one number "
                f"(aggregate it, e.g. with sum or max): {promql}"
            )
        return float(result[0]["value"][1])
    raise PermanentUpstreamError(
        f"the query of check {check!r} returned a {kind}; a check needs an instant vector or scalar: {promql}"
    )
