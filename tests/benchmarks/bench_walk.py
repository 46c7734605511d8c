"""Benchmark (``make bench``): one canary step of a release walk, at N models (issue 13: the time
from "analysis passed" to the next step's pull request, bot-side, and one walk's cost independent
of the fleet's size).

Per N, set up and not measured (the time is printed): ``releasebot init`` (the library) from
:func:`tests.benchmarks.fleet.fleet_catalog` with production given a canary (``steps: [10, 50,
100]``, ``interval: 1m``, ``deadline: 5m``) and ``pull-request`` write-back, and a Prometheus;
the catalog and every manifest validated; version 1 written into every InferenceService; a bare
clone as the remote and releasebot's workdir cloned from it. Then one model (the last) is put
mid-walk by the real planner: its ``@champion`` moves to 2, the production plan starts the walk
(version 2 at 10%, version 1 stable) and that change is committed to main, as a merge would.

The registry, the cluster and Prometheus are in-process stubs: the registry answers a prebuilt
snapshot of the models asked for; the cluster answers an Argo CD Application synced to main's
head, deployed one interval ago, and a Ready InferenceService reporting the 10% split; the
analysis passes, and notes the time it returned (t0). The forge notes the time ``propose`` is
called (t1). Each repetition deletes the step's branch (on the remote and in the workdir), so
the pass proposes the step anew.

Measured, per N, as the median of REPEAT passes after a first one (printed apart):

* (a) t1 - t0: from "analysis passed" to the next step's pull request (planning the step,
  building its commit, pushing its branch);
* (b) the whole pass, ``reconcile(..., env="production", model=<walking>, watch=...)``;
* floors, in the same run, interleaved: a plain ``git push`` of a one-file commit as a new
  branch of the same remote, and a ``git fetch`` of it.

Per pass the stubs count the cluster reads, the analyses asked and the registered models asked
for; they must be the same at every N (one walk's reads do not grow with the fleet). The git
commands the pass ran through :class:`bot.repo.EnvRepo` are counted too, and printed.
``RELEASEBOT_BENCH_SIZES`` (default ``10,100,1000``) picks N; ``RELEASEBOT_BENCH_PROFILE=1``
prints a profile of the first pass (its time is then inflated) and of one more pass, at the largest N.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.catalog import Canary
from bot.generate import init_environments
from bot.manifests import inferenceservice as isvc
from bot.plan import served
from bot.plan.types import (
    AnalysisRequest,
    AppStatus,
    Change,
    IsvcStatus,
    Measurement,
    ModelState,
    RegistrySnapshot,
    Traffic,
    Verdict,
    Version,
)
from bot.reconcile import Watch, make_plan, reconcile
from bot.repo import EnvRepo, local_or_url
from bot.validate import check_manifest, validate_repo
from bot.yamlio import load
from tests.benchmarks.bench_fleet import GIT_ID, SIZES, git, settle
from tests.benchmarks.fleet import fleet_catalog, model_name

REPEAT = 5
ENV, NAMESPACE = "production", "models-production"
INTERVAL = timedelta(minutes=1)
TRACKING_URI = "http://mlflow.invalid:5000"
PROMETHEUS = "prometheus:\n  url: http://prometheus.invalid:9090\n"
PLAIN_PRODUCTION = f"  - name: {ENV}\n    alias: champion\n    namespace: {NAMESPACE}\n    writeBack: commit\n"
WALKING_PRODUCTION = (
    f"  - name: {ENV}\n    alias: champion\n    namespace: {NAMESPACE}\n    writeBack: pull-request\n"
    # What one walk costs, alone: the environments before production are not part of it.
    "    promotion: independent\n"
    "    canary:\n      steps: [10, 50, 100]\n      interval: 1m\n      deadline: 5m\n"
)
PROFILE = os.environ.get("RELEASEBOT_BENCH_PROFILE") == "1"


def walk_catalog(n: int) -> str:
    """The fleet's catalog, production walking a canary and writing back by pull request."""
    text = fleet_catalog(n, TRACKING_URI)
    assert PLAIN_PRODUCTION in text
    return text.replace(PLAIN_PRODUCTION, WALKING_PRODUCTION) + PROMETHEUS


def run_id(name: str, v: str) -> str:
    return f"{name}-run-{v}"


# --- the stubs ---------------------------------------------------------------------------------


