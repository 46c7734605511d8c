"""The planner's values: what observation hands in and what a plan hands out. No behaviour.

Two groups of frozen dataclasses live here, so that the pure core owns every type that crosses
its edge and no adapter is imported to name one:

* inputs: :class:`RepoState` (files on main, open bot branches) and the registry snapshot
  (:class:`RegistrySnapshot` of :class:`ModelState` and :class:`Version`, which
  :mod:`bot.registry` fills from MLflow);
* outputs: :class:`Change`, :class:`Close`, :class:`Note`, :class:`Alert`, gathered in a
  :class:`Plan`, each keyed by a :class:`Key` that names exactly one branch.

Nothing here reads, writes or decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Kind = Literal["release", "pin", "capacity", "retrain", "alert", "quality"]
KINDS: frozenset[str] = frozenset(("release", "pin", "capacity", "retrain"))  # the kinds that have branches
CAPACITY_KEY_MODEL = "karpenter"  # capacity changes are keyed (environment, "karpenter", "capacity")
DRIFT_TAG = "releasebot.drift"  # model version tags: releasebot.drift.<environment>.<status|share|run_id|checked_at>
# Model version tag: releasebot.quality.<environment> = "passed" or "failed: <why>" (the quality gate).
QUALITY_TAG = "releasebot.quality"
TRAILERS = ("Releasebot-Model", "Releasebot-Version", "Releasebot-Run", "Releasebot-Environment")


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


# --- the registry, as observed ---------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    name: str
    digest: str
    source: str
    source_type: str


@dataclass(frozen=True)
class Version:
    registered_model: str
    version: str
    storage_uri: str
    run_id: str | None
    status: str
    experiment_id: str | None = None
    metrics: tuple[tuple[str, float], ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    run_tags: tuple[tuple[str, str], ...] = ()
    datasets: tuple[Dataset, ...] = ()
    # The drift job's result document, per environment whose drift tags say "drift" (bot.drift).
    drift: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)

    @property
    def tag(self) -> dict[str, str]:
        return dict(self.tags)

    def drift_tag(self, environment: str, name: str) -> str | None:
        """The drift job's verdict for this version in ``environment``: tags are per environment,
        so two environments serving one version keep separate verdicts."""
        return self.tag.get(f"{DRIFT_TAG}.{environment}.{name}")


@dataclass(frozen=True)
class ModelState:
    registered_model: str
    aliases: tuple[tuple[str, str], ...]  # alias -> version
    versions: dict[str, Version] = field(default_factory=dict)

    def alias(self, name: str) -> str | None:
        return dict(self.aliases).get(name)


@dataclass(frozen=True)
class RegistrySnapshot:
    tracking_uri: str
    models: dict[str, ModelState]
    # Registered models that could not be read, with why: their keys fail, the others go on.
    problems: dict[str, str] = field(default_factory=dict)


# --- the environments repository, as observed ------------------------------------------------


@dataclass(frozen=True, order=True)
class Key:
    environment: str
    model: str
    kind: str

    @property
    def branch(self) -> str:
        return f"releasebot/{self.environment}/{self.model}/{self.kind}"


@dataclass(frozen=True)
class BotBranch:
    """An open ``releasebot/...`` branch as the repo adapter found it."""

    name: str
    head: str
    version: str | None  # the Releasebot-Version trailer of its head commit
    fingerprint: str | None
    human_commits: tuple[str, ...] = ()  # shas of commits on it not made by releasebot
    applied: bool = False  # its files are all on main already (merged, or made there another way)


@dataclass(frozen=True)
class RepoState:
    """Main as files, and the open bot branches.

    ``main_files`` maps a path to its text on main. It may be a plain dict or a read-only view
    of one commit that reads a file when the planner first asks for it (:class:`bot.repo.Tree`):
    either way it is one immutable commit, so the plan stays a function of its arguments, and a
    pass reads only the files its keys need. ``branches`` holds at least the branches of the
    keys being planned.
    """

    main_files: Mapping[str, str]
    branches: Mapping[str, BotBranch] = field(default_factory=dict)
    # For the manifests of walks under way: the first-parent commit on main that last changed
    # each one, and when it landed there (merged or committed). A step is live once Argo CD
    # deployed that commit.
    landed: Mapping[str, tuple[str, datetime]] = field(default_factory=dict)
    # The Releasebot-Step trailer of each landed commit above ("2/4", "4/4", "rollback"), when it has one.
    landed_steps: Mapping[str, str] = field(default_factory=dict)
    # Promotion order: whether (environment, model, version) ever reached 100% there on main
    # (a release or a walk's promotion in its history), for the versions a later one waits on.
    reached: Mapping[tuple[str, str, str], bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Served:
    """What a manifest on main serves, the pin Git holds for it, and its canary, if one runs."""

    version: str | None
    storage_uri: str | None
    pinned: str | None
    blocked: frozenset[str]
    canary: int | None = None
    step: int | None = None  # the canary walk's step on main, if one is under way
    stable: str | None = None  # the version serving beside the walk's canary


# --- what a plan hands out -------------------------------------------------------------------


@dataclass(frozen=True)
class FileEdit:
    path: str
    old: str
    new: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    key: Key
    write_back: str
    edits: tuple[FileEdit, ...]
    version: str
    previous: str | None
    commit_message: str
    title: str
    body: str
    fingerprint: str
    supersedes: str | None = None  # the version an open branch proposed before
    labels: tuple[str, ...] = ()
    # A walk step's evidence: the analysis of the step before, and the main commit it judged,
    # reported as the ``releasebot/rollout`` check on that commit.
    verdict: Verdict | None = None
    verdict_sha: str | None = None
    # The head of the open bot branch that already says exactly this (same fingerprint): nothing
    # to push. The plan still hands the change out, in ``Plan.held``, because a pass that died
    # between pushing the branch and proposing it left a branch nobody was asked to review;
    # reconcile proposes such a head again unless it remembers proposing it.
    held: str | None = None
    # Between environments: GitHub merges it once branch protection allows (the catalog's
    # ``autoMerge``), the catalog's reviewers are asked, and the quality gate's evidence.
    auto_merge: bool = False
    reviewers: tuple[str, ...] = ()
    team_reviewers: tuple[str, ...] = ()
    gate: Gate | None = None


@dataclass(frozen=True)
class Close:
    """An open branch whose change is no longer wanted."""

    key: Key
    branch: BotBranch
    reason: str


@dataclass(frozen=True)
class Note:
    """Something the plan could not or would not do, said plainly. ``error`` ones fail the run."""

    key: Key
    message: str
    error: bool = False
    tell: bool = False  # worth saying on the key's pull request too


@dataclass(frozen=True)
class Alert:
    """A drift alert for one (environment, model): raised while the served version drifts,
    resolved once a check finds no drift. Forges keep one issue per key and update it."""

    key: Key  # (environment, model, "alert")
    raised: bool
    title: str
    body: str
    fingerprint: str  # of the drift run it reports: a new run that still drifts updates the issue
    labels: tuple[str, ...] = ()

    @property
    def marker(self) -> str:
        # Drift alerts (kind "alert") keep the marker they always had; the quality gate's
        # tracking issue (kind "quality") has its own.
        return f"<!-- releasebot:{self.key.kind}={self.key.environment}/{self.key.model} -->"


@dataclass(frozen=True)
class GateRow:
    """One line of the quality gate: a metric of the candidate against the baseline, or a tag."""

    name: str
    candidate: str | None  # the value, as MLflow holds it (None: missing)
    baseline: str | None
    rule: str  # what was required, said for people: "≥ baseline + 0.005", "tag present"
    passed: bool


@dataclass(frozen=True)
class Gate:
    """The quality gate's verdict on one version for one environment, with its evidence."""

    key: Key  # (environment, model, "release")
    version: str
    baseline: str | None  # the version compared with (serving there, or @champion); None: none
    passed: bool
    rows: tuple[GateRow, ...]
    summary: str  # one line: "passed 2 of 2 checks against v3" / "failed: accuracy 0.91 < 0.93"


