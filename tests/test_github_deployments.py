"""Walk steps as GitHub deployments: created once, a status only when the state changes, and a
model's earlier deployments retired when a step succeeds. Every request and mocked response
matches GitHub's OpenAPI description, and every mocked call must be made."""

from __future__ import annotations

from bot.plan import Key
from bot.plan.types import Deployment
from tests.github_api import BASE, GitHubMock, example
from tests.test_github_forge import REPO, forge

KEY = Key("production", "fraud", "release")
SHA = "5" * 40
OLDER = "4" * 40


def step(state: str = "in_progress", sha: str = SHA, step: str = "1/4", percent: int | None = 10) -> Deployment:
    return Deployment(KEY, sha, "3", step, percent, state, f"fraud v3 canary {percent}% in production")


def deployment(number: int, sha: str = SHA, model: str = "fraud") -> dict:
    found = example("deployment-items")[0]
    url = f"{BASE}/repos/acme/envs/deployments/{number}"
    found.update(id=number, sha=sha, ref=sha, task=f"deploy:{model}", environment="production", url=url)
    found.update(statuses_url=f"{url}/statuses", repository_url=f"{BASE}/repos/acme/envs", payload={"model": model})
    found["original_environment"] = "production"
    return found


def status(number: int, deployment_id: int, state: str) -> dict:
    found = example("deployment-status")
    url = f"{BASE}/repos/acme/envs/deployments/{deployment_id}"
    found.update(id=number, state=state, url=f"{url}/statuses/{number}", deployment_url=url)
    return found


def listing(gh: GitHubMock, found: list[dict], sha: str | None = SHA) -> None:
    query = {"task": "deploy:fraud", "environment": "production"} | ({"sha": sha} if sha else {})
    gh.add("repos/list-deployments", REPO, 200, found, query=query)


def statuses(gh: GitHubMock, deployment_id: int, found: list[dict]) -> None:
    gh.add("repos/list-deployment-statuses", {**REPO, "deployment_id": deployment_id}, 200, found)


def posted(gh: GitHubMock, deployment_id: int, state: str, sent: list) -> None:
    gh.add(
        "repos/create-deployment-status",
        {**REPO, "deployment_id": deployment_id},
        201,
        status(900 + len(sent), deployment_id, state),
        check_request=lambda h, b: sent.append((deployment_id, b)),
    )


def test_a_new_step_creates_its_deployment_in_progress() -> None:
    created, sent = [], []
    with GitHubMock() as gh:
        listing(gh, [])
        gh.add(
            "repos/create-deployment",
            REPO,
            201,
            deployment(101),
            check_request=lambda h, b: created.append(b),
        )
        posted(gh, 101, "in_progress", sent)
        said = forge().deployment(step())
    assert created == [
        {
            "ref": SHA,
            "task": "deploy:fraud",
            "auto_merge": False,
            "required_contexts": [],
            "payload": {"model": "fraud", "version": "3", "step": "1/4", "percent": 10},
            "environment": "production",
            "description": "fraud v3 canary 10% in production",
            "transient_environment": False,
        }
    ]
    assert sent == [
        (
            101,
            {
                "state": "in_progress",
                "target_url": f"https://github.com/acme/envs/commit/{SHA}",
                "description": "fraud v3 canary 10% in production",
                "auto_inactive": False,  # GitHub's default would retire the other models' deployments
            },
        )
    ]
    assert said == f"created GitHub deployment 101 of production/fraud v3 step 1/4 at {SHA[:12]}: in_progress"


def test_success_retires_the_models_earlier_deployments_and_nothing_else() -> None:
    sent: list = []
    with GitHubMock() as gh:
        listing(gh, [deployment(101)])
        statuses(gh, 101, [status(2, 101, "in_progress")])
        posted(gh, 101, "success", sent)
        # The model's deployments in the environment, newest first; the filter names the model's
        # task, so another model's deployments in production are never even listed.
        earlier = [deployment(101), deployment(90, OLDER), deployment(85, "3" * 40), deployment(80, "2" * 40)]
        listing(gh, [*earlier, deployment(70, "1" * 40)], sha=None)
        statuses(gh, 90, [status(1, 90, "in_progress"), status(5, 90, "success")])
        posted(gh, 90, "inactive", sent)
        statuses(gh, 85, [status(3, 85, "failure")])  # a step that failed: not serving, left be
        statuses(gh, 80, [status(4, 80, "inactive")])  # retired before: so was everything older (70 is not read)
        said = forge().deployment(step("success"))
    assert [(d, b["state"]) for d, b in sent] == [(101, "success"), (90, "inactive")]
    assert sent[1][1]["description"] == "fraud v3 serves production now" and sent[1][1]["auto_inactive"] is False
    assert said == (
        f"updated GitHub deployment 101 of production/fraud v3 step 1/4 at {SHA[:12]}: success; "
        "marked earlier deployment(s) 90 inactive"
    )


def test_a_failed_step_says_failure_and_retires_nothing() -> None:
    sent: list = []
    with GitHubMock() as gh:
        listing(gh, [deployment(101)])
        statuses(gh, 101, [status(2, 101, "in_progress")])
        posted(gh, 101, "failure", sent)
        said = forge().deployment(step("failure"))
    assert [(d, b["state"]) for d, b in sent] == [(101, "failure")]
    assert said.endswith(": failure")


def test_asking_again_writes_nothing() -> None:
    with GitHubMock() as gh:  # only reads: another deployment or status would be an unexpected request
        listing(gh, [deployment(101)])
        statuses(gh, 101, [status(2, 101, "in_progress"), status(7, 101, "success")])
        assert forge().deployment(step("success")) is None
        assert gh.checked == 2


def test_two_deployments_of_one_step_by_racing_replicas_settle_on_the_oldest() -> None:
    sent: list = []
    with GitHubMock() as gh:
        listing(gh, [deployment(102), deployment(101)])
        statuses(gh, 101, [status(2, 101, "in_progress")])
        posted(gh, 101, "success", sent)
        listing(gh, [deployment(102), deployment(101)], sha=None)
        statuses(gh, 102, [status(3, 102, "in_progress")])
        posted(gh, 102, "inactive", sent)
        said = forge().deployment(step("success"))
    assert [(d, b["state"]) for d, b in sent] == [(101, "success"), (102, "inactive")]
    assert said.endswith("marked earlier deployment(s) 102 inactive")
