"""The release policy: the version an environment should serve, and the change that gets it there. Pure.

The *desired* version is the environment's MLflow alias, unless Git pins another one
(``releasebot rollback``) or marks the alias's version blocked; the *actual* version is what the
InferenceService on main serves, and what an open bot branch for the same key proposes. Only the
registry-owned fields of the manifest are edited.
"""

from __future__ import annotations

from dataclasses import replace

from bot import yamlio
from bot.catalog import Catalog, Environment, Model
from bot.manifests import cronjobs
from bot.manifests import inferenceservice as isvc
from bot.manifests.ownership import Owned, apply_owned, differs, has
from bot.plan import gate as gates
from bot.plan.between import Found, admit, promoted
from bot.plan.facts import plain, served
from bot.plan.lifecycle import _held, _moot, _noted, _wanted
from bot.plan.types import (
    Change,
    Close,
    FileEdit,
    Key,
    Look,
    Note,
    RegistrySnapshot,
    RepoState,
    Version,
    fingerprint,
)
from bot.prbody import release_body


def _release(doc: object, version: Version) -> tuple[dict, list[Owned]]:
    """What serving ``version`` asks of an ISVC's registry-owned fields, and which rules own them."""
    # A custom container reads its model from the STORAGE_URI variable; a model spec from storageUri.
    shape_is_image = has(doc, ("spec", "predictor", "containers")) and not has(doc, ("spec", "predictor", "model"))
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
    return yamlio.quote_ambiguous(desired), rules + isvc.RELEASE_ANNOTATIONS


def _apply_release(doc: object, version: Version) -> list[str]:
    """Set the registry-owned fields of a loaded ISVC to serve ``version``; return what changed."""
    return apply_owned(doc, *_release(doc, version))


def release_edit(path: str, text: str, version: Version) -> FileEdit | None:
    """The ISVC text serving ``version``: registry-owned fields only, everything else as it was."""
    if not differs(plain(text, path), *_release(plain(text, path), version)):
        return None  # decided on the fast plain parse: a settled manifest is not loaded round trip
    doc = yamlio.load(text, path)
    changed = _apply_release(doc, version)
    if not changed:
        return None
    return FileEdit(path, text, yamlio.dump(doc, yamlio.guess_style(text)), tuple(changed))


def drift_follow_edit(repo: RepoState, env: str, model: str, version: str) -> FileEdit | None:
    """Point the drift check of (``env``, ``model``) at ``version``, the version it will serve."""
    path = cronjobs.drift_check_path(env, model)
    text = repo.main_files.get(path)
    if text is None:
        return None
    desired = yamlio.quote_ambiguous(cronjobs.served_version(version))
    if not differs(plain(text, path), desired, cronjobs.SERVED_VERSION_OWNED):
        return None
    doc = yamlio.load(text, path)
    changed = apply_owned(doc, desired, cronjobs.SERVED_VERSION_OWNED)
    if not changed:
        return None
    return FileEdit(path, text, yamlio.dump(doc, yamlio.guess_style(text)), tuple(changed))


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


