"""The alerts and the dashboard ``init`` generates next to the ServiceMonitor: the PrometheusRule
passes the vendored CRD and ``promtool check rules``; the dashboard is Grafana dashboard JSON whose
every query ``promtool`` parses; the series they read are the ones releasebot and KServe export;
the catalog switches them; an older repository gets them on render; and a real Prometheus, scraping
a real receiver, raises the alerts on real series and leaves the healthy keys alone."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn

from bot import analysis, yamlio
from bot.blueprints import BlueprintSet
from bot.catalog import load_catalog, parse_catalog
from bot.manifests import monitoring, selfdeploy
from bot.metrics import KeyState, Metrics, WalkState
from bot.server import Receiver, Settings, create_app
from bot.validate import check_manifest
from bot.work import LocalWork
from tests.conftest import EXAMPLE_CATALOG, EXAMPLE_DIR
from tests.mlflow_server import free_port
from tests.prometheus import prometheus
from tests.test_metrics import Idle

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: `make test` installs Debian's prometheus"
)
RULE, DASHBOARD = "releasebot/prometheusrule.yaml", "releasebot/grafana-dashboard.yaml"
# The README's Troubleshooting entries the runbook links point at (their headings, as GitHub
# makes anchors of them).
ANCHORS = {
    "releasebot-is-down",
    "reconciles-fail",
    "webhook-signature-failures",
    "github-rate-limit-low",
    "a-walk-is-stuck-past-its-deadline",
    "drift-detected",
}


def doc(path: str, root: Path = EXAMPLE_DIR) -> Any:
    return yamlio.to_plain(yamlio.load((root / path).read_text(), path))


def promtool_check(groups: list[dict[str, Any]], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"groups": groups}))  # JSON is YAML
    return subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True)


def dashboard(root: Path = EXAMPLE_DIR) -> dict[str, Any]:
    return json.loads(doc(DASHBOARD, root)["data"][monitoring.DASHBOARD_KEY])


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


GRAFANA_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}|\[\[(\w+)\]\]")


def concrete(expr: str, declared: set[str]) -> str:
    """A dashboard query with Grafana's variables replaced by values of their kind."""
    values = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h", "namespace": "models-dev", "model": "m"}

    def one(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        assert name in declared or name.startswith("__"), f"{name} is not a variable of the dashboard: {expr}"
        return values[name]

    return GRAFANA_VARIABLE.sub(one, expr)


# --- the PrometheusRule --------------------------------------------------------------------------


@needs_promtool
def test_the_generated_rule_passes_the_crd_and_promtool(tmp_path: Path) -> None:
    rule = doc(RULE)
    assert check_manifest(RULE, rule) == []
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"  # what the chart selects by default
    checked = promtool_check(rule["spec"]["groups"], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(monitoring.alerts(load_catalog(EXAMPLE_CATALOG)))} rules found" in checked.stdout
    names = {r["alert"] for r in rule["spec"]["groups"][0]["rules"]}
    assert {
        "ReleasebotDown",
        "ReleasebotReconcileFailures",
        "ReleasebotWebhookSignatureFailures",
        "ReleasebotGitHubRateLimitLow",
        "ReleasebotWalkStuck",
        "ReleasebotDriftDetected",
    } <= names
    for r in rule["spec"]["groups"][0]["rules"]:
        assert r["for"] and r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        url, _, anchor = r["annotations"]["runbook_url"].partition("#")
        assert url.endswith("/README.md") and anchor in ANCHORS, r["alert"]
        assert 'job="releasebot", namespace="releasebot"' in r["expr"], r["alert"]  # the ServiceMonitor's job


@needs_promtool
def test_a_broken_rule_is_caught_by_the_crd_and_by_promtool(tmp_path: Path) -> None:
    rule = doc(RULE)
    first = rule["spec"]["groups"][0]["rules"][0]
    first["for"], first["expression"] = "1.5m", "up"  # not a Prometheus duration; a misspelt field
    problems = check_manifest(RULE, rule)
    assert {p.rule for p in problems} == {"crd"}
    assert {p.path for p in problems} == {"$.spec.groups[0].rules[0].for", "$.spec.groups[0].rules[0].expression"}
    rule = doc(RULE)
    rule["spec"]["groups"][0]["rules"][0]["expr"] = "up{job=releasebot} =="
    assert promtool_check(rule["spec"]["groups"], tmp_path).returncode != 0


# --- the dashboard -------------------------------------------------------------------------------


@needs_promtool
def test_the_dashboard_is_grafana_json_and_promtool_parses_every_query(tmp_path: Path) -> None:
    config_map = doc(DASHBOARD)
    assert check_manifest(DASHBOARD, config_map) == []
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"  # the sidecar's default label
    board = dashboard()
    assert board["schemaVersion"] >= 39 and board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["options"][0]["value"] == "models-dev"
    assert [o["value"] for o in variables["model"]["options"]] == ["fraud-detector", "review-sentiment", "credit-risk"]
    ids, cells, rules = set(), set(), []
    for panel in board["panels"]:
        assert panel["id"] not in ids
        ids.add(panel["id"])
        pos = panel["gridPos"]
        assert {"x", "y", "w", "h"} <= set(pos) and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        covered = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
    for panel in panels(board):
        assert panel["type"] in ("stat", "timeseries", "table") and panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}" and target["refId"]
            rules.append({"record": f"dashboard:query_{len(rules)}", "expr": concrete(target["expr"], set(variables))})
    checked = promtool_check([{"name": "dashboard", "rules": rules}], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout
    repeated = [p for p in board["panels"] if p.get("repeat")]
    assert [p["repeat"] for p in repeated] == ["model"] and repeated[0]["type"] == "row"


def test_the_concrete_query_check_refuses_an_unknown_variable() -> None:
    with pytest.raises(AssertionError, match="modle is not a variable"):
        concrete('up{model="$modle"}', {"model"})


def _names(exprs: list[str]) -> set[str]:
    words = set(re.findall(r"\b([a-z_][a-z0-9_]*)\{", " ".join(exprs)))  # every series is read with matchers
    return {w for w in words if w.startswith(("releasebot_", "revision_", "istio_")) or w == "up"}


def _every_expr(root: Path = EXAMPLE_DIR) -> list[str]:
    rules = [r["expr"] for r in doc(RULE, root)["spec"]["groups"][0]["rules"]]
    return rules + [t["expr"] for p in panels(dashboard(root)) for t in p["targets"]]


def test_every_series_the_rules_and_dashboard_read_is_one_releasebot_or_kserve_exports() -> None:
    metrics = Metrics()
    metrics.resync_seconds.set(300)
    metrics.record_pass(None, [KeyState("dev", "m", True, True, WalkState(1, 10, 1.0, 900.0))], at=2.0)
    metrics.reconcile_seconds.observe(0.1)
    metrics.reconcile_failures.inc()
    metrics.events.labels("github", "push", "queued").inc()
    metrics.github_calls.labels("ok").inc()
    exported = re.findall(r"^(\w+)", (metrics.worker_exposition() + _receiver(metrics)).decode(), re.M)
    names = _names(_every_expr())
    assert {n for n in names if n.startswith("releasebot_")} <= set(exported)
    assert "releasebot_walk_step_started_timestamp_seconds" in names and "releasebot_drift_detected" in names
    # KServe's: the names and labels canary analysis queries, in this catalog's mode (Knative).
    knative = " ".join(vars(analysis.metric_set("Serverless")).values())
    serving = {n for n in names if not n.startswith("releasebot_") and n != "up"}
    assert serving == {"revision_request_count", "revision_request_latencies_bucket"}
    assert all(n in knative for n in serving) and "namespace_name" in knative and "revision_name" in knative


def _receiver(metrics: Metrics) -> bytes:
    from prometheus_client import generate_latest

    return generate_latest(metrics.receiver)


def test_in_standard_mode_the_serving_panels_read_istio_as_analysis_does() -> None:
    cat = dataclasses.replace(load_catalog(EXAMPLE_CATALOG), kserve_mode="Standard")
    exprs = [t["expr"] for p in panels(monitoring.dashboard(cat)) for t in p["targets"]]
    serving = {n for n in _names(exprs) if not n.startswith("releasebot_") and n != "up"}
    assert serving == {"istio_requests_total", "istio_request_duration_milliseconds_bucket"}
    istio = " ".join(vars(analysis.metric_set("Standard")).values())
    assert all(n in istio for n in serving)
    assert any('reporter="destination"' in e and "destination_workload=~" in e for e in exprs)


# --- the catalog's switches, and older repositories ----------------------------------------------


def _files(text: str) -> dict[str, Any]:
    cat = parse_catalog(text, "releasebot.yaml", EXAMPLE_CATALOG.parent)
    return {path: d for path, d, _ in selfdeploy.files(cat, BlueprintSet(cat.blueprints))}


@pytest.mark.parametrize(
    ("settings", "rule", "board"),
    [
        ("", True, True),
        ("  prometheusRule: false\n", False, True),
        ("  grafanaDashboard: false\n", True, False),
        ("  serviceMonitor: false\n", False, True),  # no operator for the ServiceMonitor: none for the rule
        ("  serviceMonitor: false\n  prometheusRule: true\n", True, True),
    ],
)
def test_the_catalog_switches_the_rule_and_the_dashboard(settings: str, rule: bool, board: bool) -> None:
    image = "  image: ghcr.io/releasebot/releasebot:0.1.0\n"
    files = _files(EXAMPLE_CATALOG.read_text().replace(image, image + settings))
    assert (RULE in files, DASHBOARD in files) == (rule, board)


def test_monitoring_labels_go_on_the_service_monitor_and_the_rule_whole() -> None:
    image = "  image: ghcr.io/releasebot/releasebot:0.1.0\n"
    files = _files(EXAMPLE_CATALOG.read_text().replace(image, image + "  monitoringLabels: {prometheus: main}\n"))
    ours = {"app.kubernetes.io/name": "releasebot", "app.kubernetes.io/managed-by": "releasebot"}
    for path in (RULE, "releasebot/servicemonitor.yaml"):
        assert yamlio.to_plain(files[path])["metadata"]["labels"] == ours | {"prometheus": "main"}, path
    files = _files(EXAMPLE_CATALOG.read_text().replace(image, image + "  monitoringLabels: {}\n"))
    assert yamlio.to_plain(files[RULE])["metadata"]["labels"] == ours


def test_a_bad_monitoring_label_is_refused_with_its_place(tmp_path: Path, run_cli) -> None:
    image = "  image: ghcr.io/releasebot/releasebot:0.1.0\n"
    catalog = tmp_path / "releasebot.yaml"
    catalog.write_text(EXAMPLE_CATALOG.read_text().replace(image, image + "  monitoringLabels: {release: -no-}\n"))
    result = run_cli("init", tmp_path / "repo", "--catalog", catalog)
    assert result.code != 0 and "$.bot.monitoringLabels.release" in result.err
    assert not (tmp_path / "repo").exists()


def test_an_older_repo_gets_the_alerts_the_dashboard_and_their_labels_and_kinds_on_render(
    tmp_path: Path, run_cli
) -> None:
    repo = tmp_path / "envs"
    assert run_cli("init", repo, "--catalog", EXAMPLE_CATALOG).code == 0
    (repo / RULE).unlink()
    (repo / DASHBOARD).unlink()
    monitor = repo / "releasebot/servicemonitor.yaml"
    old = yamlio.load(monitor.read_text(), "m")
    del old["metadata"]["labels"]["release"]
    monitor.write_text(yamlio.dump(old))
    project = repo / "argocd/releasebot-appproject.yaml"
    old = yamlio.load(project.read_text(), "p")
    old["spec"]["namespaceResourceWhitelist"] = [
        w for w in old["spec"]["namespaceResourceWhitelist"] if w["kind"] not in ("ConfigMap", "PrometheusRule")
    ]
    project.write_text(yamlio.dump(old))
    check = run_cli("render", repo, "--check")
    assert check.code == 1
    for path in (RULE, DASHBOARD, "releasebot/servicemonitor.yaml", "argocd/releasebot-appproject.yaml"):
        assert path in check.out + check.err, path
    assert run_cli("render", repo).code == 0
    assert doc(RULE, repo) == doc(RULE) and dashboard(repo) == dashboard()
    assert doc("releasebot/servicemonitor.yaml", repo)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    kinds = {w["kind"] for w in doc("argocd/releasebot-appproject.yaml", repo)["spec"]["namespaceResourceWhitelist"]}
    assert {"ConfigMap", "PrometheusRule"} <= kinds
    assert run_cli("render", repo, "--check").code == 0
    assert run_cli("validate", repo).code == 0


def test_turning_the_alerts_off_reports_the_old_rule_as_an_orphan(tmp_path: Path, run_cli) -> None:
    repo = tmp_path / "envs"
    assert run_cli("init", repo, "--catalog", EXAMPLE_CATALOG).code == 0
    image = "  image: ghcr.io/releasebot/releasebot:0.1.0\n"
    (repo / "releasebot.yaml").write_text(
        EXAMPLE_CATALOG.read_text().replace(image, image + "  prometheusRule: false\n")
    )
    result = run_cli("render", repo, "--check")
    assert RULE in result.out + result.err
    assert run_cli("render", repo, "--prune").code == 0
    assert not (repo / RULE).exists() and (repo / DASHBOARD).exists()
    assert run_cli("validate", repo).code == 0


# --- the rules in a real Prometheus, over a real receiver's /metrics ------------------------------


def _alerts(url: str) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    answer = requests.get(f"{url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    keep = ("environment", "model", "source")
    return {
        (a["labels"]["alertname"], frozenset((k, v) for k, v in a["labels"].items() if k in keep))
        for a in answer
        if a["state"] in ("pending", "firing")  # "pending": the condition holds, its `for` is running
    }


def _key(environment: str, model: str) -> frozenset[tuple[str, str]]:
    return frozenset({"environment": environment, "model": model}.items())


def test_the_alerts_hold_on_real_series_in_a_real_prometheus_and_spare_the_healthy(tmp_path: Path) -> None:
    cat = load_catalog(EXAMPLE_CATALOG)
    metrics = Metrics()
    receiver = Receiver(Settings("gh", "ml", resync_seconds=60), LocalWork(Idle(), lambda: cat, metrics))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(receiver), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"groups": doc(RULE)["spec"]["groups"]}))
    now = time.time()
    metrics.record_pass(
        None,
        [
            # drifting, and its walk has been at step 1 longer than deadline + interval
            KeyState("production", "fraud-detector", True, True, WalkState(1, 10, now - 2000, 900.0)),
            # healthy: no drift, a walk well within its deadline
            KeyState("production", "credit-risk", True, False, WalkState(2, 50, now - 60, 900.0)),
        ],
        at=now,
    )
    metrics.record_pass("review-sentiment", [KeyState("staging", "review-sentiment", True)], at=now - 1000)
    try:
        while not server.started:
            time.sleep(0.05)
        target = ("releasebot", f"127.0.0.1:{port}", {"namespace": cat.bot_namespace})
        (tmp_path / "prometheus").mkdir()
        with prometheus(tmp_path / "prometheus", scrape=[target], rules=rules) as prom:
            prom.wait_for_window('up{job="releasebot"}', 2)
            refused = requests.post(
                f"http://127.0.0.1:{port}/webhooks/mlflow",
                data=b"{}",
                headers={"X-MLflow-Signature": "v1,bad", "X-MLflow-Delivery-Id": "d", "X-MLflow-Timestamp": "1"},
                timeout=10,
            )
            assert refused.status_code == 401
            expected = {
                ("ReleasebotWebhookSignatureFailures", frozenset({"source": "mlflow"}.items())),
                ("ReleasebotDriftDetected", _key("production", "fraud-detector")),
                ("ReleasebotWalkStuck", _key("production", "fraud-detector")),
                # 1,000 s since its last good pass, three resyncs of 60 s: stale
                ("ReleasebotReconcileStale", _key("staging", "review-sentiment")),
            }
            deadline = time.monotonic() + 60
            while not expected <= (active := _alerts(prom.url)):
                assert time.monotonic() < deadline, f"alerts active: {active}; log: {prom.log.read_text()[-2000:]}"
                time.sleep(0.5)
            # The same evaluation spares the healthy: no drift, a walk within its deadline, fresh
            # passes, a releasebot that is up, a rate limit not known yet.
            assert active == expected
    finally:
        server.should_exit = True
        thread.join(timeout=30)
