"""Between environments, pure: the promotion order, the quality gate, and walks as deployments.

Three environments in catalog order — sandbox (no canary), preprod and live (canary steps) — and
the plan for each, from main's manifests, the registry, and the cluster as the walk sees it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot import yamlio
from bot.blueprints import BlueprintSet
from bot.catalog import parse_catalog
from bot.manifests import inferenceservice
from bot.manifests import rollout as walkstate
from bot.plan import plan, release_edit, served
from bot.plan.types import (
    AppStatus,
    BotBranch,
    ClusterSnapshot,
    IsvcStatus,
    Look,
    ModelState,
    RegistrySnapshot,
    RepoState,
    Traffic,
    Version,
)
from tests.conftest import EXAMPLE_DIR

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
CATALOG = """version: 1
registry:
  trackingUri: http://mlflow.example:5000
repository:
  url: https://github.com/acme/envs.git
cluster:
  name: test
karpenter:
  nodeRole: NodeRole
prometheus:
  url: http://prometheus.example:9090
environments:
  - name: sandbox
    alias: candidate
    namespace: models-sandbox
    writeBack: commit
  - name: preprod
    alias: candidate
    namespace: models-preprod
    writeBack: commit
    canary:
      steps: [50]
      interval: 10m
  - name: live
    alias: champion
    namespace: models-live
    writeBack: pull-request
    autoMerge: true
    reviewers:
      users: [alice-ml]
    canary:
      steps: [50]
      interval: 10m
    gate:
      metrics:
        - name: accuracy
          direction: higher
          maxRegression: 0.01
      tags:
        - name: validation_dataset_digest
models:
  - name: fraud
    registeredModel: fraud
    serving:
      format: mlflow
    resources:
      cpu: 250m
      memory: 512Mi
    replicas:
      min: 1
      max: 2
"""
ENVS = ("sandbox", "preprod", "live")


def catalog(text: str = CATALOG):
    return parse_catalog(text, "releasebot.yaml", EXAMPLE_DIR)


def path(env: str) -> str:
    return f"{env}/fraud/inferenceservice.yaml"


def version(v: str, accuracy: float, digest: bool = True) -> Version:
    tags = (("validation_dataset_digest", "sha256:abc"),) if digest else ()
    return Version(
        "fraud", v, f"s3://models/fraud/{v}", f"run{v}", "READY", metrics=(("accuracy", accuracy),), tags=tags
    )


class Fleet:
    """Main's manifests for the three environments, the registry, and the cluster of each."""

    def __init__(self, text: str = CATALOG) -> None:
        self.cat = catalog(text)
        self.versions = {"1": version("1", 0.93), "2": version("2", 0.935), "3": version("3", 0.911)}
        self.aliases = {"candidate": "1", "champion": "1"}
        self.files = {e: self.serving(e, "1") for e in ENVS}
        self.landed = {e: (f"{e}-c1", T0) for e in ENVS}
        self.deployed = {e: [(f"{e}-c1", T0)] for e in ENVS}
        self.now = T0 + timedelta(hours=1)
        self.reached: dict = {}
        self.settled: frozenset[str] = frozenset()
        self.branches: dict[str, BotBranch] = {}

    def serving(self, env: str, v: str) -> str:
        e, m = self.cat.environment(env), self.cat.model("fraud")
        doc = inferenceservice.desired(self.cat, e, m, BlueprintSet())
        return release_edit(path(env), yamlio.dump(doc), self.versions[v]).new

    def land(self, env: str, text: str, deployed_after: timedelta | None = None) -> None:
        """A change lands on main in ``env``; Argo CD deploys it ``deployed_after`` later."""
        self.files[env] = text
        sha = f"{env}-c{len(self.deployed[env]) + 1}"
        self.landed[env] = (sha, self.now)
        if deployed_after is not None:
            self.deployed[env].append((sha, self.now + deployed_after))

    def registry(self) -> RegistrySnapshot:
        state = ModelState("fraud", tuple(sorted(self.aliases.items())), dict(self.versions))
        return RegistrySnapshot("http://mlflow", {"fraud": state})

    def repo(self) -> RepoState:
        return RepoState(
            {path(e): t for e, t in self.files.items()},
            self.branches,
            {path(e): self.landed[e] for e in ENVS},
            reached=self.reached,
        )

    def look(self) -> Look:
        apps, ancestry = {}, {}
        for e in ENVS:
            history = tuple((sha, at) for sha, at in self.deployed[e] if at <= self.now)
            head = history[-1][0]
            apps[e] = AppStatus(
                f"releasebot-{e}", "Synced", head, "Healthy", history=history,
                resources={("InferenceService", f"models-{e}", "fraud"): "Healthy"},
            )  # fmt: skip
            shas = [sha for sha, _ in self.deployed[e]]
            ancestry.update({(a, b): shas.index(a) <= shas.index(b) for a in shas for b in shas})
        services = {}
        for e in ENVS:
            p = served(self.files[e], path(e)).canary or 100
            traffic = (Traffic("fraud-predictor-00002", p, latest=True), Traffic("fraud-predictor-00001", 100 - p))
            services[(e, "fraud")] = IsvcStatus(f"models-{e}", "fraud", 1, 1, True, traffic=traffic)
        return Look(self.now, ClusterSnapshot(self.now, apps, services, ancestry), settled=self.settled)

    def plan(self, env: str | None = None):
        return plan(self.cat, self.registry(), self.repo(), env, "fraud", self.look())


