"""The rollout walk with plain data: every step of a canary, from Git, a scripted cluster and a clock.

The walk is a function of main, the cluster and the time: these tests apply each change to main
by hand (as a merge would), move the cluster and the clock, and check the exact sequence of
changes — in both KServe shapes — and that nothing moves before its time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot import yamlio, yamlplain
from bot.blueprints import BlueprintSet
from bot.catalog import parse_catalog
from bot.manifests import inferenceservice, rollout
from bot.plan import (
    Key,
    Look,
    RepoState,
    analysis_wants,
    plan,
    release_edit,
    served,
)
from bot.plan.types import (
    AppStatus,
    CanaryStatus,
    ClusterSnapshot,
    IsvcStatus,
    Measurement,
    Traffic,
    Verdict,
)
from bot.registry import ModelState, RegistrySnapshot, Version
from bot.validate import check_manifest
from tests.conftest import EXAMPLE_CATALOG, EXAMPLE_DIR, independent

PATH = "production/fraud-detector/inferenceservice.yaml"
KEY = Key("production", "fraud-detector", "release")
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
PROMETHEUS = "prometheus:\n  url: http://prometheus-operated.monitoring.svc:9090\n"


def catalog(standard: bool = False):
    text = EXAMPLE_CATALOG.read_text()
    text = text.replace(
        "    autoMerge: false\n",
        "    autoMerge: false\n    canary:\n      steps: [10, 50, 100]\n      interval: 10m\n      deadline: 15m\n",
    )
    if standard:
        text = text.replace(
            "  kserveDeploymentMode: Serverless\n", '  kserveDeploymentMode: Standard\n  kserveVersion: "0.20"\n'
        )
        text = text.replace("    scaleToZero: true\n", "").replace("      min: 0\n", "      min: 1\n")
    return parse_catalog(independent(text) + PROMETHEUS, "releasebot.yaml", EXAMPLE_DIR)


def version(v: str) -> Version:
    return Version("fraud-detector", v, f"s3://models/fraud/{v}", f"run{v}", "READY", experiment_id="7")


def registry(alias: str) -> RegistrySnapshot:
    state = ModelState("fraud-detector", (("champion", alias),), {v: version(v) for v in ("2", "3", "4")})
    return RegistrySnapshot("http://mlflow", {"fraud-detector": state})


def serving(cat, v: str) -> str:
    doc = inferenceservice.desired(cat, cat.environment("production"), cat.model("fraud-detector"), BlueprintSet())
    return release_edit(PATH, yamlio.dump(doc), version(v)).new


class World:
    """Main (one manifest), the cluster's view of it, and the clock."""

    def __init__(self, standard: bool = False) -> None:
        self.cat = catalog(standard)
        self.standard = standard
        self.text = serving(self.cat, "2")
        self.sha, self.landed_at, self.now = "c0", T0, T0
        self.deployed: list[tuple[str, datetime]] = [("c0", T0)]
        self.commits = ["c0"]
        self.health, self.ready, self.failure = "Healthy", True, None
        self.verdicts: dict = {}

    def merge(self, text: str) -> None:
        """A change lands on main: a new first-parent commit."""
        self.text = text
        self.sha = f"c{len(self.commits)}"
        self.commits.append(self.sha)
        self.landed_at = self.now

    def sync(self) -> None:
        """Argo CD deploys main's head now."""
        self.deployed.append((self.sha, self.now))

    def cluster(self) -> ClusterSnapshot:
        head = self.deployed[-1][0]
        ancestry = {(a, b): self.commits.index(a) <= self.commits.index(b) for a in self.commits for b in self.commits}
        app = AppStatus(
            "releasebot-production",
            "Synced",
            head,
            self.health,
            history=tuple(self.deployed),
            resources={("InferenceService", "models-production", "fraud-detector"): self.health},
        )
        now = served(self.text, PATH)
        deployed_text_has_canary = now.canary is not None and head == self.sha
        if self.standard:
            canaries = (
                (CanaryStatus(rollout.canary_name(now.version), True, now.canary),) if deployed_text_has_canary else ()
            )
            traffic: tuple[Traffic, ...] = ()
        else:
            canaries = ()
            p = now.canary if deployed_text_has_canary else 100
            traffic = (Traffic("fraud-detector-predictor-00002", p, latest=True),)
            if p != 100 or deployed_text_has_canary:
                traffic += (Traffic("fraud-detector-predictor-00001", 100 - p, latest=False, tag="prev"),)
        svc = IsvcStatus(
            "models-production",
            "fraud-detector",
            3,
            3,
            self.ready,
            traffic=traffic,
            canaries=canaries,
            failure=self.failure,
        )
        return ClusterSnapshot(
            self.now,
            {"production": app},
            {("production", "fraud-detector"): svc},
            ancestry,
        )

    def repo(self) -> RepoState:
        return RepoState({PATH: self.text}, {}, {PATH: (self.sha, self.landed_at)})

    def look(self) -> Look:
        return Look(self.now, self.cluster(), self.verdicts)

    def plan(self, alias: str = "3"):
        return plan(self.cat, registry(alias), self.repo(), "production", "fraud-detector", self.look())

    def requests(self):
        now = served(self.text, PATH)
        env, model = self.cat.environment("production"), self.cat.model("fraud-detector")
        return analysis_wants(self.cat, self.repo(), self.look(), [(env, model, now)])

    def judge(self, passed: bool) -> None:
        for request in self.requests():
            row = Measurement("error-ratio", "q", 0.2 if not passed else 0.001, 0.001, "≤ 0.01", passed)
            self.verdicts[request] = Verdict(passed, (row,), request.start, request.end)


