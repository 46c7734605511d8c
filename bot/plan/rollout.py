"""The rollout policy: a release walks through canary steps to promotion, or back. Pure.

For an environment with ``canary`` steps, a new version is not released in one change. The walk,
level-triggered like everything else, decides from Git (the rollout-owned fields of the
InferenceService, :mod:`bot.manifests.rollout`), the cluster and the clock (:class:`Look`)::

    proposed ─merge─▶ syncing ─▶ soaking ─▶ analysing ─pass─▶ next step … ─▶ promoted
                         │ deadline / Degraded        │ fail
                         └───────────▶ rolled back + version blocked (sticky)

* *Synced*: Argo CD deployed the main commit that last changed the manifest (it is an ancestor
  of the Application's sync revision), Argo CD finds the InferenceService Healthy, and KServe
  reports the step's traffic split Ready for the new version.
* *Soak*: the step serves ``interval`` from the time Argo CD deployed it (its history says
  when); then the analysis of exactly that window decides. The window is fixed by Git and the
  cluster, so asking again after a restart gives the same verdict: no step repeats or skips.
* Each step, the promotion and a rollback are changes of the release key, with the evidence of
  the step before; waiting is a ``next_look`` time for the worker, never a sleep.

It does not talk to the cluster or Prometheus: :func:`analysis_wants` says which windows to
judge, and the verdicts come back in the :class:`Look`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from bot import prbody, yamlio
from bot.catalog import Canary, Catalog, Environment, Model
from bot.manifests import inferenceservice as isvc
from bot.manifests import rollout
from bot.manifests.ownership import Owned, apply_owned, get
from bot.plan import gate as gates
from bot.plan.facts import plain
from bot.plan.lifecycle import Outcome, _held, _wanted
from bot.plan.promotion import POLL, deployed_at
from bot.plan.release import _apply_release, drift_follow_edit
from bot.plan.types import (
    AnalysisRequest,
    Change,
    FileEdit,
    Gate,
    Key,
    Look,
    Note,
    RegistrySnapshot,
    RepoState,
    Served,
    Verdict,
    Version,
    Walk,
    fingerprint,
)

FAILED_LOADS = frozenset(("BlockedByFailedLoad", "InvalidSpec", "FailedToLoad"))


def percent_of(canary: Canary, step: int) -> int:
    return canary.steps[min(step, len(canary.steps) - 1)]


def changes_in(canary: Canary) -> int:
    """How many changes a walk is: one per step, and the promotion."""
    return len(canary.steps) + 1


# --- where a walk stands ----------------------------------------------------------------------


class _Position:
    """A walk under way on main, as the cluster and the clock see it."""

    def __init__(self, phase: str, message: str, since: datetime | None = None, look_at: datetime | None = None):
        self.phase, self.message, self.since, self.look_at = phase, message, since, look_at
        self.request: AnalysisRequest | None = None


def _position(
    cat: Catalog, env: Environment, model: Model, now: Served, repo: RepoState, look: Look | None
) -> _Position:
    assert env.canary is not None and now.step is not None and now.version is not None
    key = Key(env.name, model.name, "release")
    path = isvc.path_of(env.name, model.name)
    landed = repo.landed.get(path)
    if look is None or look.cluster is None or landed is None:
        return _Position("unobserved", "the cluster is not observed here; the walk moves where releasebot can read it")
    cluster, clock = look.cluster, look.now
    if env.name in cluster.problems:
        return _Position("unobserved", cluster.problems[env.name], look_at=clock + POLL)
    sha, landed_at = landed
    deadline = landed_at + timedelta(seconds=env.canary.deadline)
    app = cluster.applications.get(env.name)
    svc = cluster.services.get((env.name, model.name))
    percent = percent_of(env.canary, now.step)

    deployed = deployed_at(cluster, app, sha, landed_at)
    health = app.resources.get(("InferenceService", env.namespace, model.name)) if app is not None else None
    failed = None
    if health == "Degraded":
        failed = f"Argo CD finds the InferenceService Degraded{_why(svc)}"
    elif svc is not None and (svc.failure or svc.transition_status in FAILED_LOADS):
        failed = f"KServe could not load the model: {svc.failure or svc.transition_status}"
    if failed and deployed is not None:
        return _Position("failed", failed, since=deployed)

    waiting: list[str] = []
    if app is None:
        waiting.append(f"Argo CD Application for {env.name} not found")
    elif deployed is None:
        waiting.append(f"Argo CD has not deployed {sha[:12]} (sync revision {(app.sync_revision or 'none')[:12]})")
    if svc is None:
        waiting.append("the InferenceService is not in the cluster")
    else:
        if not svc.ready:
            waiting.append(f"the InferenceService is not Ready{_why(svc)}")
        if svc.generation is not None and (svc.observed_generation or 0) < svc.generation:
            waiting.append("KServe has not observed the latest spec yet")
        if not _split_ready(cat, svc, now, percent):
            waiting.append(f"KServe does not report {percent}% on v{now.version} yet")
    if health not in (None, "Healthy"):
        waiting.append(f"Argo CD health is {health}")
    if waiting:
        if clock >= deadline:
            return _Position(
                "failed", f"not synced and Healthy within {_span(env.canary.deadline)}: " + "; ".join(waiting)
            )
        return _Position("syncing", "; ".join(waiting), look_at=min(deadline, clock + POLL))

    assert deployed is not None and svc is not None
    soak_end = deployed + timedelta(seconds=env.canary.interval)
    position = _Position("soaking", f"{percent}% since {deployed:%Y-%m-%d %H:%M:%SZ}", since=deployed)
    if clock < soak_end:
        # Keep an eye on health during the soak: a canary that breaks is rolled back early.
        position.look_at = min(soak_end, clock + POLL)
        return position
    canary_rev, stable_rev = _revisions(cat, svc, now, model, path, repo.main_files.get(path))
    position.phase, position.message = "analysing", f"soaked {_span(env.canary.interval)} at {percent}%"
    position.request = AnalysisRequest(
        key=key,
        step=now.step,
        namespace=env.namespace,
        model=model.name,
        deployment_mode=cat.kserve_mode,
        canary_revision=canary_rev,
        stable_revision=stable_rev,
        start=deployed,
        end=soak_end,
    )
    return position


def _why(svc: object) -> str:
    reason = getattr(svc, "reason", None)
    return f" ({reason})" if reason else ""


def _span(seconds: int) -> str:
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _split_ready(cat: Catalog, svc: object, now: Served, percent: int) -> bool:
    """KServe reports the step's split: the new revision takes ``percent``, and is ready."""
    if cat.standard_mode:
        name = rollout.canary_name(now.version or "")
        return any(c.name == name and c.ready and c.traffic_percent == percent for c in svc.canaries)  # type: ignore[attr-defined]
    return any(t.latest and t.percent == percent for t in svc.traffic)  # type: ignore[attr-defined]