class StubRegistry:
    """MLflow, prebuilt: versions 1 and 2 of every model, ``@champion`` on 1 except the walking
    model's (on 2). Counts the registered models and the extra versions each pass asks for."""

    def __init__(self, n: int, walking: str) -> None:
        self.models = {}
        for i in range(n):
            name = model_name(i)
            versions = {
                v: Version(
                    name,
                    v,
                    f"s3://fleet-models/{name}/{v}",
                    run_id(name, v),
                    "READY",
                    experiment_id="0",
                    metrics=(("accuracy", 0.90 + int(v) / 100), ("f1", 0.85 + int(v) / 100)),
                    params=(("C", "1.0"),),
                )
                for v in ("1", "2")
            }
            champion = "2" if name == walking else "1"
            self.models[name] = ModelState(name, (("candidate", "1"), ("champion", champion)), versions)
        self.models_asked = 0
        self.versions_asked = 0

    def snapshot(self, wants: dict[str, set[str]]) -> RegistrySnapshot:
        self.models_asked += len(wants)
        self.versions_asked += sum(len(v) for v in wants.values())
        return RegistrySnapshot(TRACKING_URI, {m: self.models[m] for m in wants if m in self.models})


class StubCluster:
    """Argo CD synced to main's head, deployed ``INTERVAL`` (and a little) before ``now``; the
    walking model's InferenceService Ready with 10% on the canary revision."""

    def __init__(self, n: int, walking: str, head: str) -> None:
        resources = {("InferenceService", NAMESPACE, model_name(i)): "Healthy" for i in range(n)}
        # The name the ApplicationSet gives it (bot.manifests.argocd.application_name), for the
        # catalog's default Argo CD project.
        self.app = AppStatus(f"releasebot-{ENV}", "Synced", head, "Healthy", resources=resources)
        self.head = head
        self.service = IsvcStatus(
            NAMESPACE,
            walking,
            3,
            3,
            True,
            latest_ready_revision=f"{walking}-predictor-00002",
            latest_rolledout_revision=f"{walking}-predictor-00001",
            traffic=(
                Traffic(f"{walking}-predictor-00002", 10, latest=True),
                Traffic(f"{walking}-predictor-00001", 90, latest=False, tag="prev"),
            ),
        )
        self.now = datetime.now(UTC)
        self.reads: Counter[str] = Counter()

    def at(self, now: datetime, deployed: datetime) -> None:
        """The clock of the next pass, and when Argo CD deployed the step (a new soak window)."""
        self.now = now
        self.app = replace(self.app, history=((self.head, deployed),))

    def application(self, name: str, namespace: str) -> AppStatus | None:
        self.reads["application"] += 1
        return self.app if name == self.app.name else None

    def inference_service(self, namespace: str, name: str) -> IsvcStatus | None:
        self.reads["inference_service"] += 1
        return self.service if (namespace, name) == (self.service.namespace, self.service.name) else None


@dataclass
class StubAnalysis:
    """Prometheus says the canary is fine; notes when it said so (t0)."""

    calls: int = 0
    passed_at: float | None = None

    def __call__(self, url: str, canary: Canary, request: AnalysisRequest) -> Verdict:
        self.calls += 1
        row = Measurement("error-ratio", "sum(rate(...))", 0.001, 0.001, "≤ 0.01", True)
        verdict = Verdict(True, (row,), request.start, request.end)
        self.passed_at = time.perf_counter()
        return verdict


@dataclass
class StubForge:
    """A pull-request forge that notes when a change was proposed (t1), and what."""

    proposed: list[tuple[float, str, str]] = field(default_factory=list)  # (t1, title, head)

    def propose(self, change: Change, head: str) -> str:
        self.proposed.append((time.perf_counter(), change.title, head))
        return f"pull request #{len(self.proposed)}"

    def withdraw(self, close: object) -> None:
        return None

    def note(self, key: object, message: str) -> None:
        return None

    def alert(self, alert: object) -> None:
        return None

    def verdict(self, change: Change) -> None:
        return None

    def quality(self, change: Change, head: str) -> None:
        return None

    def merge_when_ready(self, change: Change, head: str) -> None:
        return None

    def deployment(self, d: object) -> None:
        return None


