"""Argo CD: the AppProject (least privilege) and the ApplicationSet (one Application per environment).

The project admits only this repository as a source, only the environments' namespaces as
destinations, and only the kinds releasebot generates (cluster-wide: Karpenter's, and the
environments' own Namespaces by name). The ApplicationSet syncs each environment
folder automatically with prune and selfHeal, so Git is the only way in.
"""

from __future__ import annotations

from typing import Any

from bot.blueprints import BlueprintSet
from bot.catalog import Catalog
from bot.manifests import namespaces
from bot.manifests.ownership import Owned

_KARPENTER = [{"group": "karpenter.sh", "kind": "NodePool"}, {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass"}]

APPPROJECT_CATALOG_OWNED = [
    Owned(("metadata", "name")),
    Owned(("metadata", "namespace")),
    Owned(("spec", "sourceRepos")),
    Owned(("spec", "destinations")),
    Owned(("spec", "clusterResourceWhitelist")),
]
APPLICATIONSET_CATALOG_OWNED = [
    Owned(("metadata", "name")),
    Owned(("metadata", "namespace")),
    Owned(("spec", "generators")),
    Owned(("spec", "template", "metadata", "name")),
    Owned(("spec", "template", "spec", "project")),
    Owned(("spec", "template", "spec", "source", "repoURL")),
    Owned(("spec", "template", "spec", "source", "targetRevision")),
]


def application_name(cat: Catalog, env: str) -> str:
    """The Argo CD Application the ApplicationSet generates for environment ``env``, in
    ``cat.argocd_namespace``. The render passes the generator's ``{{.env}}`` through this, so the
    name the bot looks up and the name Argo CD creates cannot drift apart."""
    return f"{cat.argocd_project}-{env}"


def common_values(cat: Catalog) -> dict[str, Any]:
    """What every Argo CD blueprint may name: the project, Argo CD's namespace, this repository."""
    return {
        "argocd.project": cat.argocd_project,
        "argocd.namespace": cat.argocd_namespace,
        "repository.url": cat.repo_url,
        "repository.branch": cat.branch,
    }


def _values(cat: Catalog) -> dict[str, Any]:
    return {
        **common_values(cat),
        "argocd.destinations": [{"server": e.server, "namespace": e.namespace} for e in cat.environments],
        "argocd.clusterResources": [*_KARPENTER, *namespaces.whitelist(cat)],
        "argocd.applicationName": application_name(cat, "{{.env}}"),
        "argocd.elements": [{"env": e.name, "namespace": e.namespace, "server": e.server} for e in cat.environments],
    }


def appproject(cat: Catalog, bp: BlueprintSet) -> Any:
    return bp.render("argocd/appproject.yaml", _values(cat))


def applicationset(cat: Catalog, bp: BlueprintSet) -> Any:
    return bp.render("argocd/applicationset.yaml", _values(cat))