def walk_of(p, env: str):
    return next(w for w in p.walks if w.key.environment == env)


def test_a_new_version_waits_for_each_environment_before_and_plan_says_for_what() -> None:
    f = Fleet()
    f.aliases = {"candidate": "2", "champion": "2"}
    p = f.plan()
    # Only sandbox, first in the order, gets v2; the others wait, and say on what.
    assert [(c.key.environment, c.version) for c in p.changes] == [("sandbox", "2")]
    assert walk_of(p, "preprod").phase == "waiting"
    assert walk_of(p, "preprod").message == "preprod waits for v2 to be promoted in sandbox (it serves v1)"
    assert walk_of(p, "live").message == "live waits for v2 to be promoted in preprod (it serves v1)"

    f.land("sandbox", p.changes[0].edits[0].new)
    p = f.plan()
    start = next(c for c in p.changes if c.key.environment == "preprod")
    assert start.title == "Release fraud v2 to preprod: canary 50% (1 of 2)"
    assert "live" not in {c.key.environment for c in p.changes}

    # preprod's walk under way: live waits for it to finish.
    f.land("preprod", start.edits[0].new, deployed_after=timedelta(0))
    assert walk_of(f.plan(), "live").message == "live waits for v2 to finish its walk in preprod (step 1 of 2, 50%)"


def test_live_waits_for_preprods_promotion_to_be_deployed_healthy_and_soaked() -> None:
    f = Fleet()
    f.aliases = {"candidate": "2", "champion": "2"}
    f.land("sandbox", f.serving("sandbox", "2"))
    f.land("preprod", f.serving("preprod", "2"))  # promoted on main, not deployed yet
    p = f.plan("live")
    assert not p.changes
    assert walk_of(p, "live").message.startswith("live waits for v2 to settle in preprod: Argo CD has not deployed")
    f.deployed["preprod"].append((f.landed["preprod"][0], f.now))
    f.now += timedelta(minutes=4)
    p = f.plan("live")
    soak_end = f.now + timedelta(minutes=6)
    assert walk_of(p, "live").message.endswith(f"soaking in preprod until {soak_end:%Y-%m-%d %H:%M:%SZ}")
    # The worker looks again exactly when preprod's soak ends.
    assert p.next_look == soak_end
    f.now = soak_end
    change = next(c for c in f.plan("live").changes)
    assert change.title == "Release fraud v2 to live: canary 50% (1 of 2)"


