"""The planner: desired state against actual state, as a list of changes. Pure.

``plan(catalog, registry, repo)`` takes everything as arguments and does no I/O: no git, no
network, no clock. For each (environment, model) it is asked about, one module per policy says
what should change: :mod:`.release` (the alias, a pin, blocked versions), :mod:`.capacity`
(NodePool limits), :mod:`.drift` (retrain or alert), and :mod:`.pins` answers a person's
rollback, unblock, hold and resume. The values that go in and come out are in :mod:`.types`.

The answer never depends on which event asked: running it twice gives the same plan, and a plan
already carried out gives no change. Every change has a key ``(environment, model, kind)`` that
names exactly one branch, and a fingerprint of its content so an unchanged plan writes nothing.

A plan for one model reads only that model's manifests and registry facts; environment-wide
facts (running canaries) are worked out once per environment, and only when a change needs them.
"""

from __future__ import annotations

from dataclasses import replace

from bot.catalog import Catalog
from bot.plan.between import Found, finish
from bot.plan.capacity import Canaries, _plan_capacity, attach_capacity, canary_edit
from bot.plan.drift import _plan_alert, _plan_retrain
from bot.plan.facts import served
from bot.plan.lifecycle import Outcome, _moot
from bot.plan.pins import _plan_pin_branch, hold, pin_edit, rollback, unblock
from bot.plan.release import _plan_release, models_to_plan, registry_wants, release_edit
from bot.plan.rollout import analysis_wants, under_way
from bot.plan.types import (
    CAPACITY_KEY_MODEL,
    KINDS,
    TRAILERS,
    Alert,
    BotBranch,
    Change,
    Close,
    Dataset,
    FileEdit,
    Key,
    Kind,
    Look,
    ModelState,
    Note,
    Plan,
    RegistrySnapshot,
    RepoState,
    Served,
    Version,
    Walk,
    fingerprint,
)

__all__ = [
    "CAPACITY_KEY_MODEL",
    "TRAILERS",
    "Alert",
    "BotBranch",
    "Canaries",
    "Change",
    "Close",
    "Dataset",
    "FileEdit",
    "Key",
    "Kind",
    "Look",
    "ModelState",
    "Note",
    "Plan",
    "RegistrySnapshot",
    "RepoState",
    "Served",
    "Version",
    "Walk",
    "analysis_wants",
    "attach_capacity",
    "canary_edit",
    "fingerprint",
    "hold",
    "key_of_branch",
    "models_to_plan",
    "pin_edit",
    "plan",
    "registry_wants",
    "release_edit",
    "rollback",
    "served",
    "unblock",
    "under_way",
]


def plan(
    cat: Catalog,
    registry: RegistrySnapshot,
    repo: RepoState,
    env: str | None = None,
    model: str | None = None,
    look: Look | None = None,
) -> Plan:
    """The plan for every key of the catalog, or only those of ``env`` and ``model``. ``look``
    is what walks under way see beyond Git (the cluster, verdicts, the clock); without it they
    wait, and every other policy plans as before."""
    changes: list[Change] = []
    found = Found()
    closes: list[Close] = []
    notes: list[Note] = []
    alerts: list[Alert] = []
    held: list[Change] = []

    def add(outcome: Outcome) -> None:
        changes.extend(c for c in outcome[0] if c.held is None)
        held.extend(c for c in outcome[0] if c.held is not None)
        closes.extend(outcome[1])
        notes.extend(outcome[2])

    canaries = Canaries(cat, repo)
    for e in cat.environments:
        if env is not None and e.name != env:
            continue
        for m in models_to_plan(cat, e, model):
            c, x, n = _plan_release(cat, e, m, registry, repo, look, found)
            add(
                (
                    [attach_capacity(cat, change, repo, canaries) if change.held is None else change for change in c],
                    x,
                    n,
                )
            )
            add(_plan_retrain(cat, e, m, registry, repo))
            add(_plan_pin_branch(e, m, repo))
            alerts += _plan_alert(e, m, registry, repo)
        carried = any(edit.path.startswith(f"{e.name}/karpenter/") for c in changes for edit in c.edits)
        if model is None and not carried:
            add(_plan_capacity(cat, e, repo, canaries))
    if model is None:
        for name, branch in sorted(repo.branches.items()):
            key = key_of_branch(name)
            if key is not None and (env is None or key.environment == env) and not _in_catalog(cat, key):
                add(_moot(key, branch, f"{key.model} in {key.environment} is no longer in the catalog"))
    out = Plan(
        tuple(sorted((_asks(cat, c) for c in changes), key=lambda c: c.key)),
        tuple(closes),
        tuple(notes),
        tuple(alerts),
        tuple(sorted(found.walks, key=lambda w: w.key)),
        tuple(sorted((_asks(cat, c) for c in held), key=lambda c: c.key)),
    )
    return finish(out, registry, cat, found, look)


def _asks(cat: Catalog, change: Change) -> Change:
    """What a change asks of its forge, from its environment: the catalog's reviewers for every
    pull request, and GitHub's auto-merge for release changes where the environment says so."""
    env = cat.environment(change.key.environment)
    auto = env.auto_merge and change.key.kind == "release" and change.write_back == "pull-request"
    if not (env.reviewer_users or env.reviewer_teams or auto):
        return change
    return replace(change, reviewers=env.reviewer_users, team_reviewers=env.reviewer_teams, auto_merge=auto)


def key_of_branch(name: str) -> Key | None:
    """The key a ``releasebot/<environment>/<model>/<kind>`` branch belongs to, if it is one."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "releasebot" or parts[3] not in KINDS:
        return None
    return Key(parts[1], parts[2], parts[3])


def _in_catalog(cat: Catalog, key: Key) -> bool:
    try:
        env = cat.environment(key.environment)
    except KeyError:
        return False
    if key.model == CAPACITY_KEY_MODEL:
        return key.kind == "capacity"
    return any(m.name == key.model for m in models_to_plan(cat, env, key.model))
