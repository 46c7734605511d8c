"""What the status page shows, as values: one :class:`Row` per (environment, model). Pure.

A row says what main serves, what the environment's MLflow alias wants, where the release walk
stands (phase, step n of K, canary percentage, the last analysis verdict), the open bot branches
(a pull request link in ``pull-request`` mode), the quality gate's verdict (the one the pass
evaluated, else the model version tag ``releasebot.quality.<environment>``), the drift status
of the served version, and the last reconcile of the key. :func:`rows` builds them from what one
pass observed and planned; :func:`board` lays rows kept from many passes out in catalog order
(environments first, then their models), saying "no reconcile yet" for keys no pass has covered.

Nothing here reads git, MLflow or the cluster (``releasebot status`` and the ``serve`` worker
observe, then call this), and nothing here renders (:mod:`bot.statuspage` does).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import quote

from bot.catalog import Catalog, Environment, Model
from bot.manifests import inferenceservice as isvc
from bot.plan import Key, Plan, RegistrySnapshot, RepoState, Walk, served
from bot.plan import gate as gates
from bot.plan.rollout import changes_in
from bot.plan.types import QUALITY_TAG, Gate

BRANCH_KINDS = ("release", "pin", "retrain")  # the kinds of branch one (environment, model) can have
FAILED_WALK = frozenset(("failed", "rolling back"))
# Outcomes of the last reconcile of a key. ``planned``: ``releasebot status`` looked and would
# change something (it writes nothing); ``skipped``: the pass could not write (its write-back mode
# is not configured where it ran); ``failed``: the pass raised before it finished.
OUTCOMES = ("changed", "planned", "skipped", "unchanged", "error", "failed")
NO_RECONCILE = "no reconcile yet"
_GITHUB = re.compile(r"github\.com[:/]([^/\s]+)/([^/\s]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class WalkStatus:
    phase: str
    version: str
    stable: str | None
    step: int | None  # 1-based, as the walk's pull requests count it ("2 of 4"); None once ended
    steps: int | None  # K: one change per canary step, and the promotion
    percent: int | None
    since: datetime | None
    next_look: datetime | None
    message: str


@dataclass(frozen=True)
class OpenBranch:
    kind: str
    branch: str
    version: str | None
    url: str | None  # the pull request, in pull-request mode on GitHub; None for a plain branch


@dataclass(frozen=True)
class Analysis:
    outcome: str  # passed, failed, error (Prometheus could not be asked: not a verdict on the model)
    start: datetime
    end: datetime
    detail: str


@dataclass(frozen=True)
class GateStatus:
    version: str  # the version the alias wants, which the gate judged
    passed: bool
    detail: str  # the tag's value: "passed" or "failed: <why>"


@dataclass(frozen=True)
class Reconciled:
    at: datetime
    outcome: str  # one of OUTCOMES
    message: str


@dataclass(frozen=True)
class Row:
    environment: str
    model: str
    alias: str
    serving: str | None = None
    wanted: str | None = None
    pinned: str | None = None
    blocked: tuple[str, ...] = ()
    walk: WalkStatus | None = None
    branches: tuple[OpenBranch, ...] = ()
    gate: GateStatus | None = None
    analysis: Analysis | None = None
    drift: str | None = None  # the drift job's status tag on the served version: "drift" or "ok"
    problem: str | None = None  # why the registry could not be read for this model
    reconciled: Reconciled | None = None
    observed_at: datetime | None = None  # None: no pass has looked at this key yet

    @property
    def attention(self) -> tuple[str, ...]:
        """What a person should look at, as stable names (the page highlights each)."""
        flags = []
        if (self.walk is not None and self.walk.phase in FAILED_WALK) or (
            self.analysis is not None and self.analysis.outcome == "failed"
        ):
            flags.append("canary_failed")
        if self.blocked:
            flags.append("blocked")
        if self.gate is not None and not self.gate.passed:
            flags.append("gate_failed")
        if self.drift == "drift":
            flags.append("drift")
        if self.problem is not None or (self.reconciled is not None and self.reconciled.outcome in ("error", "failed")):
            flags.append("reconcile_failed")
        return tuple(flags)


def pull_request_link(repo_url: str, branch: str) -> str | None:
    """A link GitHub resolves to the open pull request of ``branch``: its pull request list
    filtered to that head. GitHub allows one open pull request per head branch, so this is
    exactly that one, and it costs no API call per page or per pass (nor a token where the
    page is served). None when the repository is not on GitHub."""
    match = _GITHUB.search(repo_url)
    if match is None:
        return None
    query = quote(f"is:pr is:open head:{branch}", safe=":")
    return f"https://github.com/{match.group(1)}/{match.group(2)}/pulls?q={query}"


def _walk(env: Environment, w: Walk) -> WalkStatus:
    return WalkStatus(
        phase=w.phase,
        version=w.version,
        stable=w.stable,
        step=w.step + 1 if w.step is not None else None,
        steps=changes_in(env.canary) if env.canary is not None else None,
        percent=w.percent,
        since=w.since,
        next_look=w.next_look,
        message=w.message,
    )


def _analysis(w: Walk | None) -> Analysis | None:
    if w is None or w.verdict is None:
        return None
    v = w.verdict
    if v.error:
        return Analysis("error", v.start, v.end, v.error)
    failed = [m for m in v.measurements if not m.passed]
    detail = "; ".join(f"{m.name}: {m.threshold}" + (f" ({m.note})" if m.note else "") for m in failed)
    return Analysis("passed" if v.passed else "failed", v.start, v.end, detail)


def _outcome(p: Plan, env: str, model: str, wrote: bool, skipped: frozenset[str]) -> tuple[str, str]:
    """What the pass did, or would do, for one key, from its plan."""

    def mine(key: Key) -> bool:
        return key.environment == env and key.model == model

    errors = [n.message for n in p.notes if n.error and mine(n.key)]
    if errors:
        return "error", "; ".join(errors)
    changes = [c for c in p.changes if mine(c.key)]
    closes = [x for x in p.closes if mine(x.key)]
    said = [c.title for c in changes] + [f"close {x.branch.name}: {x.reason}" for x in closes]
    if changes and all(c.key.branch in skipped for c in changes) and not closes:
        return "skipped", f"{changes[0].write_back} write-back is not configured here: " + "; ".join(said)
    if said:
        return ("changed" if wrote else "planned"), "; ".join(said)
    notes = [n.message for n in p.notes if mine(n.key)]
    notes += [f"drift alert raised: {a.title}" for a in p.alerts if a.raised and mine(a.key)]
    return "unchanged", "; ".join(notes) or "nothing to do"


def _row(
    cat: Catalog,
    env: Environment,
    model: Model,
    state: RepoState,
    snapshot: RegistrySnapshot,
    walks: Mapping[tuple[str, str], Walk],
    judged: Mapping[tuple[str, str], Gate],
) -> Row:
    path = isvc.path_of(env.name, model.name)
    text = state.main_files.get(path)
    now = served(text, path) if text is not None else None
    registered = snapshot.models.get(model.registered_model)
    wanted = registered.alias(env.alias) if registered is not None else None
    versions = registered.versions if registered is not None else {}
    serving = now.version if now is not None else None
    gate = None
    tag = versions[wanted].tag.get(f"{QUALITY_TAG}.{env.name}") if wanted in versions else None
    this_pass = judged.get((env.name, model.name))
    if this_pass is not None:
        # The gate this pass evaluated: the verdict its tag will say once the pass has written it.
        gate = GateStatus(this_pass.version, this_pass.passed, gates.tag_value(this_pass))
    elif tag is not None and wanted is not None:
        # Fail-closed, as the gate is: only a verdict that says it passed counts as a pass.
        gate = GateStatus(wanted, tag.strip().startswith("passed"), tag)
    drift = versions[serving].drift_tag(env.name, "status") if serving in versions else None
    branches = []
    for kind in BRANCH_KINDS:
        name = Key(env.name, model.name, kind).branch
        found = state.branches.get(name)
        if found is not None:
            url = pull_request_link(cat.repo_url, name) if env.write_back == "pull-request" else None
            branches.append(OpenBranch(kind, name, found.version, url))
    walk = walks.get((env.name, model.name))
    return Row(
        environment=env.name,
        model=model.name,
        alias=env.alias,
        serving=serving,
        wanted=wanted,
        pinned=now.pinned if now is not None else None,
        blocked=tuple(sorted(now.blocked, key=_version_order)) if now is not None else (),
        walk=_walk(env, walk) if walk is not None else None,
        branches=tuple(branches),
        gate=gate,
        analysis=_analysis(walk),
        drift=drift,
        problem=snapshot.problems.get(model.registered_model),
    )


def _version_order(v: str) -> tuple[int, str]:
    return (int(v), v) if v.isdigit() else (1 << 62, v)


def rows(
    cat: Catalog,
    state: RepoState,
    snapshot: RegistrySnapshot,
    p: Plan,
    at: datetime,
    model: str | None = None,
    wrote: bool = False,
    skipped: Iterable[str] = (),
) -> tuple[Row, ...]:
    """The rows of every key of the catalog (or of ``model``'s keys) as one pass saw them at
    ``at``: ``state`` and ``snapshot`` are what it observed, ``p`` what it planned. ``wrote``: the
    pass carried its plan out (``serve``), else it only looked (``releasebot status``);
    ``skipped`` names the branches whose changes it could not write."""
    walks = {(w.key.environment, w.key.model): w for w in p.walks}
    judged = {(g.key.environment, g.key.model): g for g in p.gates}
    left_out = frozenset(skipped)
    found = []
    for env in cat.environments:
        for m in cat.models_in(env):
            if model is not None and m.name != model:
                continue
            row = _row(cat, env, m, state, snapshot, walks, judged)
            outcome, message = _outcome(p, env.name, m.name, wrote, left_out)
            found.append(replace(row, reconciled=Reconciled(at, outcome, message), observed_at=at))
    return tuple(found)


def failed(cat: Catalog, model: str, before: Iterable[Row], at: datetime, message: str) -> tuple[Row, ...]:
    """The rows of ``model`` after a pass that raised: what the last good pass saw, if any,
    with this failure as the last reconcile."""
    kept = {r.environment: r for r in before}
    out = []
    for env in cat.environments:
        for m in cat.models_in(env):
            if m.name == model:
                row = kept.get(env.name) or Row(env.name, m.name, env.alias)
                out.append(replace(row, reconciled=Reconciled(at, "failed", message)))
    return tuple(out)


def board(cat: Catalog, kept: Mapping[str, Iterable[Row]]) -> tuple[Row, ...]:
    """One row per (environment, model) of ``cat`` in catalog order, from rows kept per model
    (rows of models or environments no longer in the catalog are left out); a key that no pass
    has covered is a row with nothing observed."""
    by_key = {(r.environment, r.model): r for rs in kept.values() for r in rs}
    return tuple(
        by_key.get((env.name, m.name)) or Row(env.name, m.name, env.alias)
        for env in cat.environments
        for m in cat.models_in(env)
    )
