"""Render: what the environments repo should contain, given the catalog, as a list of file changes.

:func:`plan_render` is directory-in, changes-out and pure apart from the ``read`` callback it is
given: no git, no network, no clock. For a missing file it renders the blueprint whole; for an
existing one it loads it round-trip and syncs only the catalog-owned (and capacity-owned) fields,
so every other byte stays as it was. A file is rewritten only when an owned field changed.

Files under an environment folder that the catalog does not account for are *orphans*: reported,
and deleted only on request (``prune``), because they may be a person's work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal

from bot import capacity, yamlio
from bot.blueprints import BlueprintSet
from bot.catalog import CATALOG_FILE, RESERVED_DIRS, Catalog, Environment, Model
from bot.manifests import argocd, cronjobs, inferenceservice, karpenter, namespaces, rollout, selfdeploy
from bot.manifests.ownership import Owned, Sel, apply_owned
from bot.progress import Progress, silent
from bot.resources import schemas_dir

SCHEMA_COPY = ".releasebot/catalog.schema.json"
WORKFLOW = ".github/workflows/validate.yml"
CODEOWNERS = "CODEOWNERS"
REPO_README = "README.md"
_BEGIN, _END = "# BEGIN releasebot (generated from releasebot.yaml; edit outside this block)", "# END releasebot"

WORKFLOW_OWNED = [
    Owned(("on", "push", "branches")),
    # A merge queue waits for the checks it requires on each group's head; repositories made
    # before the trigger existed get it on their next render.
    Owned(("on", "merge_group")),
    Owned(("jobs", "validate", "container", "image")),
    # Older repositories installed an unpublished package here; the image replaces that step.
    Owned(("jobs", "validate", "steps", Sel("name", "Install releasebot"))),
]

Reader = Callable[[str], "str | None"]
Kind = Literal["yaml", "text", "block", "create-only"]


@dataclass(frozen=True)
class Target:
    """One file the catalog asks for."""

    path: str
    kind: Kind
    content: Any  # a round-trip document for yaml, text otherwise
    owned: list[Owned] = field(default_factory=list)


@dataclass(frozen=True)
class FileChange:
    path: str
    action: Literal["create", "update", "delete"]
    old: str | None
    new: str | None
    fields: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.action == "update" and self.fields:
            return f"update {self.path}: {', '.join(self.fields)}"
        return f"{self.action} {self.path}"


@dataclass(frozen=True)
class RenderPlan:
    changes: list[FileChange]
    orphans: list[str]


def _codeowners(cat: Catalog) -> str:
    def owners(users: Iterable[str], teams: Iterable[str]) -> str:
        return " ".join([f"@{u}" for u in users] + [f"@{t}" for t in teams])

    lines = [_BEGIN]
    catalog_owners = owners(cat.catalog_owner_users, cat.catalog_owner_teams)
    if catalog_owners:
        for path in ("/releasebot.yaml", "/argocd/", "/.github/", "/CODEOWNERS"):
            lines.append(f"{path} {catalog_owners}")
    for env in cat.environments:
        env_owners = owners(env.reviewer_users, env.reviewer_teams)
        if env_owners:
            lines.append(f"/{env.name}/ {env_owners}")
    lines.append(_END)
    return "\n".join(lines) + "\n"


def _readme(cat: Catalog) -> str:
    envs = ", ".join(f"`{e.name}/` (alias `@{e.alias}`, {e.write_back})" for e in cat.environments)
    return f"""# Model environments

This repository is the only way a model reaches the `{cat.cluster_name}` cluster. It is generated
and maintained by releasebot from [`releasebot.yaml`](releasebot.yaml), and Argo CD syncs it.

- Environments, each following its own MLflow alias: {envs}.
- `argocd/` holds the AppProject and the ApplicationSet; apply them once
  (`kubectl apply -n {cat.argocd_namespace} -f argocd/`), and Argo CD takes it from there.
- Change the catalog by pull request; `releasebot render` brings the manifests in line, and
  `releasebot validate` checks them against the upstream CRD schemas (CI does both).
