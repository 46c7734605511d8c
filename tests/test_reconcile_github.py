"""A plan's between-environment work carried out on GitHub by one reconcile pass: a pushed release
with a passed quality gate and auto-merge, a held branch with auto-merge, and a walk step's
deployment. The plan is made by hand (the planner's side is tested with plain data); the repo is a
real git remote, and GitHub is mocked to its REST description and GraphQL schema."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import bot.reconcile
from bot.catalog import load_catalog
from bot.forge import forges, record_proposed
from bot.forge.github import GitHubForge, TokenSource
from bot.plan import Change, FileEdit, Key, Plan
from bot.plan.types import Deployment, Gate, GateRow
from bot.reconcile import reconcile
from bot.repo import EnvRepo
from tests.conftest import EXAMPLE_CATALOG
from tests.github_api import GitHubMock, check_run, example, pull_request, pull_simple
from tests.github_graphql import mock as graphql
from tests.test_github_deployments import deployment as deployment_items
from tests.test_github_deployments import status
from tests.test_github_merging import ENABLED

REPO = {"owner": "acme", "repo": "envs"}
PROD, STAGING = Key("production", "fraud", "release"), Key("staging", "fraud", "release")
FILE = "production/fraud/inferenceservice.yaml"
HELD = "9" * 40
MAIN_STEP = "7" * 40


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> EnvRepo:
    remote = tmp_path / "envs.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(remote), str(seed))
    (seed / FILE).parent.mkdir(parents=True)
    (seed / FILE).write_text("version: '2'\n")
    git(seed, "add", "--all")
    git(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "seed")
    git(seed, "push", "-q", "origin", "HEAD:main")
    found = EnvRepo(str(remote), tmp_path / "work")
    found.sync()
    return found


def release(key: Key, fp: str, **fields) -> Change:
    title = f"Release fraud v3 to {key.environment}"
    body = f"evidence\n<!-- releasebot:fingerprint={fp} -->"
    edit = FileEdit(FILE, "version: '2'\n", "version: '3'\n", ("version",))
    return Change(key, "pull-request", (edit,), "3", "2", title, title, body, fp, **fields)


def test_one_pass_proposes_reports_the_gate_enables_auto_merge_and_records_the_deployment(
    repo: EnvRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(PROD, "3", "2", True, (GateRow("accuracy", "0.94", "0.93", "≥ baseline", True),), "passed 1 of 1")
    pushed = release(PROD, "aaaa", auto_merge=True, gate=gate)
    held = release(STAGING, "bbbb", auto_merge=True, held=HELD)
    step = Deployment(STAGING, MAIN_STEP, "3", "promoted", 100, "in_progress", "fraud v3 promoted in staging")
    plan = Plan(changes=(pushed,), closes=(), notes=(), held=(held,), deployments=(step,))
    cat = load_catalog(EXAMPLE_CATALOG)
    monkeypatch.setattr(bot.reconcile, "observe_plan", lambda *args: (cat, None, None, plan))
    github = GitHubForge(repo, "acme/envs", TokenSource(token="ghs_test"), throttle=False)

    def head() -> str:
        return git(Path(repo.remote), "rev-parse", f"refs/heads/{PROD.branch}")

    def pr(number: int, key: Key, change: Change, sha: str, auto_merge: dict | None = None) -> dict:
        found = pull_simple(number, key.branch, change.title, change.body)
        found["head"]["sha"], found["auto_merge"] = sha, auto_merge
        return found

    enabled = {"enabled_by": example("pull-request")["user"], "merge_method": "merge"}
    enabled |= {"commit_title": "t", "commit_message": "m"}
    checks, merges, deployments = [], [], []
    with GitHubMock() as gh:
        # The pushed release is proposed...
        gh.add("pulls/list", REPO, 200, [], query={"head": f"acme:{PROD.branch}"})
        gh.add("pulls/create", REPO, 201, pull_request(7, PROD.branch, pushed.title, pushed.body))
        # ...the held branch, never recorded as proposed, is found proposed and up to date...
        gh.add("pulls/list", REPO, 200, [pr(8, STAGING, held, HELD)], query={"head": f"acme:{STAGING.branch}"})
        # ...the gate's evidence goes on the pushed head, then auto-merge is enabled there...
        listed = {"total_count": 0, "check_runs": []}
        gh.add("checks/list-for-ref", {**REPO, "ref": re.compile("[0-9a-f]{40}")}, 200, listed)
        gh.add("checks/create", REPO, 201, check_run(71, "0" * 40), check_request=lambda h, b: checks.append(b))
        gh.add("pulls/list", REPO, 200, lambda: [pr(7, PROD, pushed, head())], query={"head": f"acme:{PROD.branch}"})
        graphql(gh, data=ENABLED, check_request=lambda doc, variables: merges.append(variables["input"]))
        # ...the held one has auto-merge already...
        on = [pr(8, STAGING, held, HELD, enabled)]
        gh.add("pulls/list", REPO, 200, on, query={"head": f"acme:{STAGING.branch}"})
        # ...and the walk step is a deployment to staging.
        query = {"sha": MAIN_STEP, "task": "deploy:fraud", "environment": "staging"}
        gh.add("repos/list-deployments", REPO, 200, [], query=query)
        made = example("deployment-items")[0] | {
            "id": 55,
            "url": "https://api.github.com/repos/acme/envs/deployments/55",
        }
        gh.add("repos/create-deployment", REPO, 201, made, check_request=lambda h, b: deployments.append(b))
        gh.add("repos/create-deployment-status", {**REPO, "deployment_id": 55}, 201, example("deployment-status"))
        result = reconcile(repo, lambda cat: None, forges(repo, {}, github_forge=github))  # type: ignore[arg-type]
    sha = head()
    assert result.done == [
        "pushed Release fraud v3 to production: opened pull request #7 (https://github.com/acme/envs/pull/7)",
        f"proposed {STAGING.branch} at {HELD[:12]}: pull request #8 is up to date",
        f"reported releasebot/quality (success) on {sha[:12]}",
        f"enabled auto-merge on pull request #7 at {sha[:12]}: GitHub merges it once its checks pass",
        f"created GitHub deployment 55 of staging/fraud v3 step promoted at {MAIN_STEP[:12]}: in_progress",
    ]
    assert [c["head_sha"] for c in checks] == [sha] and merges[0]["expectedHeadOid"] == sha
    assert deployments[0]["ref"] == MAIN_STEP and deployments[0]["environment"] == "staging"


def test_a_pass_without_github_configured_skips_the_deployments(repo: EnvRepo, monkeypatch) -> None:
    step = Deployment(STAGING, MAIN_STEP, "3", "promoted", 100, "success", "fraud v3 promoted in staging")
    plan = Plan(changes=(), closes=(), notes=(), deployments=(step,))
    monkeypatch.setattr(bot.reconcile, "observe_plan", lambda *args: (load_catalog(EXAMPLE_CATALOG), None, None, plan))
    result = reconcile(repo, lambda cat: None, lambda mode: None)  # type: ignore[arg-type]
    assert result.done == [] and result.skipped == []


def test_github_refusing_auto_merge_is_said_and_the_rest_of_the_pass_goes_on(
    repo: EnvRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = release(STAGING, "bbbb", auto_merge=True, held=HELD)
    step = Deployment(STAGING, MAIN_STEP, "3", "promoted", 100, "success", "fraud v3 promoted in staging")
    plan = Plan(changes=(), closes=(), notes=(), held=(held,), deployments=(step,))
    monkeypatch.setattr(bot.reconcile, "observe_plan", lambda *args: (load_catalog(EXAMPLE_CATALOG), None, None, plan))
    record_proposed(repo.cache_dir, STAGING.branch, HELD)  # proposed before: no look-up for that
    github = GitHubForge(repo, "acme/envs", TokenSource(token="ghs_test"), throttle=False)
    found = pull_simple(8, STAGING.branch, held.title, held.body)
    found["head"]["sha"] = HELD
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [found], query={"head": f"acme:{STAGING.branch}"})
        graphql(gh, error="Pull request User is not allowed to push to this repository")
        query = {"sha": MAIN_STEP, "task": "deploy:fraud", "environment": "staging"}
        done = deployment_items(55)
        gh.add("repos/list-deployments", REPO, 200, [done], query=query)
        gh.add("repos/list-deployment-statuses", {**REPO, "deployment_id": 55}, 200, [status(5, 55, "success")])
        result = reconcile(repo, lambda cat: None, forges(repo, {}, github_forge=github))  # type: ignore[arg-type]
    assert result.done == []
    assert result.skipped == [
        "GitHub 400: enable auto-merge on #8: Pull request User is not allowed to push to this repository"
    ]