def _revisions(
    cat: Catalog, svc: object, now: Served, model: Model, path: str, text: str | None
) -> tuple[str, str | None]:
    """The names that tell canary and stable apart in metrics: Knative revisions, or in
    Standard mode the two Deployments, ``<isvc>-predictor`` suffixed with the predictor's name
    when it has one (KServe 0.20 names a canary's Deployment from its ``predictor.name``)."""
    if cat.standard_mode:
        doc = plain(text, path) if text is not None else {}
        stable_name = ((doc.get("spec") or {}).get("predictor") or {}).get("name")
        base = f"{model.name}-predictor"
        stable = f"{base}-{stable_name}" if stable_name else base
        return f"{base}-{rollout.canary_name(now.version or '')}", stable
    latest = next((t.revision for t in svc.traffic if t.latest and t.revision), None)  # type: ignore[attr-defined]
    prev = next((t.revision for t in svc.traffic if not t.latest and t.revision), None)  # type: ignore[attr-defined]
    canary = latest or svc.latest_ready_revision or f"{model.name}-predictor"  # type: ignore[attr-defined]
    return canary, prev or svc.latest_rolledout_revision  # type: ignore[attr-defined]


def under_way(env: Environment, now: Served) -> bool:
    """Whether main holds a walk under way for this manifest."""
    return env.canary is not None and now.step is not None and now.version is not None