@dataclass(frozen=True)
class Deployment:
    """One step of a walk as a GitHub deployment: the main commit that carried the step into the
    environment, and how that step went. Forges make GitHub say the same (idempotently)."""

    key: Key  # (environment, model, "release")
    sha: str  # the main commit that landed the step
    version: str
    step: str  # "1/4" … "4/4" (the promotion), "rollback"
    percent: int | None
    state: Literal["in_progress", "success", "failure"]
    description: str


@dataclass(frozen=True)
class VersionTag:
    """A tag the plan wants on a model version in MLflow (only when it differs from today's)."""

    registered_model: str
    version: str
    name: str
    value: str


@dataclass(frozen=True)
class Walk:
    """Where one release walk stands, for people (``plan``, ``/releasebot status``) and for the
    worker (``next_look``: when this key should be planned again, whatever else happens)."""

    key: Key
    version: str
    stable: str | None
    step: int | None  # index into the environment's canary steps; None once promoted or ended
    percent: int | None
    phase: str  # proposed, syncing, soaking, analysing, stepping, promoting, rolling back, unobserved
    message: str
    since: datetime | None = None
    next_look: datetime | None = None
    verdict: Verdict | None = None
    sha: str | None = None  # the main commit that landed the step under way, once it is on main


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    closes: tuple[Close, ...]
    notes: tuple[Note, ...]
    alerts: tuple[Alert, ...] = ()
    walks: tuple[Walk, ...] = ()
    # Changes whose open branch already says them (``Change.held`` is its head): not to be
    # written, only to be proposed if that never happened. Kept apart from ``changes`` so that
    # everything reading a plan as "what would be written" reads it as before.
    held: tuple[Change, ...] = ()
    deployments: tuple[Deployment, ...] = ()
    tags: tuple[VersionTag, ...] = ()
    gates: tuple[Gate, ...] = ()  # every gate evaluated this pass, passed or not

    @property
    def next_look(self) -> datetime | None:
        """The earliest time a walk asked to be looked at again."""
        return min((w.next_look for w in self.walks if w.next_look is not None), default=None)

    @property
    def errors(self) -> tuple[Note, ...]:
        return tuple(n for n in self.notes if n.error)


