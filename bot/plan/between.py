"""Between environments: whether a new version may be proposed in an environment, and what the
plan says about it to GitHub and MLflow. Pure.

Before the release policy proposes a version an environment does not serve yet, two things are
asked, in this order:

1. the promotion order (:mod:`.promotion`): has the version finished in the environment before?
   If not, nothing is proposed; the plan shows a ``waiting`` walk saying for what, with the time
   to look again when the wait is a soak;
2. the quality gate (:mod:`.gate`): do its metrics and tags pass? A failing version gets no
   change (an open branch proposing it is closed) but a tracking issue with the evidence; a
   passing one carries the gate into its change, for the pull request's table and the
   ``releasebot/quality`` check. Either way the verdict becomes an MLflow version tag.

It also turns walks into GitHub deployments (:func:`deployments`). It does not decide what a
release edits; :mod:`.release` and :mod:`.rollout` do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bot.catalog import Catalog, Environment, Model
from bot.manifests import inferenceservice as isvc
from bot.plan import gate as gates
from bot.plan.lifecycle import Outcome, _moot
from bot.plan.promotion import prerequisite, settle, through
from bot.plan.types import (
    Alert,
    BotBranch,
    Deployment,
    Gate,
    Key,
    Look,
    Note,
    Plan,
    RegistrySnapshot,
    RepoState,
    Served,
    Version,
    VersionTag,
    Walk,
)


@dataclass
class Found:
    """What planning the release keys found besides changes: walks, and gate verdicts."""

    walks: list[Walk] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)


def admit(
    cat: Catalog,
    env: Environment,
    model: Model,
    registry: RegistrySnapshot,
    repo: RepoState,
    now: Served,
    version: Version,
    look: Look | None,
    branch: BotBranch | None,
    found: Found | None,
) -> tuple[Outcome | None, Gate | None]:
    """``(outcome, gate)``: an outcome when ``version`` may not be proposed in ``env`` (wait, or
    gate failed), else None and the passing gate (None when the environment has none)."""
    key = Key(env.name, model.name, "release")
    before = prerequisite(cat, env, model)
    if before is not None:
        passage = through(cat, before, model, version.version, repo, look)
        if not passage.ok:
            message = f"{env.name} {passage.message}"
            if found is not None:
                walk = Walk(
                    key, version.version, now.version, None, None, "waiting", message, next_look=passage.look_at
                )
                found.walks.append(walk)
            # An open release branch here proposes an earlier version the alias has moved past, or
            # this one too early: either way it is not what this environment should review now.
            reason = f"@{env.alias} wants v{version.version}, which has not finished in {before.name}"
            closed = _moot(key, branch, reason)
            return (closed[0], closed[1], [*closed[2], Note(key, message)]), None
    if env.gate is None:
        return None, None
    state = registry.models.get(model.registered_model)
    baseline_name = gates.baseline_of(env.gate, state, now.stable or now.version)
    if baseline_name == version.version:
        baseline_name = None if env.gate.against == "serving" else baseline_name
    baseline = state.versions.get(baseline_name) if (state is not None and baseline_name) else None
    verdict = gates.evaluate(env, key, version, baseline, baseline_name)
    if found is not None:
        found.gates.append(verdict)
    if verdict.passed:
        return None, verdict
    closed = _moot(key, branch, f"v{version.version} failed the quality gate: {verdict.summary}")
    note = Note(key, f"v{version.version} failed the quality gate of {env.name}: {verdict.summary}")
    return (closed[0], closed[1], [*closed[2], note]), verdict


def finish(plan: Plan, registry: RegistrySnapshot, cat: Catalog, found: Found, look: Look | None) -> Plan:
    """The gate verdicts as MLflow tags (where they differ from today's) and tracking issues;
    and the walks as GitHub deployments."""
    tags, alerts = [], list(plan.alerts)
    written = {c.key for c in plan.changes}
    for g in found.gates:
        model = cat.model(g.key.model)
        state = registry.models.get(model.registered_model)
        version = state.versions.get(g.version) if state is not None else None
        name, value = gates.tag_name(g.key.environment), gates.tag_value(g)
        if version is not None and version.tag.get(name) != value[:5000]:
            tags.append(VersionTag(model.registered_model, g.version, name, value[:5000]))
        issue = Key(g.key.environment, g.key.model, "quality")
        if not g.passed:
            alerts.append(_issue(issue, g))
        elif g.key in written:
            # A version that passes resolves the issue an earlier one raised; asked only when a
            # release is written, so a pass that changes nothing asks GitHub nothing.
            alerts.append(Alert(issue, False, f"Quality gate: {g.key.model} in {g.key.environment}", "", g.version))
    return replace(
        plan,
        tags=tuple(tags),
        alerts=tuple(alerts),
        gates=tuple(found.gates),
        deployments=(*deployments(cat, plan, look), *found.deployments),
    )


def _issue(key: Key, g: Gate) -> Alert:
    title = f"Quality gate: {key.model} v{g.version} is not released to {key.environment}"
    body = (
        f"**{key.model}** v{g.version} failed the quality gate of **{key.environment}**: {g.summary}.\n\n"
        f"{gates.table(g)}\n\n"
        "No release pull request is opened for it. A new version that passes resolves this issue; "
        f"the verdict is also the MLflow model version tag `{gates.tag_name(key.environment)}`."
    )
    return Alert(key, True, title, body, f"{g.version}:{g.summary}", ("releasebot", "quality-gate"))


def deployments(cat: Catalog, plan: Plan, look: Look | None) -> tuple[Deployment, ...]:
    """The walk steps a GitHub deployment reports: where the cluster is observed, the commit of
    each step under way (in progress, then success or failure)."""
    if look is None or look.cluster is None:
        return ()
    out = []
    for w in plan.walks:
        if w.sha is None or w.step is None:
            continue
        env = cat.environment(w.key.environment)
        assert env.canary is not None
        total = len(env.canary.steps) + 1
        state = "in_progress"
        if w.phase in ("failed", "rolling back"):
            state = "failure"
        elif w.phase in ("stepping", "promoting"):
            state = "success"
        step = f"{w.step + 1}/{total}"
        out.append(
            Deployment(w.key, w.sha, w.version, step, w.percent, state, f"{w.version} {step}: {w.message}"[:140])
        )
    return tuple(out)


def promoted(
    cat: Catalog, env: Environment, model: Model, repo: RepoState, look: Look | None, now: Served
) -> Deployment | None:
    """The promotion of a walk that ended on main, as a deployment: in progress until Argo CD
    runs it Healthy for a soak, then success. None for anything else."""
    path = isvc.path_of(env.name, model.name)
    step = repo.landed_steps.get(path)
    landed = repo.landed.get(path)
    if env.canary is None or now.step is not None or now.version is None or landed is None or look is None:
        return None
    total = len(env.canary.steps) + 1
    if step != f"{total}/{total}" or look.cluster is None or landed[0] in look.settled:
        return None
    done = settle(env, model, repo, look)
    state = "success" if done.settled else "in_progress"
    key = Key(env.name, model.name, "release")
    return Deployment(key, landed[0], now.version, step, 100, state, f"{now.version} promoted: {done.message}"[:140])
