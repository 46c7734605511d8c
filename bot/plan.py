"""The planner: desired state against actual state, as a list of changes. Pure.

``plan(catalog, registry, repo)`` takes everything as arguments and does no I/O: no git, no
network, no clock. For each (environment, model) of the catalog:

* the *desired* version is the environment's MLflow alias, unless Git pins another one
  (``releasebot rollback``) or marks the alias's version blocked;
* the *actual* version is what the InferenceService on the main branch serves, and what an open
  bot branch for the same key already proposes.

The answer never depends on which event asked: running it twice gives the same plan, and a plan
already carried out gives no change. Every change has a key ``(environment, model, kind)`` that
names exactly one branch, and a fingerprint of its content so an unchanged plan writes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from bot import capacity, prbody, yamlio
from bot.catalog import Catalog, Environment, Model
from bot.manifests import cronjobs, karpenter
from bot.manifests import inferenceservice as isvc
from bot.manifests.ownership import Owned, apply_owned, get
from bot.prbody import release_body
from bot.registry import RegistrySnapshot, Version

Kind = Literal["release", "pin", "capacity", "retrain", "alert"]
CAPACITY_KEY_MODEL = "karpenter"  # capacity changes are keyed (environment, "karpenter", "capacity")
TRAILERS = ("Releasebot-Model", "Releasebot-Version", "Releasebot-Run", "Releasebot-Environment")


@dataclass(frozen=True, order=True)
class Key:
    environment: str
    model: str
    kind: str

    @property
    def branch(self) -> str:
        return f"releasebot/{self.environment}/{self.model}/{self.kind}"


@dataclass(frozen=True)
class BotBranch:
    """An open ``releasebot/...`` branch as the repo adapter found it."""

    name: str
    head: str
    version: str | None  # the Releasebot-Version trailer of its head commit
    fingerprint: str | None
    human_commits: tuple[str, ...] = ()  # shas of commits on it not made by releasebot


@dataclass(frozen=True)
class RepoState:
    main_files: Mapping[str, str]  # path -> text on the main branch (the manifests we may edit)
    branches: Mapping[str, BotBranch] = field(default_factory=dict)


@dataclass(frozen=True)
class FileEdit:
    path: str
    old: str
    new: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    key: Key
    write_back: str
    edits: tuple[FileEdit, ...]
    version: str
    previous: str | None
    commit_message: str
    title: str
    body: str
    fingerprint: str
    supersedes: str | None = None  # the version an open branch proposed before
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Close:
    """An open branch whose change is no longer wanted."""

    key: Key
    branch: BotBranch
    reason: str


@dataclass(frozen=True)
class Note:
    """Something the plan could not or would not do, said plainly. ``error`` ones fail the run."""

    key: Key
    message: str
    error: bool = False
    tell: bool = False  # worth saying on the key's pull request too


@dataclass(frozen=True)
class Alert:
    """A drift alert for one (environment, model): raised while the served version drifts,
    resolved once a check finds no drift. Forges keep one issue per key and update it."""

    key: Key  # (environment, model, "alert")
    raised: bool
    title: str
    body: str
    fingerprint: str  # of the drift run it reports: a new run that still drifts updates the issue
    labels: tuple[str, ...] = ()

    @property
    def marker(self) -> str:
        return f"<!-- releasebot:alert={self.key.environment}/{self.key.model} -->"


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    closes: tuple[Close, ...]
    notes: tuple[Note, ...]
    alerts: tuple[Alert, ...] = ()

    @property
    def errors(self) -> tuple[Note, ...]:
        return tuple(n for n in self.notes if n.error)


@dataclass(frozen=True)
class Served:
    """What a manifest on main serves, and the pin Git holds for it."""

    version: str | None
    storage_uri: str | None
    pinned: str | None
    blocked: frozenset[str]


def served(text: str, path: str) -> Served:
    doc = yamlio.to_plain(yamlio.load(text, path))
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    blocked = {v.strip() for v in str(annotations.get(isvc.BLOCKED_ANNOTATION, "")).split(",") if v.strip()}
    version = annotations.get(isvc.VERSION_ANNOTATION)
    pinned = annotations.get(isvc.PINNED_ANNOTATION)
    return Served(
        version=str(version) if version is not None else None,
        storage_uri=isvc.storage_uri_in(doc),
        pinned=str(pinned) if pinned else None,
        blocked=frozenset(blocked),
    )


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _apply_release(doc: object, version: Version) -> list[str]:
    """Set the registry-owned fields of a loaded ISVC to serve ``version``; return what changed."""
    shape_is_image = (
        get(doc, ("spec", "predictor", "containers")) is not None and get(doc, ("spec", "predictor", "model")) is None
    )
    annotations = {isvc.VERSION_ANNOTATION: version.version}
    if version.run_id:
        annotations[isvc.RUN_ANNOTATION] = version.run_id
    storage = {isvc.STORAGE_URI_ENV: version.storage_uri}
    predictor = (
        {"containers": [{"name": "kserve-container", "env": [{"name": k, "value": v} for k, v in storage.items()]}]}
        if shape_is_image
        else {"model": {"storageUri": version.storage_uri}}
    )
    desired = {"metadata": {"annotations": annotations}, "spec": {"predictor": predictor}}
    rules = [r for r in isvc.REGISTRY_OWNED if (r.path[2] == "containers") == shape_is_image]
    return apply_owned(doc, yamlio.quote_ambiguous(desired), rules + isvc.RELEASE_ANNOTATIONS)


def release_edit(path: str, text: str, version: Version) -> FileEdit | None:
    """The ISVC text serving ``version``: registry-owned fields only, everything else as it was."""
    doc = yamlio.load(text, path)
    changed = _apply_release(doc, version)
    if not changed:
        return None
    return FileEdit(path, text, yamlio.dump(doc, yamlio.guess_style(text)), tuple(changed))


def pin_edit(
    path: str, text: str, pinned: str | None, blocked: frozenset[str], version: Version | None
) -> FileEdit | None:
    """Record a pin and blocked versions in the ISVC (and serve ``version`` when given)."""
    doc = yamlio.load(text, path)
    annotations: dict[str, str] = {}
    if pinned:
        annotations[isvc.PINNED_ANNOTATION] = pinned
    if blocked:
        annotations[isvc.BLOCKED_ANNOTATION] = ",".join(sorted(blocked, key=lambda v: (len(v), v)))
    changed = apply_owned(doc, yamlio.quote_ambiguous({"metadata": {"annotations": annotations}}), isvc.PIN_ANNOTATIONS)
    if version is not None:
        changed += _apply_release(doc, version)
    if not changed:
        return None
    return FileEdit(path, text, yamlio.dump(doc, yamlio.guess_style(text)), tuple(changed))


def _held(key: Key, branch: BotBranch | None, fp: str) -> tuple[bool, list[Note]]:
    """Whether the key's open branch already says this (same fingerprint) or is a person's now."""
    if branch is None:
        return False, []
    if branch.human_commits:
        shas = ", ".join(c[:8] for c in branch.human_commits)
        message = f"{key.branch} has commits by a person ({shas}); releasebot will not rewrite it"
        return True, [Note(key, message, tell=True)]
    return branch.fingerprint == fp, []


def _commit_message(model: Model, env: Environment, v: Version, previous: str | None, reason: str) -> str:
    was = f" (was {previous})" if previous else ""
    return (
        f"Release {model.name} v{v.version} to {env.name}\n\n"
        f"{reason}{was}.\n\n"
        f"Releasebot-Model: {model.name}\n"
        f"Releasebot-Version: {v.version}\n"
        f"Releasebot-Run: {v.run_id or 'none'}\n"
        f"Releasebot-Environment: {env.name}\n"
    )


def _noted(note: Note) -> tuple[list[Change], list[Close], list[Note]]:
    return [], [], [note]


def _plan_release(
    cat: Catalog, env: Environment, model: Model, registry: RegistrySnapshot, repo: RepoState
) -> tuple[list[Change], list[Close], list[Note]]:
    key = Key(env.name, model.name, "release")
    path = isvc.path_of(env.name, model.name)
    branch = repo.branches.get(key.branch)
    state = registry.models.get(model.registered_model)
    text = repo.main_files.get(path)
    if text is None:
        return _noted(Note(key, f"{path} is not on the main branch; run `releasebot render` first", error=True))
    now = served(text, path)
    if now.pinned:
        wanted, reason = now.pinned, f"Pinned to version {now.pinned} in Git (releasebot rollback)"
    else:
        alias = state.alias(env.alias) if state else None
        if alias is None:
            message = f"MLflow alias @{env.alias} is not set on registered model {model.registered_model!r}"
            if now.version is None:
                return _noted(Note(key, message + "; nothing to release yet"))
            # It drove this environment before. Deleting a version removes its aliases without any
            # webhook, so this is most often a deleted version: a person has to say what now.
            return _noted(
                Note(
                    key,
                    f"{message}, but {env.name} serves version {now.version}; was the version "
                    "it pointed at deleted? Nothing was changed",
                    error=True,
                )
            )
        if alias in now.blocked:
            return _noted(
                Note(
                    key,
                    f"@{env.alias} points at version {alias}, which is blocked in Git; "
                    "`releasebot unblock` to allow it",
                )
            )
        wanted, reason = alias, f"MLflow alias @{env.alias} points at version {alias}"
    version = state.versions.get(wanted) if state else None
    if version is None:
        return _noted(
            Note(
                key,
                f"version {wanted} of {model.registered_model!r} is not in MLflow (deleted?); nothing was changed",
                error=True,
            )
        )
    edit = release_edit(path, text, version)
    if edit is None:
        if branch is None:
            return [], [], []
        if branch.human_commits:  # never delete a person's work: say so and leave it
            return [], [], _held(key, branch, "")[1]
        return [], [Close(key, branch, f"main already serves version {wanted}")], []
    fp = fingerprint(key.branch, version.version, version.storage_uri, edit.new)
    held, notes = _held(key, branch, fp)
    if held:
        return [], [], notes
    previous_v = state.versions.get(now.version) if (state and now.version) else None
    supersedes = branch.version if branch is not None and branch.version != version.version else None
    title = f"Release {model.name} v{version.version} to {env.name}"
    if supersedes:
        title += f" (supersedes v{supersedes})"
    body = release_body(cat, env, model, version, previous_v, now.version, (edit,), fp, supersedes, key.branch)
    change = Change(
        key=key,
        write_back=env.write_back,
        edits=(edit,),
        version=version.version,
        previous=now.version,
        commit_message=_commit_message(model, env, version, now.version, reason),
        title=title,
        body=body,
        fingerprint=fp,
        supersedes=supersedes,
        labels=("releasebot", *env.labels),
    )
    return [change], [], []


def plan(
    cat: Catalog, registry: RegistrySnapshot, repo: RepoState, env: str | None = None, model: str | None = None
) -> Plan:
    changes: list[Change] = []
    closes: list[Close] = []
    notes: list[Note] = []
    alerts: list[Alert] = []
    for e in cat.environments:
        if env is not None and e.name != env:
            continue
        for m in cat.models_in(e):
            if model is not None and m.name != model:
                continue
            c, x, n = _plan_release(cat, e, m, registry, repo)
            changes += [attach_capacity(cat, change, repo) for change in c]
            retrain, held = _plan_retrain(cat, e, m, registry, repo)
            changes += retrain
            notes += held
            alerts += _plan_alert(e, m, registry, repo)
            closes += x
            notes += n
        carried = any(edit.path.startswith(f"{e.name}/karpenter/") for c in changes for edit in c.edits)
        if model is None and not carried:
            resize, held = _plan_capacity(cat, e, repo)
            changes += resize
            notes += held
    return Plan(tuple(sorted(changes, key=lambda c: c.key)), tuple(closes), tuple(notes), tuple(alerts))


def registry_wants(cat: Catalog, repo: RepoState) -> dict[str, set[str]]:
    """Which registered models, and which extra versions (those serving today), to read."""
    wanted: dict[str, set[str]] = {}
    for e in cat.environments:
        for m in cat.models_in(e):
            extra = wanted.setdefault(m.registered_model, set())
            path = isvc.path_of(e.name, m.name)
            text = repo.main_files.get(path)
            if text is not None:
                now = served(text, path)
                extra |= {v for v in (now.version, now.pinned) if v}
    return wanted


def _pin_subject(env_name: str, model_name: str, repo: RepoState) -> tuple[Key, str, str, Served] | Note:
    """What a rollback or unblock edits: its key, the ISVC path and text on main, what it serves."""
    key = Key(env_name, model_name, "pin")
    path = isvc.path_of(env_name, model_name)
    text = repo.main_files.get(path)
    if text is None:
        return Note(key, f"{path} is not on the main branch", error=True)
    return key, path, text, served(text, path)


def rollback(cat: Catalog, env_name: str, model_name: str, repo: RepoState, target: Version) -> Change | Note:
    """Pin ``target`` in Git and block the version serving now, as one change of kind ``pin``."""
    env, model = cat.environment(env_name), cat.model(model_name)
    subject = _pin_subject(env_name, model_name, repo)
    if isinstance(subject, Note):
        return subject
    key, path, text, now = subject
    if now.version is None:
        return Note(key, f"{env.name} has no release of {model.name} to roll back", error=True)
    if target.version == now.version:
        return Note(key, f"{env.name} already serves version {target.version}", error=True)
    blocked = now.blocked | {now.version}
    edit = pin_edit(path, text, target.version, frozenset(blocked), target)
    assert edit is not None
    fp = fingerprint(key.branch, target.version, ",".join(sorted(blocked)), edit.new)
    title = f"Roll back {model.name} in {env.name} to v{target.version} (blocks v{now.version})"
    message = (
        f"{title}\n\nPinned to version {target.version}; version {now.version} is blocked until "
        f"`releasebot unblock {model.name} --env {env.name}`.\n\n"
        f"Releasebot-Model: {model.name}\nReleasebot-Version: {target.version}\n"
        f"Releasebot-Run: {target.run_id or 'none'}\nReleasebot-Environment: {env.name}\n"
    )
    body = (
        f"Rolls **{model.name}** in **{env.name}** back from v{now.version} to v{target.version}.\n\n"
        f"- pins version {target.version} (`{isvc.PINNED_ANNOTATION}`): alias moves are ignored while pinned\n"
        f"- blocks version {now.version} (`{isvc.BLOCKED_ANNOTATION}`)\n"
        f"- artifact: `{target.storage_uri}`\n\n"
        f"Clear both with `releasebot unblock {model.name} --env {env.name}`.\n\n"
        f"<!-- releasebot:fingerprint={fp} -->"
    )
    return Change(
        key=key,
        write_back=env.write_back,
        edits=(edit,),
        version=target.version,
        previous=now.version,
        commit_message=message,
        title=title,
        body=body,
        fingerprint=fp,
        labels=("releasebot", "rollback"),
    )


def unblock(cat: Catalog, env_name: str, model_name: str, repo: RepoState, version: str | None) -> Change | Note:
    """Clear the pin, and unblock ``version`` (or every blocked version)."""
    env, model = cat.environment(env_name), cat.model(model_name)
    subject = _pin_subject(env_name, model_name, repo)
    if isinstance(subject, Note):
        return subject
    key, path, text, now = subject
    if version is not None and version not in now.blocked:
        return Note(key, f"version {version} is not blocked in {env.name}", error=True)
    blocked = frozenset() if version is None else now.blocked - {version}
    edit = pin_edit(path, text, None, blocked, None)
    if edit is None:
        return Note(key, f"nothing is pinned or blocked for {model.name} in {env.name}")
    fp = fingerprint(key.branch, "unblock", ",".join(sorted(blocked)), edit.new)
    what = f"v{version}" if version else "all versions"
    title = f"Unblock {model.name} in {env.name} ({what}; alias @{env.alias} drives releases again)"
    return _pin_change(key, env, model, edit, now, title, f"Releasebot-Unblocked: {version or 'all'}", fp)


def _pin_change(
    key: Key, env: Environment, model: Model, edit: FileEdit, now: Served, title: str, trailer: str, fp: str
) -> Change:
    """A pin-kind change that serves no new version (unblock, hold, resume): no Version trailer,
    so ``history`` does not count it as a release."""
    message = f"{title}\n\nReleasebot-Model: {model.name}\nReleasebot-Environment: {env.name}\n{trailer}\n"
    return Change(
        key=key,
        write_back=env.write_back,
        edits=(edit,),
        version=now.version or "-",
        previous=now.version,
        commit_message=message,
        title=title,
        body=f"{prbody.clean(title)}.\n\n<!-- releasebot:fingerprint={fp} -->",  # "@alias" is no mention
        fingerprint=fp,
        labels=("releasebot",),
    )


def hold(cat: Catalog, env_name: str, model_name: str, repo: RepoState, resume: bool = False) -> Change | Note:
    """Pin the version serving now, so alias moves wait (``resume``: clear the pin, keep blocks)."""
    env, model = cat.environment(env_name), cat.model(model_name)
    subject = _pin_subject(env_name, model_name, repo)
    if isinstance(subject, Note):
        return subject
    key, path, text, now = subject
    if resume:
        if not now.pinned:
            return Note(key, f"{model.name} in {env.name} is not held; @{env.alias} already drives releases")
        edit = pin_edit(path, text, None, now.blocked, None)
        title = f"Resume {model.name} in {env.name}: alias @{env.alias} drives releases again"
    else:
        if now.version is None:
            return Note(key, f"{env.name} serves no release of {model.name} to hold", error=True)
        if now.pinned:
            return Note(key, f"{model.name} in {env.name} is already pinned to version {now.pinned}")
        edit = pin_edit(path, text, now.version, now.blocked, None)
        title = f"Hold {model.name} in {env.name} at v{now.version}: alias moves wait"
    assert edit is not None
    fp = fingerprint(key.branch, "resume" if resume else "hold", edit.new)
    return _pin_change(key, env, model, edit, now, title, f"Releasebot-Hold: {'off' if resume else now.version}", fp)


# --- capacity ----------------------------------------------------------------------------------


def canary_edit(path: str, text: str, percent: int | None) -> FileEdit | None:
    """Start (or step) a canary at ``percent``, or end it with None: the rollout-owned field."""
    doc = yamlio.load(text, path)
    desired = {"spec": {"predictor": {"canaryTrafficPercent": percent}}} if percent is not None else {}
    changed = apply_owned(doc, desired, [Owned(isvc.CANARY)])
    if not changed:
        return None
    return FileEdit(path, text, yamlio.dump(doc, yamlio.guess_style(text)), tuple(changed))


def _canaries_after(cat: Catalog, env: Environment, repo: RepoState, edits: tuple[FileEdit, ...]) -> set[str]:
    texts = dict(repo.main_files) | {e.path: e.new for e in edits}
    found = set()
    for m in cat.models_in(env):
        path = isvc.path_of(env.name, m.name)
        if path in texts and isvc.canary_percent(yamlio.load(texts[path], path)) is not None:
            found.add(m.name)
    return found


def _pool_edits(cat: Catalog, env: Environment, repo: RepoState, canaries: set[str]) -> tuple[FileEdit, ...]:
    wanted = capacity.limits(cat, env, canaries)
    edits = []
    for pool, limits in wanted.items():
        path = karpenter.pool_path(env.name, pool == "gpu")
        text = repo.main_files.get(path)
        if text is None:
            continue  # a missing pool is render's business (a catalog change)
        doc = yamlio.load(text, path)
        changed = apply_owned(doc, yamlio.quote_ambiguous({"spec": {"limits": limits}}), karpenter.CAPACITY_OWNED)
        if changed:
            edits.append(FileEdit(path, text, yamlio.dump(doc, yamlio.guess_style(text)), tuple(changed)))
    return tuple(edits)


def _describe_limits(edits: tuple[FileEdit, ...]) -> str:
    lines = []
    for e in edits:
        old = (yamlio.to_plain(yamlio.load(e.old, e.path)).get("spec") or {}).get("limits") or {}
        new = yamlio.to_plain(yamlio.load(e.new, e.path))["spec"]["limits"]
        parts = [f"{k} {old.get(k, '-')} -> {v}" for k, v in new.items() if old.get(k) != v]
        lines.append(f"- `{e.path}`: {', '.join(parts)}")
    return "\n".join(lines)


def attach_capacity(cat: Catalog, change: Change, repo: RepoState) -> Change:
    """Let a change that starts or ends a canary carry the NodePool limits it needs."""
    env = cat.environment(change.key.environment)
    before = _canaries_after(cat, env, repo, ())
    after = _canaries_after(cat, env, repo, change.edits)
    if before == after:
        return change
    pools = _pool_edits(cat, env, repo, after)
    if not pools:
        return change
    why = "a canary starts" if len(after) > len(before) else "a canary ends"
    text = f"Capacity ({why}: KServe keeps two predictor revisions while it runs):\n{_describe_limits(pools)}"
    lines = change.commit_message.rstrip("\n").split("\n")
    first_trailer = next(i for i, line in enumerate(lines) if line.startswith("Releasebot-"))
    message = "\n".join([*lines[:first_trailer], text, "", *lines[first_trailer:]]) + "\n"
    body = change.body.replace("\n### Rolling back", f"\n### Capacity\n{_describe_limits(pools)}\n\n### Rolling back")
    edits = change.edits + pools
    return replace(
        change,
        edits=edits,
        commit_message=message,
        body=body,
        fingerprint=fingerprint(change.fingerprint, *(e.new for e in pools)),
    )


def _plan_capacity(cat: Catalog, env: Environment, repo: RepoState) -> tuple[list[Change], list[Note]]:
    """Limits on main that the catalog and running canaries no longer justify: a change of its own."""
    key = Key(env.name, CAPACITY_KEY_MODEL, "capacity")
    pools = _pool_edits(cat, env, repo, _canaries_after(cat, env, repo, ()))
    if not pools:
        return [], []
    fp = fingerprint(key.branch, *(e.new for e in pools))
    held, notes = _held(key, repo.branches.get(key.branch), fp)
    if held:
        return [], notes
    summary = _describe_limits(pools)
    title = f"Resize the {env.name} NodePool limits"
    message = (
        f"{title}\n\nThe catalog (models, resources, replicas, headroom) asks for different limits:\n"
        f"{summary}\n\nReleasebot-Environment: {env.name}\nReleasebot-Capacity: {env.name}\n"
    )
    body = (
        f"The {env.name} NodePool limits no longer match what the catalog and the running canaries need "
        f"(headroom x{cat.karpenter.headroom}).\n\n{summary}\n\n<!-- releasebot:fingerprint={fp} -->"
    )
    return [
        Change(
            key=key,
            write_back=env.write_back,
            edits=pools,
            version="-",
            previous=None,
            commit_message=message,
            title=title,
            body=body,
            fingerprint=fp,
            labels=("releasebot", "capacity", *env.labels),
        )
    ], []


# --- drift ---------------------------------------------------------------------------------------


def _drift_table(result: dict, tracking_uri: str, limit: int = 10) -> list[str]:
    rows = [c for c in result.get("columnResults", []) if c.get("drifted")][:limit]
    lines = ["| column | score | method | threshold |", "|---|---:|---|---:|"]
    lines += [
        f"| {prbody.cell(c['column'])} | {c['score']:.4g} | {prbody.cell(c['method'])} | {c['threshold']:g} |"
        for c in rows
    ]
    run_id, exp = result.get("runId"), result.get("experimentId")
    link = f"{tracking_uri.rstrip('/')}/#/experiments/{exp}/runs/{run_id}" if exp else f"run `{run_id}`"
    return [
        *(lines if rows else ["_No column details were recorded._"]),
        "",
        f"Report: {prbody.clean(link)} (artifact `report.html`)",
    ]


def _serving(
    env: Environment, model: Model, registry: RegistrySnapshot, repo: RepoState
) -> tuple[str | None, Version | None] | None:
    """The version the environment's manifest on main serves, and its registry record (whose tags
    carry the drift result); None when the manifest or the registered model is missing."""
    path = isvc.path_of(env.name, model.name)
    text, state = repo.main_files.get(path), registry.models.get(model.registered_model)
    if text is None or state is None:
        return None
    serving = served(text, path).version
    return serving, state.versions.get(serving) if serving else None


def _plan_retrain(
    cat: Catalog, env: Environment, model: Model, registry: RegistrySnapshot, repo: RepoState
) -> tuple[list[Change], list[Note]]:
    """Unsuspend the retrain CronJob when the served version drifts; suspend it once a newer one serves."""
    if model.drift is None or model.drift.action != "retrain" or model.retrain is None:
        return [], []
    key = Key(env.name, model.name, "retrain")
    path = cronjobs.retrain_path(env.name, model.name)
    text, found = repo.main_files.get(path), _serving(env, model, registry, repo)
    if text is None or found is None:
        return [], []
    serving, version = found
    doc = yamlio.to_plain(yamlio.load(text, path))
    suspended = (doc.get("spec") or {}).get("suspend") is True
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    tags = version.tag if version else {}
    if suspended and tags.get("releasebot.drift.status") == "drift":
        result = version.drift or {}
        share, wanted_share = tags.get("releasebot.drift.share", "?"), model.drift.dataset_drift_share
        reason = f"{share} of columns drifted (threshold {wanted_share}) on v{serving} in {env.name}"
        desired = {
            "spec": {"suspend": False},
            "metadata": {
                "annotations": {
                    cronjobs.DRIFT_RUN_ANNOTATION: tags.get("releasebot.drift.run_id", ""),
                    cronjobs.DRIFT_VERSION_ANNOTATION: serving,
                    cronjobs.DRIFT_REASON_ANNOTATION: reason,
                }
            },
        }
        title = f"Retrain {model.name}: drift in {env.name}"
        why = [
            f"The drift check found drift on **{model.name}** v{serving} in **{env.name}**: {reason}.",
            "Merging unsuspends the retrain CronJob, which submits the training pipeline on its schedule "
            f"(`{model.retrain.schedule}`) until a newer version is released here.",
            "",
            *_drift_table(result, registry.tracking_uri),
        ]
    elif not suspended and annotations.get(cronjobs.DRIFT_VERSION_ANNOTATION) not in (None, serving):
        desired = {"spec": {"suspend": True}}
        title = f"Stop retraining {model.name} in {env.name}: v{serving} is released"
        why = [
            f"v{serving} now serves in {env.name} (the drift was on "
            f"v{annotations.get(cronjobs.DRIFT_VERSION_ANNOTATION)}); the retrain CronJob is suspended again."
        ]
    else:
        return [], []
    loaded = yamlio.load(text, path)
    changed = apply_owned(loaded, yamlio.quote_ambiguous(desired), cronjobs.DRIFT_OWNED)
    if not changed:
        return [], []
    edit = FileEdit(path, text, yamlio.dump(loaded, yamlio.guess_style(text)), tuple(changed))
    fp = fingerprint(key.branch, edit.new)
    held, notes = _held(key, repo.branches.get(key.branch), fp)
    if held:
        return [], notes
    message = (
        f"{title}\n\n{why[0]}\n\nReleasebot-Model: {model.name}\nReleasebot-Environment: {env.name}\n"
        f"Releasebot-Drift-Run: {tags.get('releasebot.drift.run_id', 'none')}\n"
    )
    body = "\n".join([*why, "", f"<!-- releasebot:fingerprint={fp} -->"])
    return [
        Change(
            key=key,
            write_back=env.write_back,
            edits=(edit,),
            version=serving or "-",
            previous=serving,
            commit_message=message,
            title=title,
            body=body,
            fingerprint=fp,
            labels=("releasebot", "drift", *env.labels),
        )
    ], []


def _plan_alert(env: Environment, model: Model, registry: RegistrySnapshot, repo: RepoState) -> list[Alert]:
    """Raise an alert while the served version drifts; resolve it when a check finds none."""
    if model.drift is None or model.drift.action != "alert":
        return []
    found = _serving(env, model, registry, repo)
    serving, version = found if found is not None else (None, None)
    if version is None:
        return []
    tags = version.tag
    status, run_id = tags.get("releasebot.drift.status"), tags.get("releasebot.drift.run_id", "")
    key = Key(env.name, model.name, "alert")
    fp = fingerprint(key.branch, status or "", run_id)
    labels = ("releasebot", "drift", *env.labels)
    if status == "drift":
        share, checked = tags.get("releasebot.drift.share", "?"), tags.get("releasebot.drift.checked_at", "?")
        lines = [
            f"The drift check found drift on **{model.name}** v{serving} in **{env.name}**: {share} of columns "
            f"drifted (threshold {model.drift.dataset_drift_share}), checked {checked}.",
            "",
            *_drift_table(version.drift or {}, registry.tracking_uri),
            "",
            f"The model's drift policy is `alert`: releasebot changes nothing. Retrain, then move "
            f"`@{env.alias}` to the new version; this issue is updated by every check that still finds drift "
            "and closed by the first one that does not.",
        ]
        title = f"Drift: {model.name} v{serving} in {env.name}"
        return [Alert(key, True, title, "\n".join([*lines, "", f"<!-- releasebot:fingerprint={fp} -->"]), fp, labels)]
    if status == "ok":
        body = f"The drift check on v{serving} in {env.name} found no drift (run `{prbody.clean(run_id)}`)."
        return [Alert(key, False, f"No drift: {model.name} v{serving} in {env.name}", body, fp, labels)]
    return []