- Fields releasebot owns are rewritten in place; comments and anything else you add survive.
"""


def canaries_in(cat: Catalog, env: Environment, read: Reader) -> set[str]:
    """Models of ``env`` whose InferenceService (as ``read`` sees it) is running a canary."""
    found = set()
    for model in cat.models_in(env):
        path = inferenceservice.path_of(env.name, model.name)
        text = read(path)
        if text is not None and rollout.canary_in(yamlio.load(text, path)) is not None:
            found.add(model.name)
    return found


def _wanted(cat: Catalog, bp: BlueprintSet, read: Reader) -> Iterator[tuple[str, Kind, Callable[[], Any], list[Owned]]]:
    """Every file the catalog asks for, with a function that renders its content when called.

    One list for :func:`targets` and :func:`target_paths`, so the two cannot disagree.
    """
    yield SCHEMA_COPY, "text", (schemas_dir() / "catalog.schema.json").read_text, []
    yield REPO_README, "create-only", partial(_readme, cat), []
    yield CODEOWNERS, "block", partial(_codeowners, cat), []
    workflow_values = {"repository.branch": cat.branch, "bot.image": cat.bot_image}
    yield WORKFLOW, "yaml", partial(bp.render, "repo/validate.yml", workflow_values), WORKFLOW_OWNED
    yield "argocd/appproject.yaml", "yaml", partial(argocd.appproject, cat, bp), argocd.APPPROJECT_CATALOG_OWNED
    yield (
        "argocd/applicationset.yaml",
        "yaml",
        partial(argocd.applicationset, cat, bp),
        argocd.APPLICATIONSET_CATALOG_OWNED,
    )
    for path, doc, owned in selfdeploy.files(cat, bp):
        yield path, "yaml", (lambda d=doc: d), owned
    pool_owned = karpenter.NODEPOOL_CATALOG_OWNED + karpenter.CAPACITY_OWNED
    for env in cat.environments:
        yield (
            namespaces.path_of(env.name),
            "yaml",
            partial(namespaces.namespace, cat, env, bp),
            namespaces.CATALOG_OWNED,
        )
        yield (
            f"{env.name}/karpenter/ec2nodeclass.yaml",
            "yaml",
            partial(karpenter.ec2nodeclass, cat, env, bp),
            karpenter.NODECLASS_CATALOG_OWNED,
        )
        # Limits count the canaries running today, so a render never squeezes one out.
        canaries = cache(partial(canaries_in, cat, env, read))
        for gpu in (False, True) if capacity.needs_gpu_pool(cat, env) else (False,):
            yield (
                karpenter.pool_path(env.name, gpu),
                "yaml",
                partial(_nodepool, cat, env, bp, gpu, canaries),
                pool_owned,
            )
        for model in cat.models_in(env):
            isvc_path = inferenceservice.path_of(env.name, model.name)
            yield (
                isvc_path,
                "yaml",
                partial(_desired_isvc, cat, env, model, bp, read, isvc_path),
                inferenceservice.catalog_owned(model),
            )
            if model.drift:
                yield (
                    cronjobs.drift_check_path(env.name, model.name),
                    "yaml",
                    partial(cronjobs.drift_check, cat, env, model, bp),
                    cronjobs.DRIFT_CATALOG_OWNED,
                )
            if model.retrain:
                yield (
                    cronjobs.retrain_path(env.name, model.name),
                    "yaml",
                    partial(cronjobs.retrain, cat, env, model, bp),
                    cronjobs.RETRAIN_CATALOG_OWNED,
                )


def _nodepool(cat: Catalog, env: Environment, bp: BlueprintSet, gpu: bool, canaries: Callable[[], set[str]]) -> Any:
    return karpenter.nodepool(cat, env, bp, gpu=gpu, canaries=canaries())


def _desired_isvc(cat: Catalog, env: Environment, model: Model, bp: BlueprintSet, read: Reader, path: str) -> Any:
    current = read(path)
    # The registry's fields are not ours to change: render what the file serves today.
    storage_uri = inferenceservice.storage_uri_in(yamlio.load(current, path)) if current is not None else None
    return inferenceservice.desired(cat, env, model, bp, storage_uri)


def target_paths(cat: Catalog, bp: BlueprintSet, read: Reader) -> list[str]:
    """The paths of every file the catalog asks for, rendering nothing and reading no manifest."""
    return [path for path, _, _, _ in _wanted(cat, bp, read)]


def _replace_block(old: str, block: str) -> str:
    if _BEGIN in old and _END in old:
        head, rest = old.split(_BEGIN, 1)
        _, tail = rest.split(_END, 1)
        return head + block.rstrip("\n") + tail
    return old.rstrip("\n") + ("\n\n" if old.strip() else "") + block


def _plan_one(target: Target, old: str | None) -> FileChange | None:
    if target.kind == "yaml":
        if old is None:
            return FileChange(target.path, "create", None, yamlio.dump(target.content))
        existing = yamlio.load(old, target.path)
        changed = apply_owned(existing, target.content, target.owned)
        if not changed:
            return None
        new = yamlio.dump(existing, yamlio.guess_style(old))
        return None if new == old else FileChange(target.path, "update", old, new, tuple(changed))
    if target.kind == "create-only":
        return None if old is not None else FileChange(target.path, "create", None, target.content)
    new = target.content if target.kind == "text" or old is None else _replace_block(old, target.content)
    if old is None:
        return FileChange(target.path, "create", None, new)
    return None if new == old else FileChange(target.path, "update", old, new)


# File names releasebot generates inside environment folders. Other files there belong to people.
GENERATED_NAMES = frozenset(
    {
        "inferenceservice.yaml",
        "drift-check-cronjob.yaml",
        "retrain-cronjob.yaml",
        "nodepool.yaml",
        "nodepool-gpu.yaml",
        "ec2nodeclass.yaml",
        # releasebot/'s optional files
        "servicemonitor.yaml",
        "prometheusrule.yaml",
        "grafana-dashboard.yaml",
        namespaces.FILE,  # at <env>/namespace.yaml
    }
)


def blueprint_prefix(cat: Catalog) -> str | None:
    """``my-blueprints/`` when the catalog keeps its own blueprints in the repo."""
    if cat.blueprints is None:
        return None
    return cat.blueprints.resolve().relative_to(cat.root.resolve()).as_posix().rstrip("/") + "/"


def orphans(cat: Catalog, expected: set[str], listing: Iterable[str]) -> list[str]:
    """Generated files the catalog no longer accounts for: a model or environment that left it,
    a GPU pool no model needs, a CronJob whose policy was removed."""
    found = []
    blueprints = blueprint_prefix(cat)
    for path in listing:
        parts = path.split("/")
        if path in expected or parts[-1] not in GENERATED_NAMES or parts[0].startswith("."):
            continue
        if blueprints and path.startswith(blueprints):
            continue
        if len(parts) == 3 or (len(parts) == 2 and parts[0] == selfdeploy.FOLDER):
            found.append(path)
        elif len(parts) == 2 and parts[1] == namespaces.FILE and parts[0] not in RESERVED_DIRS:
            found.append(path)  # an environment that left the catalog
    return sorted(found)


def plan_render(
    cat: Catalog,
    bp: BlueprintSet,
    read: Reader,
    listing: Iterable[str],
    prune: bool = False,
    progress: Progress = silent,
) -> RenderPlan:
    # One target rendered at a time: holding every rendered document of a 5,000-model fleet at
    # once took over a gigabyte.
    changes: list[FileChange] = []
    expected = {CATALOG_FILE}
    # Counting the targets renders nothing; only asked for when someone watches.
    total = len(target_paths(cat, bp, read)) if progress is not silent else None
    done = 0
    for path, kind, render, owned in _wanted(cat, bp, read):
        progress(done, total, path)
        done += 1
        expected.add(path)
        change = _plan_one(Target(path, kind, render(), owned), read(path))
        if change is not None:
            changes.append(change)
    progress(done, total, "")
    orphan_files = orphans(cat, expected, listing)
    if prune:
        changes += [FileChange(p, "delete", read(p), None) for p in orphan_files]
    return RenderPlan(changes, orphan_files)


# --- the directory adapter -------------------------------------------------------------------


def list_files(root: Path) -> list[str]:
    """Repo-relative paths of every file, skipping .git."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    )


def dir_reader(root: Path) -> Reader:
    def read(rel: str) -> str | None:
        path = root / rel
        if not path.is_file():
            return None
        return yamlio.read_text(path, rel) if rel.endswith((".yaml", ".yml")) else path.read_text(encoding="utf-8")

    return read


def write_changes(root: Path, changes: Iterable[FileChange]) -> None:
    for change in changes:
        path = root / change.path
        if change.action == "delete":
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(change.new or "", encoding="utf-8")


def as_json(plan: RenderPlan) -> str:
    return json.dumps(
        {
            "changes": [{"path": c.path, "action": c.action, "fields": list(c.fields)} for c in plan.changes],
            "orphans": plan.orphans,
        },
        indent=2,
    )
