"""Observe, plan, write back: one pass of the level-triggered loop.

:func:`reconcile` fetches the environments repo, reads the catalog and manifests from its main
branch, the bot branches, and a registry snapshot; asks :func:`bot.plan.plan`; and carries the
plan out: ``commit`` changes straight to main, ``branch`` and ``pull-request`` changes as a
rebuilt bot branch handed to the environment's forge. When the repo moves under it (a rejected
push, a lease that no longer holds) it starts over from fresh state, a few times at most.

It holds no state between passes; every pass decides from scratch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.catalog import CATALOG_FILE, Catalog, parse_catalog
from bot.errors import ConflictError, PermanentUpstreamError
from bot.forge import Forge
from bot.manifests import cronjobs, karpenter
from bot.manifests import inferenceservice as isvc
from bot.plan import Change, Plan, RepoState, plan, registry_wants
from bot.registry import Registry
from bot.repo import EnvRepo

ATTEMPTS = 3


@dataclass
class Result:
    plan: Plan
    catalog: Catalog
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def observe(repo: EnvRepo, registry_for: Callable[[Catalog], Registry]) -> tuple[Catalog, RepoState, Registry]:
    repo.sync()
    text = repo.read(CATALOG_FILE)
    if text is None:
        raise PermanentUpstreamError(f"{repo.remote} has no {CATALOG_FILE} on {repo.branch}")
    cat = parse_catalog(text, CATALOG_FILE, repo.workdir)
    paths = [isvc.path_of(e.name, m.name) for e in cat.environments for m in cat.models_in(e)]
    paths += [karpenter.pool_path(e.name, gpu) for e in cat.environments for gpu in (False, True)]
    paths += [cronjobs.retrain_path(e.name, m.name) for e in cat.environments for m in cat.models_in(e)]
    files = {p: t for p in paths if (t := repo.read(p)) is not None}
    return cat, RepoState(files, repo.bot_branches()), registry_for(cat)


def make_plan(
    repo: EnvRepo, registry_for: Callable[[Catalog], Registry], env: str | None = None, model: str | None = None
) -> tuple[Catalog, Plan]:
    cat, state, registry = observe(repo, registry_for)
    snapshot = registry.snapshot(registry_wants(cat, state))
    return cat, plan(cat, snapshot, state, env, model)


def write_back(repo: EnvRepo, change: Change, forge_for: Callable[[str], Forge | None]) -> str:
    """Carry out one change by its environment's mode; return what was done."""
    if change.write_back == "commit":
        sha = repo.commit_to_main(change)
        return f"committed {change.title} to {repo.branch} ({sha[:12]})"
    expected = repo.bot_branches().get(change.key.branch)
    head = repo.push_branch(change, expected.head if expected else None)
    forge = forge_for(change.write_back)
    if forge is None:
        raise PermanentUpstreamError(f"{change.write_back} write-back is not configured here")
    verb = "updated" if expected else "pushed"
    return f"{verb} {change.title}: {forge.propose(change, head)}"


def reconcile(
    repo: EnvRepo,
    registry_for: Callable[[Catalog], Registry],
    forge_for: Callable[[str], Forge | None],
    env: str | None = None,
    model: str | None = None,
) -> Result:
    """Carry out the plan. ``forge_for(mode)`` gives the forge of a write-back mode, or None when
    that mode is not available here: its changes are then skipped, and said so."""
    for attempt in range(ATTEMPTS):
        cat, p = make_plan(repo, registry_for, env, model)
        result = Result(p, cat)
        try:
            for change in p.changes:
                if change.write_back != "commit" and forge_for(change.write_back) is None:
                    result.skipped.append(
                        f"{change.key.branch}: {change.write_back} write-back is not configured here; skipped"
                    )
                    continue
                result.done.append(write_back(repo, change, forge_for))
            for note in p.notes:
                forge = forge_for(cat.environment(note.key.environment).write_back)
                if note.tell and forge is not None:
                    said = forge.note(note.key, note.message)
                    if said:
                        result.done.append(said)
            for alert in p.alerts:
                # Issues live on GitHub whatever the environment's write-back mode.
                forge = forge_for("pull-request") or forge_for("branch")
                assert forge is not None
                said = forge.alert(alert)
                if said:
                    result.done.append(said)
            for close in p.closes:
                forge = forge_for(cat.environment(close.key.environment).write_back) or forge_for("branch")
                assert forge is not None
                result.done.append(forge.withdraw(close))
            return result
        except ConflictError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