def analysis_wants(
    cat: Catalog, repo: RepoState, look: Look, keys: list[tuple[Environment, Model, Served]]
) -> list[AnalysisRequest]:
    """The soaks that ended and need a verdict, for the walks under way among ``keys``."""
    wanted = []
    for env, model, now in keys:
        if under_way(env, now):
            request = _position(cat, env, model, now, repo, look).request
            if request is not None:
                wanted.append(request)
    return wanted


# --- the changes a walk makes -------------------------------------------------------------------


def _edit(path: str, text: str, apply) -> FileEdit | None:
    doc = yamlio.load(text, path)
    changed = apply(doc)
    if not changed:
        return None
    return FileEdit(path, text, yamlio.dump(doc, yamlio.guess_style(text)), tuple(changed))


def _version_annotations(doc: object, version: Version) -> list[str]:
    """Only the version and run annotations: in Standard mode the stable predictor keeps serving
    what it served, and the version moves with the canary."""
    annotations = {isvc.VERSION_ANNOTATION: version.version}
    if version.run_id:
        annotations[isvc.RUN_ANNOTATION] = version.run_id
    desired = yamlio.quote_ambiguous({"metadata": {"annotations": annotations}})
    return apply_owned(doc, desired, isvc.RELEASE_ANNOTATIONS)


def _start_edit(cat: Catalog, env: Environment, path: str, text: str, version: Version, stable: str) -> FileEdit | None:
    assert env.canary is not None
    percent = env.canary.steps[0]

    def apply(doc: object) -> list[str]:
        if cat.standard_mode:
            changed = _version_annotations(doc, version)
            return changed + rollout.set_walk(doc, True, 0, percent, stable, (version.version, version.storage_uri))
        return _apply_release(doc, version) + rollout.set_walk(doc, False, 0, percent, stable)

    return _edit(path, text, apply)


def _end_edit(cat: Catalog, path: str, text: str, back_to: Version | None, block: str | None) -> FileEdit | None:
    """End a walk on main without promoting: serve ``back_to`` again (blocking ``block``)."""

    def apply(doc: object) -> list[str]:
        changed = rollout.set_walk(doc, cat.standard_mode, None, None, None)
        if back_to is not None and cat.standard_mode:
            changed += _version_annotations(doc, back_to)
        elif back_to is not None:
            changed += _apply_release(doc, back_to)
        if block:
            blocked = isvc.blocked_in(get(doc, ("metadata", "annotations")) or {}) | {block}
            desired = {"metadata": {"annotations": {isvc.BLOCKED_ANNOTATION: isvc.blocked_text(blocked)}}}
            changed += apply_owned(
                doc, yamlio.quote_ambiguous(desired), [Owned(("metadata", "annotations", isvc.BLOCKED_ANNOTATION))]
            )
        return changed

    return _edit(path, text, apply)


def _trailers(model: Model, env: Environment, version: str, run: str | None, step: str) -> str:
    return (
        f"Releasebot-Model: {model.name}\n"
        f"Releasebot-Version: {version}\n"
        f"Releasebot-Run: {run or 'none'}\n"
        f"Releasebot-Environment: {env.name}\n"
        f"Releasebot-Step: {step}\n"
    )