def only(p):
    assert len(p.changes) == 1, (p.changes, p.notes, p.walks)
    return p.changes[0]


def walk_to_soaked(w: World) -> None:
    """The step on main syncs, becomes Healthy and serves its whole soak."""
    w.now += timedelta(minutes=2)
    w.sync()
    w.now += timedelta(minutes=10)


@pytest.mark.parametrize("standard", [False, True], ids=["serverless", "standard"])
def test_a_release_walks_10_50_100_then_promotes_each_step_after_sync_and_soak(standard: bool) -> None:
    w = World(standard)
    titles = []

    start = only(w.plan())
    titles.append(start.title)
    assert start.title == "Release fraud-detector v3 to production: canary 10% (1 of 4)"
    assert "Releasebot-Step: 1/4" in start.commit_message and "### The walk" in start.body
    w.merge(start.edits[0].new)
    now = served(w.text, PATH)
    assert (now.version, now.stable, now.step, now.canary) == ("3", "2", 0, 10)

    for expected_next in (
        "Step fraud-detector v3 in production to 50% (2 of 4)",
        "Step fraud-detector v3 in production to 100% (3 of 4)",
        "Promote fraud-detector v3 in production to 100% (4 of 4)",
    ):
        # Merged but not deployed: the walk waits, and asks to be looked at again soon.
        p = w.plan()
        assert not p.changes and p.walks[0].phase == "syncing"
        assert p.next_look == w.now + timedelta(seconds=30)
        w.now += timedelta(minutes=2)
        w.sync()
        # Deployed: it soaks for the interval, and asks to be looked at when the soak ends.
        p = w.plan()
        assert not p.changes and p.walks[0].phase == "soaking"
        assert p.walks[0].since == w.now
        w.now += timedelta(minutes=10)
        # Soaked: the analysis is asked for the exact window, once.
        (request,) = w.requests()
        assert (request.start, request.end) == (w.now - timedelta(minutes=10), w.now)
        assert not w.plan().changes and w.plan().walks[0].phase == "analysing"
        w.judge(passed=True)
        step = only(w.plan())
        titles.append(step.title)
        assert step.title == expected_next
        assert step.verdict is not None and step.verdict.passed and step.verdict_sha == w.sha
        assert "### Analysis of the step before" in step.body and "| error-ratio |" in step.body
        # The same look plans the same change: nothing repeats, whatever asks again.
        assert only(w.plan()).fingerprint == step.fingerprint
        w.merge(step.edits[0].new)
        for edit in step.edits[1:]:
            assert edit.path == "production/fraud-detector/drift-check-cronjob.yaml"

    assert len(titles) == 4
    now = served(w.text, PATH)
    assert (now.version, now.step, now.stable, now.canary) == ("3", None, None, None)
    doc = yamlplain.load(w.text, PATH)
    if standard:
        assert "canary" not in doc["spec"]
        assert doc["spec"]["predictor"]["name"] == "v3"
        assert doc["spec"]["predictor"]["model"]["storageUri"] == "s3://models/fraud/3"
    else:
        assert "canaryTrafficPercent" not in doc["spec"]["predictor"]
    # Promoted: nothing more to do.
    w.now += timedelta(minutes=5)
    w.sync()
    assert not w.plan().changes and not w.plan().walks


@pytest.mark.parametrize("standard", [False, True], ids=["serverless", "standard"])
def test_every_step_of_a_walk_validates_against_the_kserve_crd(standard: bool) -> None:
    w = World(standard)
    texts = []
    for passed in (True, True, True, True):
        change = only(w.plan())
        w.merge(change.edits[0].new)
        texts.append(w.text)
        walk_to_soaked(w)
        w.judge(passed)
    for i, text in enumerate(texts):
        problems = check_manifest(PATH, yamlio.load(text, PATH))
        assert not problems, problems
        if standard and i < 3:
            canary = yamlplain.load(text, PATH)["spec"]["canary"][0]
            assert canary["trafficPercent"] == (10, 50, 100)[i]
            assert canary["predictor"]["name"] == "v3"
            assert canary["predictor"]["model"]["storageUri"] == "s3://models/fraud/3"
            assert "minReplicas" not in canary["predictor"]


