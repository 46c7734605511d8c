"""What the promotion order and ended walks need observed beyond a walk under way. Adapter glue.

The planner (:mod:`bot.plan.promotion`, :mod:`bot.plan.between`) decides from facts it cannot
read itself; this module gathers exactly those for the keys a pass plans:

* for a version a later environment wants but its prerequisite no longer serves: whether the
  version ever reached 100% there (one ``git log`` over that manifest's history);
* the manifests whose last commit must be seen deployed, Healthy and soaked: a prerequisite that
  serves the version wanted (in an environment with canary steps), and an environment whose walk
  just ended in a promotion (its GitHub deployment is in progress until it settles).

What it learns that cannot change — a commit seen settled, a manifest text whose last landing
needs no more watching — it remembers for the life of the process, so a settled fleet costs no
git or cluster reads per pass.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from bot.catalog import Catalog, Environment, Model
from bot.manifests import inferenceservice as isvc
from bot.plan import RegistrySnapshot, RepoState, models_to_plan, promotion, served, under_way
from bot.plan.types import Look
from bot.repo import EnvRepo

# Main commits seen deployed, Healthy and soaked where they landed.
SETTLED: set[str] = set()
# Manifest texts (by path) whose last landing needs no watching: not a promotion, or settled.
_QUIET: dict[str, str] = {}
_LIMIT = 100_000


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def gather(
    repo: EnvRepo, cat: Catalog, state: RepoState, registry: RegistrySnapshot, env: str | None, model: str | None
) -> tuple[RepoState, list[tuple[Environment, Model]]]:
    """``state`` with the histories the promotion order asks about, and the manifests whose
    rollout must be watched until it settles."""
    keys = [(e, m) for e in cat.environments if env is None or e.name == env for m in models_to_plan(cat, e, model)]
    wants = promotion.wants(cat, registry, state, keys)
    reached = {
        (e.name, m.name, v): repo.reached(isvc.path_of(e.name, m.name), m.name, e.name, v) for e, m, v in wants.history
    }
    settle = list(wants.settle)
    steps = dict(state.landed_steps)
    for e, m in keys:
        if e.canary is None:
            continue
        path = isvc.path_of(e.name, m.name)
        text = state.main_files.get(path)
        if text is None or _QUIET.get(path) == _digest(text):
            continue
        now = served(text, path)
        if now.version is None or under_way(e, now):
            continue
        step = repo.step_of(path)
        total = len(e.canary.steps) + 1
        if step != f"{total}/{total}":
            _quiet(path, text)
            continue
        steps[path] = step
        if (e, m) not in settle:
            settle.append((e, m))
    return replace(state, reached=reached, landed_steps=steps), settle


def remember(cat: Catalog, state: RepoState, look: Look, settle: list[tuple[Environment, Model]] | tuple) -> None:
    """Note the commits this look found settled, for the passes after this one."""
    for e, m in settle:
        done = promotion.settle(e, m, state, look)
        if done.settled and done.sha is not None:
            if len(SETTLED) >= _LIMIT:
                SETTLED.clear()
            SETTLED.add(done.sha)
            path = isvc.path_of(e.name, m.name)
            text = state.main_files.get(path)
            if text is not None:
                _quiet(path, text)


def _quiet(path: str, text: str) -> None:
    if len(_QUIET) >= _LIMIT:
        _QUIET.clear()
    _QUIET[path] = _digest(text)