def plan_walk(
    cat: Catalog,
    env: Environment,
    model: Model,
    registry: RegistrySnapshot,
    repo: RepoState,
    now: Served,
    wanted: Version,
    reason: str,
    look: Look | None,
    gate: Gate | None = None,
) -> tuple[Outcome, Walk] | None:
    """The next change of a walk for (``env``, ``model``), or None when no walk applies (the
    environment has no canary, or this is the first release: there is nothing to compare with)."""
    canary = env.canary
    if canary is None or now.version is None or (not under_way(env, now) and wanted.version == now.version):
        return None
    key = Key(env.name, model.name, "release")
    path = isvc.path_of(env.name, model.name)
    text = repo.main_files[path]
    branch = repo.branches.get(key.branch)
    state = registry.models.get(model.registered_model)
    total = changes_in(canary)

    def propose(edits: tuple[FileEdit, ...], title: str, message: str, body: str, version: Version, **extra) -> Outcome:
        fp = fingerprint(key.branch, title, *(e.new for e in edits))
        held, notes = _held(key, branch, fp)
        if notes:  # a person's branch now: said, and left alone
            return [], [], notes
        change = Change(
            key=key,
            write_back=env.write_back,
            edits=edits,
            version=version.version,
            previous=now.version,
            commit_message=message,
            title=title,
            body=prbody.truncate(body, prbody.BODY_LIMIT - 80) + "\n" + prbody.MARKER.format(fp=fp),
            fingerprint=fp,
            labels=("releasebot", "rollout", *env.labels),
            **extra,
        )
        return _wanted(change, branch, held)

    if not under_way(env, now) or wanted.version != now.version:
        # A new version starts a walk (or restarts one that another version had under way).
        stable = now.stable if under_way(env, now) else now.version
        assert stable is not None
        if wanted.version == stable:
            back = state.versions.get(stable) if state else None
            edit = _end_edit(cat, path, text, back, None)
            if edit is None:
                return ([], [], []), _walk(key, now, None, "ended", "main serves the stable version")
            title = f"End the canary of {model.name} v{now.version} in {env.name}: back to v{stable}"
            message = f"{title}\n\n{reason}.\n\n" + _trailers(model, env, stable, back.run_id if back else None, "end")
            body = (
                f"{reason}, which is the stable version: the canary of v{now.version} ends and v{stable} serves 100%."
            )
            outcome = propose((edit,), title, message, body, back or wanted)
            return outcome, _walk(key, now, None, "ending", title)
        edit = _start_edit(cat, env, path, text, wanted, stable)
        if edit is None:
            return None
        p = canary.steps[0]
        title = f"Release {model.name} v{wanted.version} to {env.name}: canary {p}% (1 of {total})"
        message = f"{title}\n\n{reason} (was {stable}).\n\n" + _trailers(
            model, env, wanted.version, wanted.run_id, f"1/{total}"
        )
        previous = state.versions.get(stable) if state else None
        body = prbody.release_body(cat, env, model, wanted, previous, stable, (edit,), "", None, key.branch)
        body = body.removesuffix("\n" + prbody.MARKER.format(fp=""))
        body += "\n\n" + prbody.walk_plan(canary, cat.kserve_mode)
        if gate is not None:
            body += f"\n\n### Quality gate\n\n{gate.summary}.\n\n{gates.table(gate)}"
        outcome = propose((edit,), title, message, body, wanted, gate=gate)
        return outcome, Walk(key, wanted.version, stable, 0, p, "proposed", title)

    # A walk under way, for the version wanted: where does it stand?
    assert now.step is not None
    position = _position(cat, env, model, now, repo, look)
    p = percent_of(canary, now.step)
    stable = now.stable
    verdict = look.verdicts.get(position.request) if (look is not None and position.request is not None) else None
    if position.request is not None and verdict is None:
        walk = _walk(key, now, p, "analysing", "waiting for the analysis of the soak", position.since)
        return ([], [], []), _looks(walk, look)
    if verdict is not None and verdict.error:
        walk = _walk(key, now, p, "analysing", f"analysis could not run: {verdict.error}", position.since, verdict)
        return ([], [], []), _looks(walk, look)
    if position.phase in ("syncing", "soaking", "unobserved"):
        walk = _walk(key, now, p, position.phase, position.message, position.since, None, position.look_at)
        # Waiting proposes nothing and withdraws nothing: a step proposed before stays open.
        return ([], [], []), walk

    landed = repo.landed.get(path)
    judged_sha = landed[0] if landed else None
    if position.phase == "failed" or (verdict is not None and not verdict.passed):
        why = position.message if position.phase == "failed" else f"analysis failed at {p}%"
        back = state.versions.get(stable) if (state and stable) else None
        if back is None and not cat.standard_mode:
            note = Note(
                key,
                f"v{now.version} failed ({why}) but the stable v{stable} is not in MLflow; roll back by hand",
                error=True,
            )
            return ([], [], [note]), _walk(key, now, p, "failed", why, position.since, verdict)
        edit = _end_edit(cat, path, text, back, now.version)
        assert edit is not None
        title = f"Roll back {model.name} in {env.name} to v{stable}: canary v{now.version} failed at {p}%"
        message = (
            f"{title}\n\n{why}. Version {now.version} is blocked until "
            f"`releasebot unblock {model.name} --env {env.name}`.\n\n"
            + _trailers(model, env, stable or "?", back.run_id if back else None, "rollback")
        )
        body = prbody.walk_step_body(f"Rolls **{model.name}** in **{env.name}** back to v{stable}: {why}.", verdict)
        body += f"\n\nVersion {now.version} is blocked: `releasebot unblock {model.name} --env {env.name}` clears it."
        outcome = propose((edit,), title, message, body, back or wanted, verdict=verdict, verdict_sha=judged_sha)
        return outcome, _walk(key, now, p, "rolling back", why, position.since, verdict)

    assert verdict is not None and verdict.passed
    if now.step + 1 < len(canary.steps):
        nxt = canary.steps[now.step + 1]
        edit = _edit(path, text, lambda doc: rollout.set_walk(doc, cat.standard_mode, now.step + 1, nxt, stable))
        assert edit is not None
        title = f"Step {model.name} v{now.version} in {env.name} to {nxt}% ({now.step + 2} of {total})"
        head = f"{model.name} v{now.version} passed {p}% in {env.name}; this step sends it {nxt}% of the traffic."
        phase = "stepping"
        edits: tuple[FileEdit, ...] = (edit,)
    else:
        if cat.standard_mode:
            edit = _edit(path, text, rollout.promote_standard)
        else:
            edit = _edit(path, text, lambda doc: rollout.set_walk(doc, False, None, None, None))
        assert edit is not None
        follow = drift_follow_edit(repo, env.name, model.name, now.version)
        edits = (edit,) if follow is None else (edit, follow)
        title = f"Promote {model.name} v{now.version} in {env.name} to 100% ({total} of {total})"
        head = f"{model.name} v{now.version} passed every canary step in {env.name}; this promotes it."
        phase = "promoting"
    message = f"{title}\n\n{head}\n\n" + _trailers(model, env, now.version, None, f"{now.step + 2}/{total}")
    body = prbody.walk_step_body(head, verdict)
    version = state.versions.get(now.version) if state else None
    outcome = propose(edits, title, message, body, version or wanted, verdict=verdict, verdict_sha=judged_sha)
    return outcome, _walk(key, now, p, phase, title, position.since, verdict)


def _walk(
    key: Key,
    now: Served,
    percent: int | None,
    phase: str,
    message: str,
    since: datetime | None = None,
    verdict: Verdict | None = None,
    next_look: datetime | None = None,
) -> Walk:
    return Walk(key, now.version or "?", now.stable, now.step, percent, phase, message, since, next_look, verdict)


def _looks(walk: Walk, look: Look | None) -> Walk:
    """A walk waiting on the analysis looks again after a poll interval."""
    if look is None:
        return walk
    return replace(walk, next_look=look.now + POLL)