def count_git(repo: EnvRepo, counter: Counter[str]) -> None:
    """Count the git commands the repo runs through its two helpers (this instance only)."""
    run, run_input = repo._git, repo._git_input

    def counted(*args: str, **kwargs: object) -> str:
        counter[args[0]] += 1
        return run(*args, **kwargs)  # type: ignore[arg-type]

    def counted_input(args: list[str], stdin: str, env: dict[str, str] | None = None) -> str:
        counter[args[0]] += 1
        return run_input(args, stdin, env)

    repo._git, repo._git_input = counted, counted_input  # type: ignore[method-assign]


# --- one N -------------------------------------------------------------------------------------


@dataclass
class Row:
    n: int
    setup: str
    first: float  # seconds: the first pass, apart
    to_pr: list[float]  # (a) per repetition
    passes: list[float]  # (b) per repetition
    push: list[float]
    fetch: list[float]
    reads: tuple[int, ...]  # application, inference_service, analyse, registry models, versions
    git_calls: int

    @property
    def floor(self) -> float:
        return statistics.median(self.push) + statistics.median(self.fetch)


READS = ("app", "isvc", "analyse", "models", "versions")


def bench_walk(tmp_path: Path) -> None:
    rows = [_measure(tmp_path / f"n{n}", n) for n in SIZES]
    print("\n  walk: one canary step (10% -> 50%) of one model, production writing back by pull request")
    print(f"  (median of {REPEAT} passes after a first; floors: one-file commit pushed as a new branch, and a fetch)")
    head = (
        f"  {'N':>6} {'(a) passed->PR':>15} {'(b) pass':>10} {'first':>8} {'floor':>8} {'push':>7} {'fetch':>7}"
        f" {'(b)/floor':>10} {'(b)/(b)@' + str(rows[0].n):>10}  reads per pass ({'/'.join(READS)}); git commands"
    )
    print(head)
    base = statistics.median(rows[0].passes)
    for r in rows:
        a, b = statistics.median(r.to_pr), statistics.median(r.passes)
        push, fetch = statistics.median(r.push), statistics.median(r.fetch)
        print(
            f"  {r.n:>6} {a * 1000:>12.0f} ms {b * 1000:>7.0f} ms {r.first * 1000:>5.0f} ms {r.floor * 1000:>5.0f} ms"
            f" {push * 1000:>4.0f} ms {fetch * 1000:>4.0f} ms {b / r.floor:>9.1f}x {b / base:>9.2f}x"
            f"  {'/'.join(map(str, r.reads))}; {r.git_calls}"
        )
    for r in rows:
        print(f"  N={r.n}: set up {r.setup}")
        print(f"    (a) ms: {', '.join(f'{x * 1000:.0f}' for x in r.to_pr)}")
        print(f"    (b) ms: {', '.join(f'{x * 1000:.0f}' for x in r.passes)}")
    print("  target (issue 13): (a) <= 300 ms; (b) independent of N")
    # One walk's reads do not grow with the fleet: the same at every N.
    assert len({r.reads for r in rows}) == 1, [(r.n, r.reads) for r in rows]


