"""releasebot deploys itself from the environments repo: hardened Deployment, its own Argo CD
project, a ServiceMonitor; every file validates, and the catalog controls where it runs."""

from __future__ import annotations

from pathlib import Path

from bot import yamlio
from bot.catalog import parse_catalog
from bot.validate import check_manifest
from tests.conftest import EXAMPLE_CATALOG, EXAMPLE_DIR
from tests.test_catalog import line_of, refuse


def doc(path: str) -> dict:
    return yamlio.to_plain(yamlio.load((EXAMPLE_DIR / path).read_text(), path))


def test_the_bot_deployment_is_hardened_and_reads_its_secret() -> None:
    d = doc("releasebot/deployment.yaml")
    pod = d["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert d["metadata"]["namespace"] == "releasebot" and c["image"] == "ghcr.io/releasebot/releasebot:0.1.0"
    assert c["args"][0] == "serve" and c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False and c["securityContext"]["capabilities"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The token is mounted for the walk's reads; the ServiceAccount gives none to any other pod.
    assert pod["automountServiceAccountToken"] is True and pod["serviceAccountName"] == "releasebot"
    assert doc("releasebot/serviceaccount.yaml")["automountServiceAccountToken"] is False
    assert {p: c[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")} == {
        "startupProbe": "/readyz",
        "readinessProbe": "/readyz",
        "livenessProbe": "/healthz",
    }
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert c["envFrom"] == [{"secretRef": {"name": "releasebot"}}]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["RELEASEBOT_REPO"] == "https://github.com/acme/ml-environments.git"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.mlflow.svc.cluster.local:5000"
    assert not any("SECRET" in name or "TOKEN" in name for name in env)  # secrets only from the Secret


def test_the_bot_has_its_own_least_privilege_argo_cd_project() -> None:
    project, app = doc("argocd/releasebot-appproject.yaml"), doc("argocd/releasebot-application.yaml")
    assert project["spec"]["destinations"] == [
        {"server": "https://kubernetes.default.svc", "namespace": "releasebot"},
        {"server": "https://kubernetes.default.svc", "namespace": "argocd"},  # the Role to read Applications
    ]
    assert project["spec"]["clusterResourceWhitelist"] == [
        {"group": "rbac.authorization.k8s.io", "kind": kind, "name": "releasebot-read-inferenceservices"}
        for kind in ("ClusterRole", "ClusterRoleBinding")
    ]
    kinds = {(k["group"], k["kind"]) for k in project["spec"]["namespaceResourceWhitelist"]}
    assert kinds == {
        ("", "ServiceAccount"),
        ("", "Service"),
        ("", "ConfigMap"),  # the Grafana dashboard
        ("apps", "Deployment"),
        ("monitoring.coreos.com", "ServiceMonitor"),
        ("monitoring.coreos.com", "PrometheusRule"),
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
    }
    assert app["spec"]["project"] == project["metadata"]["name"] == "releasebot-bot"
    assert app["spec"]["source"]["path"] == "releasebot" and app["spec"]["syncPolicy"]["automated"]["prune"] is True
    models = doc("argocd/appproject.yaml")  # the models' project is untouched: no Deployments there
    assert ("apps", "Deployment") not in {(k["group"], k["kind"]) for k in models["spec"]["namespaceResourceWhitelist"]}


def test_service_monitor_scrapes_metrics_and_is_checked_against_the_operators_crd() -> None:
    monitor = doc("releasebot/servicemonitor.yaml")
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert check_manifest("releasebot/servicemonitor.yaml", monitor) == []
    monitor["spec"]["endpoints"][0]["interval"] = "often"
    monitor["spec"]["endpoints"][0]["portt"] = "http"
    problems = check_manifest("releasebot/servicemonitor.yaml", monitor)
    assert {p.rule for p in problems} == {"crd"}
    assert {p.path for p in problems} == {"$.spec.endpoints[0].interval", "$.spec.endpoints[0].portt"}


def test_service_monitor_can_be_turned_off_and_the_namespace_is_checked() -> None:
    text = EXAMPLE_CATALOG.read_text()
    off = text.replace("  image: ghcr.io/releasebot/releasebot:0.1.0\n", "  image: x:1\n  serviceMonitor: false\n")
    cat = parse_catalog(off, "releasebot.yaml", EXAMPLE_CATALOG.parent)
    assert cat.bot_service_monitor is False
    clash = text.replace("  image: ghcr.io/releasebot/releasebot:0.1.0\n", "  namespace: models-dev\n")
    message = refuse(clash)
    assert f"releasebot.yaml:{line_of(clash, 'namespace: models-dev', 2)}: $.environments[0].namespace" in message
    assert "is releasebot's own (bot.namespace)" in message


def test_without_a_service_monitor_render_reports_the_old_one_as_an_orphan(tmp_path: Path, run_cli) -> None:
    repo = tmp_path / "envs"
    text = EXAMPLE_CATALOG.read_text().replace(
        "  image: ghcr.io/releasebot/releasebot:0.1.0\n",
        "  image: ghcr.io/releasebot/releasebot:0.1.0\n  serviceMonitor: false\n",
    )
    assert run_cli("init", repo, "--catalog", EXAMPLE_CATALOG).code == 0
    (repo / "releasebot.yaml").write_text(text)
    result = run_cli("render", repo, "--check")
    assert "releasebot/servicemonitor.yaml" in result.out + result.err
    assert run_cli("render", repo, "--prune").code == 0
    assert not (repo / "releasebot/servicemonitor.yaml").exists()
    assert run_cli("validate", repo).code == 0


RBAC = ("clusterrole.yaml", "clusterrolebinding.yaml", "argocd-role.yaml", "argocd-rolebinding.yaml")


def test_the_bot_may_read_exactly_what_its_walk_needs_and_nothing_else() -> None:
    cluster_role, role = doc("releasebot/clusterrole.yaml"), doc("releasebot/argocd-role.yaml")
    read = ["get", "list", "watch"]
    assert cluster_role["rules"] == [
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "verbs": read}
    ]
    assert role["metadata"]["namespace"] == "argocd"
    assert role["rules"] == [{"apiGroups": ["argoproj.io"], "resources": ["applications"], "verbs": read}]
    for binding in ("releasebot/clusterrolebinding.yaml", "releasebot/argocd-rolebinding.yaml"):
        assert doc(binding)["subjects"] == [{"kind": "ServiceAccount", "name": "releasebot", "namespace": "releasebot"}]
    for name in RBAC:
        assert check_manifest(f"releasebot/{name}", doc(f"releasebot/{name}")) == [], name


def test_rbac_manifests_are_checked_as_kubernetes_checks_them() -> None:
    role = doc("releasebot/argocd-role.yaml")
    role["rules"][0]["verb"] = role["rules"][0].pop("verbs")  # misspelt: the API server would refuse it
    problems = check_manifest("releasebot/argocd-role.yaml", role)
    assert problems and {p.rule for p in problems} == {"k8s"}


def test_a_repo_generated_before_the_walk_gets_the_bot_its_token_and_role_on_render(tmp_path: Path, run_cli) -> None:
    """The bot of an older repo had no API token and its project no Roles: render brings both, so
    the walk can read the cluster after an upgrade, not only in freshly generated repos."""
    repo = tmp_path / "envs"
    assert run_cli("init", repo, "--catalog", EXAMPLE_CATALOG).code == 0
    deployment, project = repo / "releasebot/deployment.yaml", repo / "argocd/releasebot-appproject.yaml"
    deployment.write_text(
        deployment.read_text().replace("automountServiceAccountToken: true", "automountServiceAccountToken: false")
    )
    old = yamlio.load(project.read_text(), "p")
    old["spec"]["namespaceResourceWhitelist"] = [
        w for w in old["spec"]["namespaceResourceWhitelist"] if w["kind"] not in ("Role", "RoleBinding")
    ]
    project.write_text(yamlio.dump(old))
    assert run_cli("render", repo, "--check").code == 1
    assert run_cli("render", repo).code == 0
    spec = yamlio.to_plain(yamlio.load(deployment.read_text(), "d"))["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is True
    kinds = {
        w["kind"] for w in yamlio.to_plain(yamlio.load(project.read_text(), "p"))["spec"]["namespaceResourceWhitelist"]
    }
    assert {"Role", "RoleBinding"} <= kinds