def test_a_passing_gate_rides_the_release_with_its_evidence_and_tags_the_version() -> None:
    f = Fleet()
    f.aliases = {"candidate": "2", "champion": "2"}
    for env in ("sandbox", "preprod"):
        f.land(env, f.serving(env, "2"), deployed_after=timedelta(0))
    f.now += timedelta(minutes=11)
    p = f.plan("live")
    (change,) = p.changes
    assert change.gate is not None and change.gate.passed and change.gate.baseline == "1"
    assert [(r.name, r.candidate, r.baseline, r.passed) for r in change.gate.rows] == [
        ("accuracy", "0.935", "0.93", True),
        ("tag validation_dataset_digest", "sha256:abc", None, True),
    ]
    assert "### Quality gate" in change.body and "| accuracy | 0.935 | 0.93 | ≥ baseline - 0.01 | ✅ |" in change.body
    assert change.auto_merge and change.reviewers == ("alice-ml",)
    assert [(t.version, t.name, t.value) for t in p.tags] == [("2", "releasebot.quality.live", "passed")]
    # Once MLflow says it, the tag is not planned again.
    f.versions["2"] = Version(
        **{**f.versions["2"].__dict__, "tags": (*f.versions["2"].tags, ("releasebot.quality.live", "passed"))}
    )
    assert not f.plan("live").tags


def test_a_candidate_that_regresses_the_gated_metric_gets_no_release_but_an_issue_and_a_tag() -> None:
    f = Fleet()
    f.files["live"] = f.serving("live", "2")  # live serves v2 (accuracy 0.935)
    f.aliases = {"candidate": "3", "champion": "3"}  # v3: 0.911, 0.024 below
    for env in ("sandbox", "preprod"):
        f.land(env, f.serving(env, "3"), deployed_after=timedelta(0))
    f.now += timedelta(minutes=11)
    f.branches = {
        "releasebot/live/fraud/release": BotBranch("releasebot/live/fraud/release", "b1", "3", "fp-old"),
    }
    p = f.plan("live")
    assert not p.changes and not p.held
    # An open branch proposing the failing version is withdrawn, with the reason.
    (close,) = p.closes
    assert close.reason.startswith("v3 failed the quality gate: accuracy 0.911 is not ≥ baseline - 0.01")
    (issue,) = p.alerts
    assert issue.raised and issue.key.kind == "quality" and issue.marker == "<!-- releasebot:quality=live/fraud -->"
    assert "| accuracy | 0.911 | 0.935 | ≥ baseline - 0.01 | ❌ |" in issue.body
    (tag,) = p.tags
    assert tag.value.startswith("failed: accuracy 0.911 is not ≥ baseline - 0.01 (baseline 0.935) (against v2)")
    assert any("failed the quality gate of live" in n.message for n in p.notes)


def test_the_gate_is_fail_closed_on_missing_metrics_and_tags() -> None:
    f = Fleet()
    f.versions["2"] = Version("fraud", "2", "s3://models/fraud/2", "run2", "READY")  # no metric, no tag
    f.aliases = {"candidate": "2", "champion": "2"}
    for env in ("sandbox", "preprod"):
        f.land(env, f.serving(env, "2"), deployed_after=timedelta(0))
    f.now += timedelta(minutes=11)
    p = f.plan("live")
    assert not p.changes
    (issue,) = p.alerts
    assert "accuracy is missing on the candidate; tag validation_dataset_digest is missing on the candidate" in (
        issue.body
    )


def test_independent_environments_do_not_wait_and_history_lets_a_version_through() -> None:
    f = Fleet(
        CATALOG.replace("    writeBack: pull-request\n", "    writeBack: pull-request\n    promotion: independent\n")
    )
    f.aliases = {"candidate": "1", "champion": "2"}
    assert [c.key.environment for c in f.plan("live").changes] == ["live"]

    # Ordered again: preprod moved on to v3, but v2 reached it before; live may have v2.
    f = Fleet()
    f.aliases = {"candidate": "3", "champion": "2"}
    f.files["preprod"] = f.serving("preprod", "3")
    assert walk_of(f.plan("live"), "live").phase == "waiting"
    f.reached = {("preprod", "fraud", "2"): True}
    assert [c.version for c in f.plan("live").changes] == ["2"]