def _measure(tmp: Path, n: int) -> Row:
    tmp.mkdir(parents=True)
    walking = model_name(n - 1)
    setup = []
    start = time.perf_counter()
    catalog = tmp / "catalog" / "releasebot.yaml"
    catalog.parent.mkdir()
    catalog.write_text(walk_catalog(n))
    seed, remote, work, floor = tmp / "seed", tmp / "remote.git", tmp / "work", tmp / "floor"
    init_environments(seed, catalog)
    setup.append(f"init {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    settle(seed, n, {(model_name(i), v): run_id(model_name(i), str(v)) for i in range(n) for v in (1, 2)})
    setup.append(f"settle {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    report = validate_repo(seed)
    assert report.ok, report.problems[:5]
    setup.append(f"validate {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    subprocess.run(["git", "clone", "--quiet", "--bare", str(seed), str(remote)], check=True)
    subprocess.run(["git", "clone", "--quiet", str(remote), str(work)], check=True)
    subprocess.run(["git", "clone", "--quiet", str(remote), str(floor)], check=True)
    repo = EnvRepo(local_or_url(str(remote)), work)
    registry = StubRegistry(n, walking)
    forge = StubForge()

    # The walk starts as a merged release would start it: planned for @champion on 2, on main.
    _, start_plan = make_plan(repo, lambda cat: registry, ENV, walking)
    [begin] = start_plan.changes
    assert begin.title == f"Release {walking} v2 to {ENV}: canary 10% (1 of 4)", begin.title
    repo.commit_to_main(begin)
    path = isvc.path_of(ENV, walking)
    text = git(remote, "show", f"main:{path}")
    now = served(text, path)
    assert (now.version, now.stable, now.step, now.canary) == ("2", "1", 0, 10), now
    assert not check_manifest(path, load(text, path))
    head = git(remote, "rev-parse", "main").strip()
    setup.append(f"clones and the walk's start {time.perf_counter() - start:.1f} s")

    cluster = StubCluster(n, walking, head)
    analysis = StubAnalysis()
    watch = Watch(cluster, analysis, lambda: cluster.now)
    git_calls: Counter[str] = Counter()
    count_git(repo, git_calls)
    branch = f"releasebot/{ENV}/{walking}/release"
    step_title = f"Step {walking} v2 in {ENV} to 50% (2 of 4)"

    def one_pass(i: int) -> tuple[float, float, tuple[int, ...], int]:
        # Not measured: the step's branch is gone, and the soak ends now (a new window each time).
        git(remote, "update-ref", "-d", f"refs/heads/{branch}")
        git(work, "update-ref", "-d", f"refs/remotes/origin/{branch}")
        clock = datetime.now(UTC)
        cluster.at(clock, clock - INTERVAL - timedelta(seconds=i + 1))
        cluster.reads.clear()
        git_calls.clear()
        analysis.calls, analysis.passed_at = 0, None
        registry.models_asked = registry.versions_asked = 0
        proposed = len(forge.proposed)

        started = time.perf_counter()
        result = reconcile(repo, lambda cat: registry, lambda mode: forge, ENV, walking, watch)
        wall = time.perf_counter() - started

        assert len(forge.proposed) == proposed + 1, (result.plan.changes, result.plan.notes, result.plan.walks)
        t1, title, sha = forge.proposed[-1]
        assert title == step_title, title
        assert git(remote, "rev-parse", f"refs/heads/{branch}").strip() == sha
        assert analysis.passed_at is not None
        reads = (
            cluster.reads["application"],
            cluster.reads["inference_service"],
            analysis.calls,
            registry.models_asked,
            registry.versions_asked,
        )
        return t1 - analysis.passed_at, wall, reads, sum(git_calls.values())

    def floors(i: int) -> tuple[float, float]:
        with (floor / path).open("a") as f:
            f.write(f"# {uuid.uuid4().hex}\n")
        git(floor, *GIT_ID, "commit", "--quiet", "-am", "floor")
        started = time.perf_counter()
        git(floor, "push", "--quiet", "origin", "HEAD:refs/heads/bench-floor")
        push = time.perf_counter() - started
        git(remote, "update-ref", "-d", "refs/heads/bench-floor")
        started = time.perf_counter()
        git(floor, "fetch", "--prune", "--quiet", "origin", "+refs/heads/*:refs/remotes/origin/*")
        fetch = time.perf_counter() - started
        git(floor, "reset", "--quiet", "--hard", "origin/main")
        return push, fetch

    profile = PROFILE and n == SIZES[-1]

    def profiled(what: str, i: int) -> tuple[float, float, tuple[int, ...], int]:
        """Pass ``i``, under cProfile with its profile printed (its times are then not comparable)."""
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            return one_pass(i)
        finally:
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
            print(f"\n  profile of {what} at N={n}:\n{out.getvalue()}")

    _, first, first_reads, _ = profiled("the first pass", 0) if profile else one_pass(0)
    to_pr, passes, pushes, fetches, reads_seen, git_seen = [], [], [], [], set(), set()
    for i in range(1, REPEAT + 1):
        a, b, reads, calls = one_pass(i)
        to_pr.append(a)
        passes.append(b)
        reads_seen.add(reads)
        git_seen.add(calls)
        push, fetch = floors(i)
        pushes.append(push)
        fetches.append(fetch)
    assert reads_seen == {first_reads}, (first_reads, reads_seen)
    assert len(git_seen) == 1, git_seen

    if profile:
        profiled("a later pass", REPEAT + 1)

    return Row(n, ", ".join(setup), first, to_pr, passes, pushes, fetches, first_reads, git_seen.pop())
