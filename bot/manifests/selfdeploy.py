"""releasebot's own deployment: ``releasebot/`` (ServiceAccount, its read-only RBAC, Deployment,
Service, a ServiceMonitor unless ``bot.serviceMonitor: false``, and the alerts and dashboard of
:mod:`bot.manifests.monitoring`) and the Argo CD project and Application that sync it, so the bot
is deployed by Argo CD like the models it releases.

The RBAC is exactly what :mod:`bot.cluster` reads: get/list/watch on InferenceServices
cluster-wide (a ClusterRole; environments span namespaces) and on Argo CD Applications in Argo
CD's namespace (a Role there). Nothing grants a write.

The catalog owns where and what runs (namespace, image, replicas, repository, tracking URI, the
Secret's name); probes, resources and security settings are the blueprint's starting point and
people's to tune afterwards. The Secret itself is never generated: credentials stay out of Git.
"""

from __future__ import annotations

from typing import Any

from bot import settings
from bot.blueprints import BlueprintSet
from bot.catalog import Catalog
from bot.manifests import argocd, monitoring
from bot.manifests.ownership import Owned, Sel

FOLDER = "releasebot"
RBAC_FILES = ("clusterrole.yaml", "clusterrolebinding.yaml", "argocd-role.yaml", "argocd-rolebinding.yaml")
_CONTAINER = ("spec", "template", "spec", "containers", Sel("name", "releasebot"))
_PLACED = [Owned(("metadata", "name")), Owned(("metadata", "namespace"))]
DEPLOYMENT_OWNED = [
    *_PLACED,
    Owned(("spec", "replicas")),
    Owned((*_CONTAINER, "image")),
    Owned((*_CONTAINER, "env", Sel("name", settings.REPO.name), "value")),
    Owned((*_CONTAINER, "env", Sel("name", "MLFLOW_TRACKING_URI"), "value")),
    Owned((*_CONTAINER, "envFrom")),
    Owned(("spec", "template", "spec", "volumes", Sel("name", "github-app"), "secret", "secretName")),
    # The walk reads Argo CD and KServe with this token: a repo generated before that gets it on
    # the next render instead of a bot that cannot load its credentials.
    Owned(("spec", "template", "spec", "automountServiceAccountToken")),
]
_RBAC_OWNED = [*_PLACED, Owned(("roleRef", "name")), Owned(("subjects",))]
# The bot's project names the bot's own ClusterRole by name, which follows the catalog's namespace.
PROJECT_OWNED = [
    *_PLACED,
    Owned(("spec", "sourceRepos")),
    Owned(("spec", "destinations")),
    Owned(("spec", "clusterResourceWhitelist")),
    # The Role and RoleBinding in Argo CD's namespace that let the walk read Applications.
    Owned(("spec", "namespaceResourceWhitelist")),
]
APPLICATION_OWNED = [
    *_PLACED,
    Owned(("spec", "project")),
    Owned(("spec", "source", "repoURL")),
    Owned(("spec", "source", "targetRevision")),
    Owned(("spec", "destination")),
]


def _values(cat: Catalog) -> dict[str, Any]:
    return {
        **argocd.common_values(cat),
        "bot.image": cat.bot_image,
        "bot.namespace": cat.bot_namespace,
        "bot.secret": cat.bot_secret,
        "bot.replicas": cat.bot_replicas,
        "registry.trackingUri": cat.tracking_uri,
        "cluster.server": cat.cluster_server,
        "monitoring.labels": monitoring.labels(cat),
    }


def files(cat: Catalog, bp: BlueprintSet) -> list[tuple[str, Any, list[Owned]]]:
    """(path, desired document, catalog-owned fields) for each file of the bot's deployment."""
    values = _values(cat)
    out = [
        ("argocd/releasebot-appproject.yaml", bp.render("argocd/releasebot-appproject.yaml", values), PROJECT_OWNED),
        (
            "argocd/releasebot-application.yaml",
            bp.render("argocd/releasebot-application.yaml", values),
            APPLICATION_OWNED,
        ),
        (f"{FOLDER}/serviceaccount.yaml", bp.render("releasebot/serviceaccount.yaml", values), _PLACED),
        *((f"{FOLDER}/{name}", bp.render(f"releasebot/{name}", values), _RBAC_OWNED) for name in RBAC_FILES),
        (f"{FOLDER}/deployment.yaml", bp.render("releasebot/deployment.yaml", values), DEPLOYMENT_OWNED),
        (f"{FOLDER}/service.yaml", bp.render("releasebot/service.yaml", values), _PLACED),
    ]
    if cat.bot_service_monitor:
        monitor = bp.render("releasebot/servicemonitor.yaml", values)
        out.append((f"{FOLDER}/servicemonitor.yaml", monitor, monitoring.LABELLED_OWNED))
    out += [(f"{FOLDER}/{name}", doc, owned) for name, doc, owned in monitoring.files(cat, bp, values)]
    return out
