"""releasebot's alerts and dashboard, generated into ``releasebot/`` next to its ServiceMonitor.

* ``releasebot/prometheusrule.yaml``: a PrometheusRule (Prometheus Operator) with the alerts of
  :func:`alerts`, unless ``bot.prometheusRule: false`` (by default it follows
  ``bot.serviceMonitor``: both need the operator's CRDs).
* ``releasebot/grafana-dashboard.yaml``: a ConfigMap labelled ``grafana_dashboard: "1"``, the
  label kube-prometheus-stack's Grafana sidecar loads dashboards by, holding the JSON of
  :func:`dashboard`, unless ``bot.grafanaDashboard: false``.

Every PromQL expression lives here. releasebot's own series are selected by the job the
Prometheus Operator gives the ServiceMonitor's targets (the Service's name, since the
ServiceMonitor sets no ``jobLabel``) and the bot's namespace. The serving panels read KServe's
request metrics under the names canary analysis uses (:mod:`bot.analysis`): Knative's
queue-proxy metrics in Serverless mode, Istio's standard metrics in Standard/RawDeployment mode.

Pure: catalog in, plain data out. It deploys no Prometheus or Grafana, and knows the metrics only
by name (:mod:`bot.metrics` counts them; a test checks the names against a real exposition).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ruamel.yaml.scalarstring import LiteralScalarString

from bot import __version__
from bot.blueprints import BlueprintSet
from bot.catalog import Catalog
from bot.manifests.ownership import Owned

RULE_FILE = "prometheusrule.yaml"
DASHBOARD_FILE = "grafana-dashboard.yaml"
DASHBOARD_KEY = "releasebot.json"
JOB = "releasebot"  # blueprints/releasebot/service.yaml's name, which becomes the job label
# Grafana migrates a dashboard's schema forward when it loads it, never back: 39 (Grafana 10.4)
# loads as it is on Grafana 10.4 and later, and is migrated by every newer one.
SCHEMA_VERSION = 39
RATE_LIMIT_LOW = 500  # of at least 5,000 an hour per App installation: a tenth left
RUNBOOK = f"https://github.com/releasebot/releasebot/blob/v{__version__}/README.md"

_PLACED = [Owned(("metadata", "name")), Owned(("metadata", "namespace"))]
# The labels decide which Prometheus selects the object: the catalog's, whole.
LABELLED_OWNED = [*_PLACED, Owned(("metadata", "labels"))]
RULE_OWNED = [*LABELLED_OWNED, Owned(("spec", "groups"))]
DASHBOARD_OWNED = [*LABELLED_OWNED, Owned(("data", DASHBOARD_KEY))]


def labels(cat: Catalog) -> dict[str, str]:
    """The labels of the ServiceMonitor and the PrometheusRule: releasebot's, then the catalog's."""
    return {"app.kubernetes.io/name": "releasebot", "app.kubernetes.io/managed-by": "releasebot"} | dict(
        cat.bot_monitoring_labels
    )


def _bot(cat: Catalog, *more: str) -> str:
    """The label matchers of releasebot's own series."""
    return ", ".join((f'job="{JOB}"', f'namespace="{cat.bot_namespace}"', *more))


# --- alerts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    anchor: str  # of the README's Troubleshooting entry

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": f"{RUNBOOK}#{self.anchor}",
            },
        }


