"""Promotion order: a version reaches an environment only after it finished in the one before. Pure.

The catalog lists environments in promotion order. For an environment that does not say
``promotion: independent``, its *prerequisite* is the nearest environment before it in the catalog
that serves the same model. A new version is proposed there only when it is *through* the
prerequisite:

* the prerequisite serves it on main at 100% (no walk under way), and — where the prerequisite
  walks canaries — Argo CD deployed that commit, finds the InferenceService Healthy, and it has
  served for one canary ``interval`` since (*settled*); or
* it reached 100% there before (a release or a promotion in main's history) and the
  prerequisite has moved on since; unless the prerequisite blocked it.

Pins and rollbacks are a person's decision and do not wait; neither does a walk already under way.
It reads nothing: :func:`wants` says which facts a pass must gather (histories, and which commits
of which environments the cluster must be asked about), and they come back in :class:`RepoState`
and :class:`Look`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.catalog import Catalog, Environment, Model
from bot.manifests import inferenceservice as isvc
from bot.plan.facts import served
from bot.plan.types import AppStatus, ClusterSnapshot, Look, RegistrySnapshot, RepoState

POLL = timedelta(seconds=30)  # how often a wait on the cluster looks again


def deployed_at(cluster: ClusterSnapshot, app: AppStatus | None, sha: str, landed_at: datetime) -> datetime | None:
    """When Argo CD deployed main commit ``sha`` (the earliest history entry containing it), or
    None while its sync revision does not contain it yet."""
    if app is None or not app.sync_revision or not cluster.ancestry.get((sha, app.sync_revision)):
        return None
    return next((at for rev, at in app.history if cluster.ancestry.get((sha, rev))), landed_at)


def prerequisite(cat: Catalog, env: Environment, model: Model) -> Environment | None:
    """The environment ``env`` waits on for ``model``, or None (first, or independent)."""
    if env.promotion == "independent":
        return None
    before = cat.environments[: [e.name for e in cat.environments].index(env.name)]
    for e in reversed(before):
        if model.environments is None or e.name in model.environments:
            return e
    return None


@dataclass(frozen=True)
class Settle:
    """Whether the commit that last changed a manifest on main is deployed, Healthy and soaked."""

    settled: bool
    message: str
    sha: str | None = None
    since: datetime | None = None  # when Argo CD deployed it
    look_at: datetime | None = None


def settle(env: Environment, model: Model, repo: RepoState, look: Look | None) -> Settle:
    path = isvc.path_of(env.name, model.name)
    landed = repo.landed.get(path)
    if landed is None:
        return Settle(False, f"when {path} landed on main is not known here")
    sha, _ = landed
    if look is not None and sha in look.settled:
        return Settle(True, f"{env.name} runs {sha[:12]}", sha)
    if look is None or look.cluster is None:
        return Settle(
            False, f"the cluster is not observed here, so {env.name}'s rollout of {sha[:12]} is not seen", sha
        )
    cluster, clock = look.cluster, look.now
    if env.name in cluster.problems:
        return Settle(False, cluster.problems[env.name], sha, look_at=clock + POLL)
    app = cluster.applications.get(env.name)
    if app is None:
        return Settle(False, f"Argo CD Application for {env.name} not found", sha, look_at=clock + POLL)
    deployed = deployed_at(cluster, app, sha, landed[1])
    if deployed is None:
        return Settle(False, f"Argo CD has not deployed {sha[:12]} to {env.name} yet", sha, look_at=clock + POLL)
    health = app.resources.get(("InferenceService", env.namespace, model.name))
    if health != "Healthy":
        return Settle(
            False, f"{model.name} in {env.name} is {health or 'not reported'} by Argo CD", sha, deployed, clock + POLL
        )
    soak = timedelta(seconds=env.canary.interval if env.canary is not None else 0)
    if clock < deployed + soak:
        end = deployed + soak
        return Settle(False, f"soaking in {env.name} until {end:%Y-%m-%d %H:%M:%SZ}", sha, deployed, end)
    return Settle(True, f"{env.name} runs {sha[:12]} since {deployed:%Y-%m-%d %H:%M:%SZ}", sha, deployed)


@dataclass(frozen=True)
class Through:
    ok: bool
    message: str  # what the environment waits for, said for people
    look_at: datetime | None = None


def through(
    cat: Catalog, before: Environment, model: Model, version: str, repo: RepoState, look: Look | None
) -> Through:
    """Whether ``version`` of ``model`` finished in ``before`` (see the module docstring)."""
    path = isvc.path_of(before.name, model.name)
    text = repo.main_files.get(path)
    if text is None:
        return Through(False, f"waits for v{version} in {before.name}, which has no {path} on main")
    there = served(text, path)
    if version in there.blocked:
        return Through(False, f"v{version} is blocked in {before.name}; it goes no further")
    if there.version == version and there.step is None:
        if before.canary is None:
            return Through(True, f"v{version} serves in {before.name}")
        done = settle(before, model, repo, look)
        if done.settled:
            return Through(True, f"v{version} finished in {before.name}")
        return Through(False, f"waits for v{version} to settle in {before.name}: {done.message}", done.look_at)
    if there.version == version:  # a walk under way there
        step = f"step {there.step + 1} of {len(before.canary.steps) + 1}" if before.canary else "a walk"
        return Through(False, f"waits for v{version} to finish its walk in {before.name} ({step}, {there.canary}%)")
    if repo.reached.get((before.name, model.name, version)):
        return Through(True, f"v{version} reached {before.name} before (it serves v{there.version} now)")
    serving = f"v{there.version}" if there.version else "nothing"
    return Through(False, f"waits for v{version} to be promoted in {before.name} (it serves {serving})")


def wanted_version(env: Environment, model: Model, registry: RegistrySnapshot) -> str | None:
    state = registry.models.get(model.registered_model)
    return state.alias(env.alias) if state is not None else None


@dataclass(frozen=True)
class Wants:
    """What a pass must gather for the promotion order of the keys it plans."""

    settle: tuple[tuple[Environment, Model], ...]  # prerequisites serving the version: watch their rollout
    history: tuple[tuple[Environment, Model, str], ...]  # (prerequisite, model, version): did it reach there?


def wants(cat: Catalog, registry: RegistrySnapshot, repo: RepoState, keys: list[tuple[Environment, Model]]) -> Wants:
    settles: dict[tuple[str, str], tuple[Environment, Model]] = {}
    history: dict[tuple[str, str, str], tuple[Environment, Model, str]] = {}
    for env, model in keys:
        before = prerequisite(cat, env, model)
        version = wanted_version(env, model, registry)
        path = isvc.path_of(env.name, model.name)
        text = repo.main_files.get(path)
        if before is None or version is None or text is None:
            continue
        here = served(text, path)
        if version in (here.version, here.stable) or here.pinned:
            continue  # nothing new to propose, or a person's pin: no wait
        there_path = isvc.path_of(before.name, model.name)
        there_text = repo.main_files.get(there_path)
        if there_text is None:
            continue
        there = served(there_text, there_path)
        if there.version == version and there.step is None:
            if before.canary is not None:
                settles[(before.name, model.name)] = (before, model)
        elif there.version != version:
            history[(before.name, model.name, version)] = (before, model, version)
    return Wants(tuple(settles.values()), tuple(history.values()))
