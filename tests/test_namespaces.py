"""Each environment brings its Namespace, and the environments' Argo CD project permits exactly
what the environment folders hold: checked the way Argo CD checks a project (a cluster-scoped
resource must match ``clusterResourceWhitelist`` by group, kind and name glob; a namespaced one
``namespaceResourceWhitelist`` and a destination namespace).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from bot import yamlio
from tests.conftest import copy_catalog

CLUSTER_SCOPED = {"Namespace", "NodePool", "EC2NodeClass", "ClusterRole"}


def _load(path: Path) -> dict[str, Any]:
    return yamlio.to_plain(yamlio.load(path.read_text(), path.name))


def _permitted(project: dict[str, Any], manifest: dict[str, Any]) -> bool:
    """Argo CD's AppProject check for one resource (sync to the in-cluster server)."""
    group = manifest["apiVersion"].rpartition("/")[0]
    kind, meta = manifest["kind"], manifest["metadata"]
    spec = project["spec"]

    def listed(entries: list[dict[str, str]]) -> bool:
        return any(
            fnmatchcase(group, e["group"])
            and fnmatchcase(kind, e["kind"])
            and ("name" not in e or fnmatchcase(meta["name"], e["name"]))
            for e in entries
        )

    if kind in CLUSTER_SCOPED:
        return listed(spec.get("clusterResourceWhitelist", []))
    return listed(spec.get("namespaceResourceWhitelist", [])) and any(
        fnmatchcase(meta["namespace"], d["namespace"]) for d in spec["destinations"]
    )


def test_every_environment_has_its_namespace_and_the_project_permits_exactly_what_the_folders_hold(
    env_repo: Path,
) -> None:
    project = _load(env_repo / "argocd/appproject.yaml")
    appset = _load(env_repo / "argocd/applicationset.yaml")
    elements = appset["spec"]["generators"][0]["list"]["elements"]
    for element in elements:
        namespace = _load(env_repo / element["env"] / "namespace.yaml")
        assert namespace["metadata"]["name"] == element["namespace"]  # the Application's destination
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
        assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"
        assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.30"  # the catalog's cluster version
        # Never pruned or deleted by Argo CD: models go only by their own files.
        options = namespace["metadata"]["annotations"]["argocd.argoproj.io/sync-options"].split(",")
        assert {"Prune=false", "Delete=false"} <= set(options)

    manifests = [p for e in elements for p in sorted((env_repo / e["env"]).rglob("*.yaml"))]
    assert len(manifests) == 31  # 9 in dev, 11 in staging and in production
    for path in manifests:
        assert _permitted(project, _load(path)), path.relative_to(env_repo)
    # Least privilege: other Namespaces, and other cluster-wide kinds, stay refused.
    for api, kind, name in [
        ("v1", "Namespace", "kube-system"),
        ("v1", "Namespace", "releasebot"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", "models-dev"),
    ]:
        assert not _permitted(project, {"apiVersion": api, "kind": kind, "metadata": {"name": name}}), (kind, name)
    assert [e["name"] for e in project["spec"]["clusterResourceWhitelist"] if e["kind"] == "Namespace"] == [
        "models-dev",
        "models-staging",
        "models-production",
    ]


def test_an_environment_may_enforce_restricted_and_one_that_leaves_leaves_an_orphan_namespace(
    tmp_path: Path, run_cli, example_text: str
) -> None:
    text = example_text.replace(
        "    labels: [release, production]\n", "    labels: [release, production]\n    podSecurity: restricted\n"
    )
    repo = tmp_path / "envs"
    assert run_cli("init", repo, "--catalog", copy_catalog(tmp_path, text)).code == 0
    labels = _load(repo / "production/namespace.yaml")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert (
        _load(repo / "staging/namespace.yaml")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    )

    # dev leaves the catalog (and the models that named it): its Namespace is an orphan, kept until pruned.
    start = text.index("  - name: dev\n")
    text = text[:start] + text[text.index("  - name: staging\n") :]
    (repo / "releasebot.yaml").write_text(text)
    result = run_cli("render", repo)
    assert result.code == 0, result.err
    assert "orphan dev/namespace.yaml (kept; --prune removes it)" in result.out
    names = [e.get("name") for e in _load(repo / "argocd/appproject.yaml")["spec"]["clusterResourceWhitelist"]]
    assert "models-dev" not in names