def alerts(cat: Catalog) -> list[Alert]:
    s, refused = _bot(cat), _bot(cat, 'outcome="unauthorized"')
    key = "namespace, job, environment, model"  # one series per key, however many replicas say it
    where = "{{ $labels.model }} in {{ $labels.environment }}"
    return [
        Alert(
            "ReleasebotDown",
            f"up{{{s}}} == 0 or absent(up{{{s}}}) or releasebot_worker_up{{{s}}} == 0",
            "5m",
            "critical",
            "releasebot is down",
            f"Prometheus gets no answer from releasebot's /metrics in namespace {cat.bot_namespace}, or its "
            "worker process is not up: webhooks are answered 503 and nothing is reconciled. /readyz says why.",
            "releasebot-is-down",
        ),
        Alert(
            "ReleasebotReconcileFailures",
            f"sum by (namespace, job) (rate(releasebot_reconcile_failures_total{{{s}}}[10m])) > 0",
            "15m",
            "warning",
            "releasebot's work keeps failing",
            "Reconciles or checks have failed in every 10-minute window for 15 minutes "
            "({{ $value | humanize }} a second). releasebot logs each failure with its cause and what was "
            "written before it; retryable ones are retried with backoff.",
            "reconciles-fail",
        ),
        Alert(
            "ReleasebotReconcileStale",
            f"time() - max by ({key}) (releasebot_last_successful_reconcile_timestamp_seconds{{{s}}})"
            f" > on (namespace, job) group_left () (3 * max by (namespace, job) "
            f"(releasebot_resync_interval_seconds{{{s}}}))",
            "10m",
            "warning",
            f"{where} has not been reconciled",
            f"No pass over {where} has succeeded for {{{{ $value | humanizeDuration }}}}, three resyncs "
            "or more: its plan names an error (`releasebot plan` shows it), or its work fails.",
            "reconciles-fail",
        ),
        Alert(
            "ReleasebotWebhookSignatureFailures",
            f"sum by (namespace, job, source) (increase(releasebot_events_total{{{refused}}}[15m])) > 0",
            "1m",
            "warning",
            "{{ $labels.source }} webhooks are refused for their signature",
            "{{ $value | humanize }} {{ $labels.source }} deliveries in 15 minutes had a bad or missing "
            "signature: the webhook secret differs between {{ $labels.source }} and releasebot's Secret, or "
            "someone else calls the endpoint. Refused deliveries are not worked; the resync catches up.",
            "webhook-signature-failures",
        ),
        Alert(
            "ReleasebotGitHubRateLimitLow",
            f"releasebot_github_rate_limit_remaining{{{s}}} < {RATE_LIMIT_LOW}",
            "5m",
            "warning",
            "releasebot's GitHub rate limit is low",
            "{{ $value }} GitHub requests are left until the hourly reset; below none, releasebot's GitHub "
            "calls wait for it, and pull requests, checks and comments are late.",
            "github-rate-limit-low",
        ),
        Alert(
            "ReleasebotWalkStuck",
            f"time() - max by ({key}) (releasebot_walk_step_started_timestamp_seconds{{{s}}})"
            f" > max by ({key}) (releasebot_walk_step_deadline_seconds{{{s}}})",
            "5m",
            "warning",
            f"The release walk of {where} is stuck",
            f"The walk of {where} has been at its step for {{{{ $value | humanizeDuration }}}}, longer than "
            "the environment's canary deadline and interval together: a step waiting for review, Argo CD not "
            "syncing, or the cluster or Prometheus unreadable. `releasebot plan` says what it waits for.",
            "a-walk-is-stuck-past-its-deadline",
        ),
        Alert(
            "ReleasebotDriftDetected",
            f"max by ({key}) (releasebot_drift_detected{{{s}}}) == 1",
            "1m",
            "warning",
            f"Drift on {where}",
            f"The drift check found drift on the version serving {where}. The model's drift policy says "
            "what releasebot does: a retrain pull request, an issue, or nothing.",
            "drift-detected",
        ),
    ]


def rule_groups(cat: Catalog) -> list[dict[str, Any]]:
    return [{"name": "releasebot", "rules": [a.rule() for a in alerts(cat)]}]


# --- the dashboard ------------------------------------------------------------------------------

_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _target(expr: str, legend: str = "", table: bool = False) -> dict[str, Any]:
    target: dict[str, Any] = {"datasource": _DATASOURCE, "expr": expr, "refId": ""}
    if table:
        target |= {"format": "table", "instant": True, "range": False}
    else:
        target["legendFormat"] = legend or "__auto"
    return target


def _panel(
    title: str, kind: str, targets: list[dict[str, Any]], w: int, h: int, unit: str = "", **extra: Any
) -> dict[str, Any]:
    for ref, target in zip("ABCDEFGH", targets, strict=False):
        target["refId"] = ref
    panel: dict[str, Any] = {
        "type": kind,
        "title": title,
        "datasource": _DATASOURCE,
        "targets": targets,
        "gridPos": {"x": 0, "y": 0, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": []},
        "options": {},
    }
    return panel | extra


def _row(title: str, **extra: Any) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}} | extra


