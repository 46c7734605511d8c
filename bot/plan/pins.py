"""Pins and blocks a person asks for: rollback, unblock, hold and resume. Pure.

Each is one change of kind ``pin`` that records, as InferenceService annotations on main, which
version Git pins (alias moves wait) and which versions are blocked; a rollback also serves the
pinned version. None of them serves a version the registry did not name.
"""

from __future__ import annotations

from bot import prbody, yamlio
from bot.catalog import Catalog, Environment, Model
from bot.manifests import inferenceservice as isvc
from bot.manifests import rollout
from bot.manifests.ownership import apply_owned
from bot.plan.facts import served
from bot.plan.lifecycle import Outcome, _moot, persons
from bot.plan.release import _apply_release, drift_follow_edit
from bot.plan.types import Change, FileEdit, Key, Note, RepoState, Served, Version, fingerprint


def pin_edit(
    path: str, text: str, pinned: str | None, blocked: frozenset[str], version: Version | None
) -> FileEdit | None:
    """Record a pin and blocked versions in the ISVC (and serve ``version`` when given)."""
    doc = yamlio.load(text, path)
    annotations: dict[str, str] = {}
    if pinned:
        annotations[isvc.PINNED_ANNOTATION] = pinned
    if blocked:
        annotations[isvc.BLOCKED_ANNOTATION] = isvc.blocked_text(blocked)
    changed = apply_owned(doc, yamlio.quote_ambiguous({"metadata": {"annotations": annotations}}), isvc.PIN_ANNOTATIONS)
    if version is not None:
        # Serving a version by hand ends any canary walk under way: no split, no walk state.
        changed += _apply_release(doc, version) + rollout.set_walk(doc, False, None, None, None)
    if not changed:
        return None
    return FileEdit(path, text, yamlio.dump(doc, yamlio.guess_style(text)), tuple(changed))


def _pin_subject(env_name: str, model_name: str, repo: RepoState) -> tuple[Key, str, str, Served] | Note:
    """What a rollback or unblock edits: its key, the ISVC path and text on main, what it serves."""
    key = Key(env_name, model_name, "pin")
    taken = persons(key, repo.branches.get(key.branch), error=True)
    if taken is not None:  # the pin branch is a person's now: a new pin would force-push over it
        return taken
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
    follow = drift_follow_edit(repo, env.name, model.name, target.version)
    edits = (edit,) if follow is None else (edit, follow)
    fp = fingerprint(key.branch, target.version, ",".join(sorted(blocked)), *(e.new for e in edits))
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
        edits=edits,
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


def _plan_pin_branch(env: Environment, model: Model, repo: RepoState) -> Outcome:
    """A pin is asked for by a person, so there is no desired state to compare it with: its open
    branch is moot once main already has everything it proposed."""
    key = Key(env.name, model.name, "pin")
    branch = repo.branches.get(key.branch)
    if branch is None or not branch.applied:
        return [], [], []
    return _moot(key, branch, f"main already has what {key.branch} proposed")
