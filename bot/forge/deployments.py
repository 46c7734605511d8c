"""Walk steps as GitHub deployments, so GitHub's own environment pages show what serves where.

:func:`deployment` makes GitHub say what a :class:`bot.plan.types.Deployment` says, and is
level-triggered like every forge verb: each pass may ask again, and a pass that finds GitHub
already saying it writes nothing.

* Identity: one deployment per (environment, model, main commit). The GitHub environment is
  releasebot's environment, which several models share, so the model is in the deployment's
  ``task`` (``deploy:<model>``); the ref is the main commit that landed the step. It is looked up
  with ``GET .../deployments?sha=&environment=&task=`` before it is created; should two replicas
  both create one, the oldest is the one used from then on, and the other is retired with the
  step before it.
* State: a status is posted only when the deployment's latest one differs (``in_progress``,
  ``success``, ``failure``). Every status is posted with ``auto_inactive: false``: GitHub's
  default would mark every earlier successful deployment of the *environment* inactive, the
  other models' too, which still serve.
* When a step reaches ``success``, the same model's earlier deployments in that environment
  whose latest status is ``success`` or ``in_progress`` get an ``inactive`` status: the newest
  success is what serves. Deployments are scanned newest first and the scan stops at the first
  one already inactive, since every one before it was retired when it was; so the cost of a
  step does not grow with the model's history.
* Created with ``auto_merge: false`` (the ref is a commit on main; there is nothing to merge)
  and ``required_contexts: []`` (the step's checks were the pull request's, and a rollback must
  be recorded whatever main's checks say).

It does not decide a step's state (the walk does, in :mod:`bot.plan`) and does not deploy
anything: Argo CD does, from main.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from bot import prbody
from bot.forge.github import API, GitHubForge
from bot.plan.types import Deployment

DESCRIPTION_LIMIT = 140  # GitHub's limit on a deployment status description
SCAN_LIMIT = 100  # deployments of one model looked at when retiring earlier ones: one page
ACTIVE = frozenset({"success", "in_progress"})


def task(model: str) -> str:
    return f"deploy:{model}"


def deployment(forge: GitHubForge, d: Deployment) -> str | None:
    """Make GitHub's deployment of ``d`` exist and say ``d.state``; what was done, or None."""
    env, model = d.key.environment, d.key.model
    where = f"{env}/{model} v{d.version} step {d.step} at {d.sha[:12]}"
    found = forge._call(
        f"look up the deployment of {where}",
        lambda: list(forge._repo.get_deployments(sha=d.sha, task=task(model), environment=env)),
    )
    made = not found
    if found:
        dep = min(found, key=lambda x: x.id)
    else:
        dep = forge._call(
            f"create the deployment of {where}",
            lambda: forge._repo.create_deployment(
                ref=d.sha,
                task=task(model),
                auto_merge=False,
                required_contexts=[],
                payload={"model": model, "version": d.version, "step": d.step, "percent": d.percent},
                environment=env,
                description=_short(d.description),
                transient_environment=False,
            ),
        )
    latest = None if made else _latest(forge, dep)
    if latest == d.state:
        return None
    _post(forge, dep, d.state, d.description, d.sha)
    said = f"{'created' if made else 'updated'} GitHub deployment {dep.id} of {where}: {d.state}"
    if d.state == "success":
        retired = _retire(forge, d, dep.id)
        if retired:
            said += f"; marked earlier deployment(s) {', '.join(map(str, retired))} inactive"
    return said


def _retire(forge: GitHubForge, d: Deployment, current: int) -> list[int]:
    """Mark the model's earlier active deployments in the environment inactive; their ids."""
    env, model = d.key.environment, d.key.model
    listed = forge._call(
        f"list the deployments of {model} in {env}",
        lambda: list(islice(forge._repo.get_deployments(task=task(model), environment=env), SCAN_LIMIT)),
    )
    retired = []
    # Newest first, as GitHub lists them. Older ones, and a duplicate of this very step that a
    # racing replica created (same commit, newer id), are retired; a later step is left be.
    for other in sorted(listed, key=lambda x: x.id, reverse=True):
        if other.id == current or (other.id > current and other.sha != d.sha):
            continue
        state = _latest(forge, other)
        if state == "inactive" and other.id < current:
            break  # retired when it was succeeded, and so was every one before it
        if state in ACTIVE:
            _post(forge, other, "inactive", f"{model} v{d.version} serves {env} now", d.sha)
            retired.append(other.id)
    return retired


def _latest(forge: GitHubForge, dep: Any) -> str | None:
    """The state of the deployment's newest status, or None when it has none."""
    statuses = forge._call(f"read the statuses of deployment {dep.id}", lambda: list(dep.get_statuses()))
    return max(statuses, key=lambda s: s.id).state if statuses else None


def _post(forge: GitHubForge, dep: Any, state: str, description: str, sha: str) -> None:
    forge._call(
        f"report deployment {dep.id} {state}",
        lambda: dep.create_status(
            state,
            # PyGithub names it target_url; GitHub shows it as the deployment's log: the commit
            # that carried the step, with its checks (the step's releasebot/rollout evidence).
            target_url=f"{_web(forge.base_url)}/{forge.full_name}/commit/{sha}",
            description=_short(description),
            auto_inactive=False,
        ),
    )


def _short(text: str) -> str:
    text = prbody.clean(text).replace("\n", " ")
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"


def _web(base_url: str) -> str:
    """GitHub's web address for its API address: github.com, or a GitHub Enterprise host."""
    if base_url.rstrip("/") == API:
        return "https://github.com"
    return base_url.rstrip("/").removesuffix("/api/v3")