def _lay_out(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Place panels left to right in rows 24 units wide; a row panel starts a new line."""
    x = y = height = 0
    for i, panel in enumerate(panels, start=1):
        pos = panel["gridPos"]
        if panel["type"] == "row" or x + pos["w"] > 24:
            x, y, height = 0, y + height, 0
        pos["x"], pos["y"] = x, y
        x, height = x + pos["w"], max(height, pos["h"])
        if panel["type"] == "row":
            x, y, height = 0, y + pos["h"], 0
        panel["id"] = i
    return panels


def _walk_table(cat: Catalog) -> dict[str, Any]:
    by = "max by (environment, model)"
    s = _bot(cat)
    columns = {"Value #A": "step", "Value #B": "canary %", "Value #C": "at this step for (s)"}
    return _panel(
        "Release walks under way",
        "table",
        [
            _target(f"{by} (releasebot_walk_step{{{s}}})", table=True),
            _target(f"{by} (releasebot_walk_canary_percent{{{s}}})", table=True),
            _target(f"time() - {by} (releasebot_walk_step_started_timestamp_seconds{{{s}}})", table=True),
        ],
        12,
        8,
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": columns}},
        ],
    )


def _releasebot_panels(cat: Catalog) -> list[dict[str, Any]]:
    s = _bot(cat)
    rate = "[$__rate_interval]"
    per_key = "max by (environment, model)"
    return [
        _row("releasebot"),
        _panel("Targets up", "stat", [_target(f"sum(up{{{s}}})")], 6, 4),
        _panel("Queue depth", "stat", [_target(f"sum(releasebot_queue_depth{{{s}}})")], 6, 4),
        _panel(
            "GitHub rate limit remaining",
            "stat",
            [_target(f"min(releasebot_github_rate_limit_remaining{{{s}}})")],
            6,
            4,
        ),
        _panel(
            "Walks under way",
            "stat",
            [_target(f"count({per_key} (releasebot_walk_step{{{s}}})) or vector(0)")],
            6,
            4,
        ),
        _panel(
            "Webhook deliveries by outcome",
            "timeseries",
            [
                _target(
                    f"sum by (source, outcome) (rate(releasebot_events_total{{{s}}}{rate}))", "{{source}} {{outcome}}"
                )
            ],
            12,
            8,
            "reqps",
        ),
        _panel(
            "Reconciles and failures",
            "timeseries",
            [
                _target(f"sum(rate(releasebot_reconcile_seconds_count{{{s}}}{rate}))", "reconciles"),
                _target(f"sum(rate(releasebot_reconcile_failures_total{{{s}}}{rate}))", "failures"),
            ],
            12,
            8,
            "ops",
        ),
        _panel(
            "Reconcile latency",
            "timeseries",
            [
                _target(
                    f"histogram_quantile({q}, sum by (le) (rate(releasebot_reconcile_seconds_bucket{{{s}}}{rate})))",
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.95)
            ],
            12,
            8,
            "s",
        ),
        _panel(
            "GitHub calls by outcome",
            "timeseries",
            [_target(f"sum by (outcome) (rate(releasebot_github_calls_total{{{s}}}{rate}))", "{{outcome}}")],
            12,
            8,
            "ops",
        ),
        _walk_table(cat),
        _panel(
            "Since the last successful reconcile",
            "table",
            [
                _target(
                    f"time() - {per_key} (releasebot_last_successful_reconcile_timestamp_seconds{{{s}}})", table=True
                )
            ],
            12,
            8,
            "s",
        ),
        _panel(
            "Drift detected",
            "table",
            [_target(f"{per_key} (releasebot_drift_detected{{{s}}})", table=True)],
            12,
            8,
            fieldConfig={
                "defaults": {
                    "mappings": [
                        {
                            "type": "value",
                            "options": {"0": {"text": "no drift"}, "1": {"text": "drift", "color": "red"}},
                        }
                    ]
                },
                "overrides": [],
            },
        ),
        _panel("Build", "table", [_target(f"releasebot_build_info{{{s}}}", table=True)], 12, 8),
    ]


def _serving_queries(cat: Catalog) -> tuple[str, str, str, str]:
    """(requests metric, latency histogram, the matchers of one model's revisions, the label that
    tells revisions apart), as canary analysis reads them in the catalog's KServe mode."""
    if cat.standard_mode:
        # Deployments: <model>-predictor, and a canary's <model>-predictor-<name>.
        where = 'reporter="destination", destination_workload_namespace="$namespace", '
        where += 'destination_workload=~"$model-predictor.*"'
        return "istio_requests_total", "istio_request_duration_milliseconds_bucket", where, "destination_workload"
    # Knative revisions: <model>-predictor-00001 (and older KServe's <model>-predictor-default-00001).
    where = 'namespace_name="$namespace", revision_name=~"$model-predictor-.*"'
    return "revision_request_count", "revision_request_latencies_bucket", where, "revision_name"


def _serving_panels(cat: Catalog) -> list[dict[str, Any]]:
    requests, latency, where, by = _serving_queries(cat)
    failed = 'response_code=~"5.."' if cat.standard_mode else 'response_code_class="5xx"'
    rate = "[$__rate_interval]"
    every = f"sum by ({by}) (rate({requests}{{{where}}}{rate}))"
    # A revision that never failed has no 5xx series: 0 of its requests failed, not "no data".
    errors = f"sum by ({by}) (rate({requests}{{{where}, {failed}}}{rate}))"
    return [
        _row("Serving: $model in $namespace", repeat="model"),
        _panel("Requests by revision", "timeseries", [_target(every, f"{{{{{by}}}}}")], 8, 8, "reqps"),
        _panel(
            "Error ratio (5xx) by revision",
            "timeseries",
            [_target(f"({errors} or 0 * {every}) / {every}", f"{{{{{by}}}}}")],
            8,
            8,
            "percentunit",
        ),
        _panel(
            "p95 latency by revision",
            "timeseries",
            [
                _target(
                    f"histogram_quantile(0.95, sum by ({by}, le) (rate({latency}{{{where}}}{rate})))", f"{{{{{by}}}}}"
                )
            ],
            8,
            8,
            "ms",
        ),
    ]


def _custom(name: str, label: str, values: list[str], multi: bool) -> dict[str, Any]:
    return {
        "type": "custom",
        "name": name,
        "label": label,
        "query": ",".join(values),
        "multi": multi,
        "includeAll": multi,
        "current": {"text": values[0], "value": values[0]} if values else {},
        "options": [{"text": v, "value": v, "selected": i == 0} for i, v in enumerate(values)],
    }


def dashboard(cat: Catalog) -> dict[str, Any]:
    """The Grafana dashboard (classic JSON model): releasebot's own series, then one row per
    selected model with its revisions' traffic, errors and latency in the chosen environment."""
    namespaces = list(dict.fromkeys(e.namespace for e in cat.environments))
    models = [m.name for m in cat.models]
    return {
        "uid": f"releasebot-{cat.bot_namespace}"[:40],
        "title": f"releasebot ({cat.cluster_name})",
        "description": "releasebot and the models it releases; generated by releasebot from releasebot.yaml",
        "tags": ["releasebot", "kserve"],
        "editable": False,  # regenerated by `releasebot render`: edit the generator, not the copy
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "graphTooltip": 1,
        "templating": {
            "list": [
                {"type": "datasource", "name": "datasource", "label": "Prometheus", "query": "prometheus"},
                _custom("namespace", "Environment namespace", namespaces, multi=False),
                _custom("model", "Model", models, multi=True),
            ]
        },
        "annotations": {"list": []},
        "panels": _lay_out(_releasebot_panels(cat) + _serving_panels(cat)),
    }


def dashboard_text(cat: Catalog) -> LiteralScalarString:
    """The dashboard as the ConfigMap carries it: indented JSON, a literal block in YAML, so that a
    change to it reads as a diff of lines."""
    return LiteralScalarString(json.dumps(dashboard(cat), indent=2) + "\n")


def files(cat: Catalog, bp: BlueprintSet, values: dict[str, Any]) -> list[tuple[str, Any, list[Owned]]]:
    """(path under releasebot/, desired document, catalog-owned fields) of the alerts and the
    dashboard the catalog asks for."""
    out = []
    if cat.bot_prometheus_rule:
        doc = bp.render(f"releasebot/{RULE_FILE}", values | {"monitoring.ruleGroups": rule_groups(cat)})
        out.append((RULE_FILE, doc, RULE_OWNED))
    if cat.bot_grafana_dashboard:
        doc = bp.render(f"releasebot/{DASHBOARD_FILE}", values | {"monitoring.dashboard": dashboard_text(cat)})
        out.append((DASHBOARD_FILE, doc, DASHBOARD_OWNED))
    return out