def _plan_release(
    cat: Catalog,
    env: Environment,
    model: Model,
    registry: RegistrySnapshot,
    repo: RepoState,
    look: Look | None = None,
    found: Found | None = None,
) -> tuple[list[Change], list[Close], list[Note]]:
    key = Key(env.name, model.name, "release")
    path = isvc.path_of(env.name, model.name)
    branch = repo.branches.get(key.branch)
    state = registry.models.get(model.registered_model)
    if model.registered_model in registry.problems:
        return _noted(Note(key, registry.problems[model.registered_model], error=True))
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
    gate = None
    if not now.pinned and version.version not in (now.version, now.stable):
        # A version new to this environment: the promotion order and the quality gate first.
        stopped, gate = admit(cat, env, model, registry, repo, now, version, look, branch, found)
        if stopped is not None:
            walking = _walking(env, now, state)
            if walking is None:
                return stopped
            # A walk under way goes on with the version it walks: a canary is never left halfway
            # because the alias moved to a version that may not start here (yet). Its branch is
            # the walk's, so nothing is closed; the notes say why the new version waits.
            if found is not None and found.walks and found.walks[-1].key == key:
                found.walks.pop()  # the waiting walk: the one under way is what this key shows
            held_back = [replace(n, message=f"{n.message}; the walk of v{now.version} goes on") for n in stopped[2]]
            version, reason, gate = walking, f"the walk of v{walking.version} under way goes on", None
            if env.canary is not None:
                from bot.plan.rollout import plan_walk

                walked = plan_walk(cat, env, model, registry, repo, now, version, reason, look)
                if walked is not None:
                    walk = walked[1]
                    if walk.phase not in ("ending", "unobserved"):
                        walk = replace(walk, sha=(repo.landed.get(path) or (None,))[0])
                    if found is not None:
                        found.walks.append(walk)
                    return walked[0][0], walked[0][1], [*walked[0][2], *held_back]
            return stopped
    if env.canary is not None and not now.pinned:
        # With canary steps, a new version walks; the rollout policy builds on this module's
        # edits, so it is imported here rather than at the top.
        from bot.plan.rollout import plan_walk, under_way

        walked = plan_walk(cat, env, model, registry, repo, now, version, reason, look, gate)
        if walked is not None:
            walk = walked[1]
            if under_way(env, now) and walk.version == now.version and walk.phase not in ("ending", "unobserved"):
                walk = replace(walk, sha=(repo.landed.get(path) or (None,))[0])  # the step's commit
            if found is not None:
                found.walks.append(walk)
            return walked[0]
        done = promoted(cat, env, model, repo, look, now)
        if done is not None and found is not None:
            found.deployments.append(done)
    edits = tuple(
        e
        for e in (release_edit(path, text, version), drift_follow_edit(repo, env.name, model.name, version.version))
        if e
    )
    if not edits:
        return _moot(key, branch, f"main already serves version {wanted}")
    fp = fingerprint(key.branch, version.version, version.storage_uri, *(e.new for e in edits))
    held, notes = _held(key, branch, fp)
    if notes:  # a person's branch now: said, and left alone
        return [], [], notes
    previous_v = state.versions.get(now.version) if (state and now.version) else None
    supersedes = branch.version if branch is not None and branch.version != version.version else None
    title = f"Release {model.name} v{version.version} to {env.name}"
    if supersedes:
        title += f" (supersedes v{supersedes})"
    body = release_body(cat, env, model, version, previous_v, now.version, edits, fp, supersedes, key.branch)
    if gate is not None:
        body = gates.with_table(body, gate)
    change = Change(
        key=key,
        write_back=env.write_back,
        edits=edits,
        version=version.version,
        previous=now.version,
        commit_message=_commit_message(model, env, version, now.version, reason),
        title=title,
        body=body,
        fingerprint=fp,
        supersedes=supersedes,
        labels=("releasebot", *env.labels),
        gate=gate,
    )
    return _wanted(change, branch, held)


def _walking(env: Environment, now, state) -> Version | None:
    """The version a canary walk on main is walking, when one is under way."""
    if env.canary is None or now.step is None or now.version is None or state is None:
        return None
    return state.versions.get(now.version)


def models_to_plan(cat: Catalog, env: Environment, model: str | None) -> tuple[Model, ...]:
    """The environment's models, or just ``model`` when it is one of them."""
    if model is None:
        return cat.models_in(env)
    try:
        found = cat.model(model)
    except KeyError:
        return ()
    return (found,) if found.environments is None or env.name in found.environments else ()


def registry_wants(
    cat: Catalog, repo: RepoState, env: str | None = None, model: str | None = None
) -> dict[str, set[str]]:
    """Which registered models, and which extra versions (those serving today), to read: for
    every key of the catalog, or only those of ``env`` and ``model``."""
    wanted: dict[str, set[str]] = {}
    for e in cat.environments:
        if env is not None and e.name != env:
            continue
        for m in models_to_plan(cat, e, model):
            extra = wanted.setdefault(m.registered_model, set())
            path = isvc.path_of(e.name, m.name)
            text = repo.main_files.get(path)
            if text is not None:
                now = served(text, path)
                extra |= {v for v in (now.version, now.pinned, now.stable) if v}
    return wanted