def test_a_version_blocked_in_the_environment_before_goes_no_further() -> None:
    f = Fleet()
    f.aliases = {"candidate": "3", "champion": "2"}
    doc = yamlio.load(f.files["preprod"], path("preprod"))
    doc["metadata"]["annotations"]["releasebot.dev/blocked-versions"] = "2"
    f.files["preprod"] = yamlio.dump(doc)
    f.reached = {("preprod", "fraud", "2"): True}
    assert walk_of(f.plan("live"), "live").message == "live v2 is blocked in preprod; it goes no further"


def test_each_walk_step_is_a_deployment_that_follows_the_walk() -> None:
    f = Fleet(
        CATALOG.replace("    writeBack: pull-request\n", "    writeBack: pull-request\n    promotion: independent\n")
    )
    f.aliases = {"candidate": "1", "champion": "2"}
    start = next(iter(f.plan("live").changes))
    assert not f.plan("live").deployments  # proposed, not on main: nothing deployed yet
    f.land("live", start.edits[0].new)
    (d,) = f.plan("live").deployments
    assert (d.sha, d.version, d.step, d.percent, d.state) == ("live-c2", "2", "1/2", 50, "in_progress")
    f.deployed["live"].append(("live-c2", f.now))
    f.now += timedelta(minutes=11)
    # The soak ended; the analysis passed: the step is a success and the promotion is proposed.
    p = f.plan("live")
    (request_walk,) = p.walks
    assert request_walk.phase == "analysing"
    from bot.plan.types import Measurement, Verdict
    from bot.reconcile import analysis_wants

    now = served(f.files["live"], path("live"))
    env, model = f.cat.environment("live"), f.cat.model("fraud")
    look = f.look()
    (request,) = analysis_wants(f.cat, f.repo(), look, [(env, model, now)])
    m = Measurement("error-ratio", "q", 0.0, 0.0, "≤ 0.01", True)
    passed = Look(look.now, look.cluster, {request: Verdict(True, (m,), request.start, request.end)})
    p = plan(f.cat, f.registry(), f.repo(), "live", "fraud", passed)
    (d,) = p.deployments
    assert (d.sha, d.state) == ("live-c2", "success")
    promote = p.changes[0]
    assert promote.title == "Promote fraud v2 in live to 100% (2 of 2)"
    # The promotion lands: its own deployment is in progress until it settled, then a success.
    f.land("live", promote.edits[0].new)
    repo = f.repo()
    repo = RepoState(repo.main_files, {}, repo.landed, {path("live"): "2/2"})
    assert walkstate.STEP_ANNOTATION not in f.files["live"]
    (d,) = plan(f.cat, f.registry(), repo, "live", "fraud", f.look()).deployments
    assert (d.sha, d.step, d.percent, d.state) == ("live-c3", "2/2", 100, "in_progress")
    f.deployed["live"].append(("live-c3", f.now))
    f.now += timedelta(minutes=10)
    (d,) = plan(f.cat, f.registry(), repo, "live", "fraud", f.look()).deployments
    assert d.state == "success"
    # Once a pass saw it settled, nothing more is reported or observed for it.
    f.settled = frozenset({"live-c3"})
    assert not plan(f.cat, f.registry(), repo, "live", "fraud", f.look()).deployments


def test_a_walk_under_way_goes_on_when_the_alias_moves_to_a_version_that_may_not_start() -> None:
    f = Fleet(
        CATALOG.replace("    writeBack: pull-request\n", "    writeBack: pull-request\n    promotion: independent\n")
    )
    f.aliases = {"candidate": "1", "champion": "2"}
    start = next(iter(f.plan("live").changes))
    f.land("live", start.edits[0].new, deployed_after=timedelta(0))
    f.branches = {"releasebot/live/fraud/release": BotBranch("releasebot/live/fraud/release", "b1", "2", "fp-old")}
    f.aliases["champion"] = "3"  # v3 regresses accuracy: it may not start in live
    p = f.plan("live")
    # v2's canary is not left at 50%: it keeps soaking, and nothing closes its branch.
    assert not p.closes and [w.phase for w in p.walks] == ["soaking"] and p.walks[0].version == "2"
    assert any(n.message.endswith("the walk of v2 goes on") and "failed the quality gate" in n.message for n in p.notes)
    assert [a.key.kind for a in p.alerts] == ["quality"]