@pytest.mark.parametrize("standard", [False, True], ids=["serverless", "standard"])
def test_a_bad_canary_at_10_percent_is_rolled_back_and_its_version_blocked(standard: bool) -> None:
    w = World(standard)
    w.merge(only(w.plan()).edits[0].new)
    walk_to_soaked(w)
    w.judge(passed=False)
    back = only(w.plan())
    assert back.title == "Roll back fraud-detector in production to v2: canary v3 failed at 10%"
    assert back.key == KEY and "Releasebot-Step: rollback" in back.commit_message
    assert back.verdict is not None and not back.verdict.passed and back.verdict_sha == w.sha
    assert "❌ fail" in back.body and "releasebot unblock fraud-detector --env production" in back.body
    w.merge(back.edits[0].new)
    now = served(w.text, PATH)
    assert (now.version, now.step, now.canary, now.blocked) == ("2", None, None, frozenset({"3"}))
    doc = yamlplain.load(w.text, PATH)
    assert doc["spec"]["predictor"]["model"]["storageUri"] == "s3://models/fraud/2"
    # Sticky: the alias still points at v3, and nothing proposes it again.
    p = w.plan()
    assert not p.changes and "blocked in Git" in p.notes[0].message


def test_a_step_not_healthy_by_its_deadline_is_rolled_back() -> None:
    w = World()
    w.merge(only(w.plan()).edits[0].new)
    w.sync()
    w.ready = False
    w.now += timedelta(minutes=14)
    assert not w.plan().changes
    w.now += timedelta(minutes=1)
    back = only(w.plan())
    assert back.title.startswith("Roll back fraud-detector in production to v2")
    assert "not synced and Healthy within 15m" in back.body


def test_a_canary_that_fails_to_load_is_rolled_back_at_once() -> None:
    w = World()
    w.merge(only(w.plan()).edits[0].new)
    w.now += timedelta(minutes=1)
    w.sync()
    w.health, w.failure = "Degraded", "ModelLoadFailed: no such file"
    back = only(w.plan())
    assert "KServe could not load the model" in back.body or "Degraded" in back.body


def test_without_the_cluster_a_walk_waits_and_says_so() -> None:
    w = World()
    w.merge(only(w.plan()).edits[0].new)
    p = plan(w.cat, registry("3"), w.repo(), "production", "fraud-detector", None)
    assert not p.changes and p.walks[0].phase == "unobserved" and p.next_look is None


def test_an_alias_moved_mid_walk_restarts_the_walk_from_the_same_stable_version() -> None:
    w = World()
    w.merge(only(w.plan()).edits[0].new)
    walk_to_soaked(w)
    w.judge(passed=True)
    w.merge(only(w.plan()).edits[0].new)  # v3 at 50%
    restart = only(w.plan(alias="4"))
    assert restart.title == "Release fraud-detector v4 to production: canary 10% (1 of 4)"
    w.merge(restart.edits[0].new)
    now = served(w.text, PATH)
    assert (now.version, now.stable, now.step, now.canary) == ("4", "2", 0, 10)
    # And an alias moved back to the stable version ends the walk without blocking anything.
    end = only(w.plan(alias="2"))
    assert end.title == "End the canary of fraud-detector v4 in production: back to v2"
    w.merge(end.edits[0].new)
    now = served(w.text, PATH)
    assert (now.version, now.step, now.canary, now.blocked) == ("2", None, None, frozenset())


def test_the_first_release_has_nothing_to_compare_and_goes_straight_to_100() -> None:
    w = World()
    doc = inferenceservice.desired(
        w.cat, w.cat.environment("production"), w.cat.model("fraud-detector"), BlueprintSet()
    )
    w.text = yamlio.dump(doc)
    change = only(w.plan())
    assert change.title == "Release fraud-detector v3 to production"
    assert served(change.edits[0].new, PATH).canary is None


def test_a_restart_mid_walk_resumes_from_git_and_the_cluster() -> None:
    """Nothing is remembered between passes: a fresh plan from the same Git, cluster and clock
    is the same decision, so a restarted worker neither repeats nor skips a step."""
    w = World()
    w.merge(only(w.plan()).edits[0].new)
    walk_to_soaked(w)
    w.judge(passed=True)
    before = only(w.plan())
    again = World()
    again.__dict__.update({k: v for k, v in w.__dict__.items()})
    assert only(again.plan()) == before
    # A verdict that is not there yet (Prometheus asked again after the restart) only waits.
    again.verdicts = {}
    assert not again.plan().changes and again.plan().walks[0].phase == "analysing"


def test_a_walk_step_is_not_proposed_twice_while_its_pull_request_is_open() -> None:
    from bot.plan import BotBranch

    w = World()
    start = only(w.plan())
    branch = BotBranch(KEY.branch, "abc", "3", start.fingerprint)
    p = plan(
        w.cat, registry("3"), replace(w.repo(), branches={KEY.branch: branch}), "production", "fraud-detector", w.look()
    )
    assert not p.changes and p.walks[0].phase == "proposed"