# --- the cluster, as observed (bot.cluster fills these; the walk reads them) ------------------


@dataclass(frozen=True)
class AppStatus:
    """An Argo CD Application, as much of it as a walk needs.

    ``history`` is Argo CD's deployment history, oldest first: (revision, deployedAt). It tells
    when the commit of a step went live. ``resources`` is Argo CD's own health verdict per
    managed resource, keyed (kind, namespace, name).
    """

    name: str
    sync_status: str | None  # Synced, OutOfSync, Unknown
    sync_revision: str | None
    health: str | None  # Healthy, Progressing, Degraded, Suspended, Missing, Unknown
    operation_phase: str | None = None  # Running, Succeeded, Failed, Error, Terminating
    operation_message: str | None = None
    history: tuple[tuple[str, datetime], ...] = ()
    resources: Mapping[tuple[str, str, str], str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Traffic:
    """One entry of ``status.components.predictor.traffic`` (Knative)."""

    revision: str | None
    percent: int | None
    latest: bool = False
    tag: str | None = None


@dataclass(frozen=True)
class CanaryStatus:
    """One entry of ``status.canaryStatuses`` (KServe 0.20 Standard ``spec.canary[]``)."""

    name: str
    ready: bool
    traffic_percent: int


@dataclass(frozen=True)
class IsvcStatus:
    """An InferenceService's status, as much of it as a walk needs."""

    namespace: str
    name: str
    generation: int | None
    observed_generation: int | None
    ready: bool
    reason: str | None = None  # why not Ready: the first failing condition's reason and message
    deployment_mode: str | None = None
    latest_ready_revision: str | None = None
    latest_created_revision: str | None = None
    latest_rolledout_revision: str | None = None
    previous_rolledout_revision: str | None = None
    traffic: tuple[Traffic, ...] = ()
    canaries: tuple[CanaryStatus, ...] = ()
    transition_status: str | None = None  # modelStatus.transitionStatus
    failure: str | None = None  # modelStatus.lastFailureInfo, said in one line


@dataclass(frozen=True)
class ClusterSnapshot:
    """What the cluster said when it was asked, and when. ``None`` for an object that is absent;
    a key missing from a mapping was not asked about. ``problems`` says what could not be read."""

    at: datetime
    applications: Mapping[str, AppStatus | None] = field(default_factory=dict)  # by environment
    services: Mapping[tuple[str, str], IsvcStatus | None] = field(default_factory=dict)  # (env, model)
    ancestry: Mapping[tuple[str, str], bool] = field(default_factory=dict)  # (commit, revision) -> contains
    problems: Mapping[str, str] = field(default_factory=dict)  # by environment


# --- canary analysis (bot.analysis answers what the walk asks) ---------------------------------


@dataclass(frozen=True)
class AnalysisRequest:
    """Compare a canary with its stable revision over one step's soak, ending at ``end``."""

    key: Key
    step: int  # index into the environment's canary steps
    namespace: str
    model: str
    deployment_mode: str  # Serverless/Knative or RawDeployment/Standard
    canary_revision: str
    stable_revision: str | None
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Measurement:
    """One check's outcome: the query that ran, what came back, and the threshold it met or missed."""

    name: str
    query: str
    canary: float | None
    stable: float | None
    threshold: str
    passed: bool
    note: str = ""


@dataclass(frozen=True)
class Look:
    """What a walk sees beyond Git: the cluster (None where it is not observed), the analysis
    verdicts asked for, and the clock."""

    now: datetime
    cluster: ClusterSnapshot | None = None
    verdicts: Mapping[AnalysisRequest, Verdict] = field(default_factory=dict)
    # Main commits already seen deployed, Healthy and soaked (a fact that does not change).
    settled: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Verdict:
    """The outcome of one step's analysis. ``error`` is set when Prometheus could not be asked."""

    passed: bool
    measurements: tuple[Measurement, ...]
    start: datetime
    end: datetime
    error: str | None = None
