"""The worker behind ``releasebot serve``: comment commands and the ``releasebot/validate`` check
run, with a real MLflow server, a real environments repo and GitHub mocked to its own schema."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bot.errors import InvalidInput
from bot.intake import CheckRequest, CommandRequest
from bot.metrics import Metrics
from bot.serve import build_receiver, load_config
from bot.server import Receiver, Settings, create_app
from bot.service import Service
from bot.work import LocalWork
from tests.github_api import GitHubMock, check_run, example, permission, pull_request
from tests.test_release_loop import World, git
from tests.test_server import GH_SECRET, ML_SECRET, recorded

REPO = {"owner": "acme", "repo": "envs"}
STAGING_RELEASE = "releasebot/staging/fraud/release"


@pytest.fixture
def world(mlflow_url: str, tmp_path: Path, run_cli) -> World:
    return World(mlflow_url, tmp_path, run_cli)


def service(world: World, metrics: Metrics | None = None) -> Service:
    config = {
        "RELEASEBOT_REPO": str(world.remote),
        "RELEASEBOT_WORKDIR": str(world.tmp / "served"),
        "MLFLOW_TRACKING_URI": world.url,
        "RELEASEBOT_GITHUB_TOKEN": "ghs_test",
    }
    return Service(config, metrics or Metrics())


def asked(gh: GitHubMock, user: str, level: str) -> None:
    gh.add("repos/get-collaborator-permission-level", {**REPO, "username": user}, 200, permission(user, level))


def replied(gh: GitHubMock, number: int, replies: list[str]) -> None:
    gh.add(
        "issues/create-comment",
        {**REPO, "issue_number": number},
        201,
        example("issue-comment"),
        check_request=lambda headers, body: replies.append(body["body"]),
    )


def validate_check(gh: GitHubMock, sha: str, run_id: int, conclusion: str, sent: list[dict]) -> None:
    """GitHub's side of one releasebot/validate check on ``sha``: none there yet, one created, then
    concluded; what releasebot sends for both goes in ``sent``."""
    listed = {"total_count": 0, "check_runs": []}
    gh.add("checks/list-for-ref", {**REPO, "ref": sha}, 200, listed, query={"check_name": "releasebot/validate"})
    gh.add("checks/create", REPO, 201, check_run(run_id, sha), check_request=lambda h, b: sent.append(b))
    gh.add(
        "checks/update",
        {**REPO, "check_run_id": run_id},
        200,
        check_run(run_id, sha, "completed", conclusion),
        check_request=lambda h, b: sent.append(b),
    )


def command(line: str, number: int = 9, user: str = "dana", on_pr: bool = True, body: str = "") -> CommandRequest:
    return CommandRequest(f"d-{number}-{line}", number, on_pr, user, line, body)


def released(world: World) -> tuple[str, str]:
    v1, v2 = world.version(0.9), world.version(0.93)
    for v in (v1, v2):
        world.alias("champion", v)
        assert world.reconcile().code == 0
        world.merge(STAGING_RELEASE)
    return v1, v2


def test_a_command_from_a_user_without_write_permission_is_refused_with_a_reply(world: World) -> None:
    released(world)
    refs, replies = world.refs(), []
    with GitHubMock() as gh:
        gh.passthru(world.url)
        asked(gh, "mallory", "read")
        replied(gh, 9, replies)
        metrics = Metrics()
        service(world, metrics).command(command("/releasebot rollback", user="mallory"))
        assert gh.checked == 2
    assert replies == [
        "@mallory releasebot commands need write permission on acme/envs; you have `read`. Nothing was done."
    ]
    assert world.refs() == refs  # nothing was written
    assert metrics.commands.labels("any", "refused")._value.get() == 1


def test_rollback_on_a_release_pull_request_pins_the_previous_version(world: World) -> None:
    v1, v2 = released(world)
    replies: list[str] = []
    with GitHubMock() as gh:
        gh.passthru(world.url)
        asked(gh, "dana", "write")
        gh.add("pulls/get", {**REPO, "pull_number": 9}, 200, pull_request(9, STAGING_RELEASE, "t", "b"))
        replied(gh, 9, replies)
        service(world).command(command("/releasebot rollback"))
    assert replies[0].startswith("> /releasebot rollback\n\n@dana: pushed Roll back fraud in staging to v")
    pin = world.show("refs/heads/releasebot/staging/fraud/pin", "staging/fraud/inferenceservice.yaml")
    assert f"releasebot.dev/pinned-version: '{v1}'" in pin and f"releasebot.dev/blocked-versions: '{v2}'" in pin


def test_hold_resume_status_and_a_bad_command_are_answered(world: World) -> None:
    _, v2 = released(world)
    replies: list[str] = []
    alert_issue = "drift table\n<!-- releasebot:alert=staging/fraud -->"
    svc = service(world)
    with GitHubMock() as gh:
        gh.passthru(world.url)
        for _ in range(4):
            asked(gh, "dana", "admin")
            replied(gh, 5, replies)
        svc.command(command("/releasebot hold", number=5, on_pr=False, body=alert_issue))
        world.merge("releasebot/staging/fraud/pin")
        svc.command(command("/releasebot status", number=5, on_pr=False, body=alert_issue))
        svc.command(command("/releasebot dance", number=5, on_pr=False, body=alert_issue))
        svc.command(command("/releasebot resume", number=5, on_pr=False, body=""))
    assert f"pushed Hold fraud in staging at v{v2}: alias moves wait" in replies[0]
    status = replies[1].splitlines()
    assert status[2] == "@dana: | environment | model | serving | alias | held | blocked | proposed | drift | walk |"
    assert status[4] == f"| staging | fraud | {v2} | champion → {v2} | {v2} | - | - | - | - |"
    assert "`dance` is not a command; use `/releasebot status | plan | rollback [VERSION]" in replies[2]
    assert "`resume` works on releasebot's pull requests and drift alert issues; this is neither." in replies[3]


def test_the_validate_check_run_annotates_file_and_line(world: World) -> None:
    clone = world.tmp / "author"
    git(world.tmp, "clone", "--quiet", str(world.remote), str(clone))
    path = clone / "staging/fraud/inferenceservice.yaml"
    lines = path.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("minReplicas:"))
    lines[at] = lines[at].split("minReplicas:")[0] + "minReplicas: many\n"
    path.write_text("".join(lines))
    git(clone, "checkout", "-q", "-b", "tune")
    git(clone, "-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qam", "tune")
    git(clone, "push", "-q", "origin", "tune")
    sha = git(clone, "rev-parse", "HEAD").strip()
    sent: list[dict] = []
    with GitHubMock() as gh:
        gh.passthru(world.url)
        validate_check(gh, sha, 41, "failure", sent)
        metrics = Metrics()
        service(world, metrics).validate(CheckRequest(sha, "tune", 12))
    assert sent[0] == {"name": "releasebot/validate", "head_sha": sha, "status": "in_progress"}
    assert sent[1]["status"] == "completed" and sent[1]["conclusion"] == "failure"
    [note] = sent[1]["output"]["annotations"]
    assert note["path"] == "staging/fraud/inferenceservice.yaml" and note["start_line"] == at + 1
    assert "many" in note["message"] and note["annotation_level"] == "failure"
    assert metrics.checks.labels("failure")._value.get() == 1

    with GitHubMock() as gh:  # main itself is valid
        gh.passthru(world.url)
        main = git(world.remote, "rev-parse", "main").strip()
        gh.add(
            "checks/list-for-ref",
            {**REPO, "ref": main},
            200,
            {"total_count": 0, "check_runs": []},
            query={"check_name": "releasebot/validate"},
        )
        gh.add("checks/create", REPO, 201, check_run(42, main))
        gh.add(
            "checks/update",
            {**REPO, "check_run_id": 42},
            200,
            check_run(42, main, "completed", "success"),
            check_request=lambda h, b: sent.append(b),
        )
        service(world).validate(CheckRequest(main, "main", None))
    assert sent[-1]["conclusion"] == "success" and sent[-1]["output"]["annotations"] == []


def test_config_file_environment_and_refusals(tmp_path: Path) -> None:
    file = tmp_path / "releasebot.env.yaml"
    file.write_text("RELEASEBOT_REPO: /srv/envs\nMLFLOW_TRACKING_URI: http://mlflow:5000\n")
    config = load_config({"MLFLOW_TRACKING_URI": "http://other:5000", "HOME": "/root"}, file)
    assert config == {"RELEASEBOT_REPO": "/srv/envs", "MLFLOW_TRACKING_URI": "http://other:5000"}
    file.write_text("RELEASEBOT_REPO: /srv/envs\nRELEASEBOT_GITHUB_WEBHOOK_SECRT: typo\n")
    with pytest.raises(InvalidInput) as err:
        load_config({}, file)
    assert str(err.value.problems[0]).startswith(f"{file}:2: $.RELEASEBOT_GITHUB_WEBHOOK_SECRT: unknown setting")
    with pytest.raises(Exception, match="RELEASEBOT_GITHUB_WEBHOOK_SECRET and RELEASEBOT_MLFLOW_WEBHOOK_SECRET"):
        build_receiver({"RELEASEBOT_GITHUB_WEBHOOK_SECRET": "x"})


def test_a_signed_merge_group_delivery_reports_releasebot_validate_on_the_groups_head(world: World) -> None:
    # The merge queue's group head: main merged with a person's pull request, on the queue's branch.
    clone = world.tmp / "queue"
    git(world.tmp, "clone", "--quiet", str(world.remote), str(clone))
    main = git(clone, "rev-parse", "HEAD").strip()
    git(clone, "checkout", "-q", "-b", "tune")
    (clone / "notes.md").write_text("why we tune\n")
    git(clone, "add", "notes.md")
    git(clone, "-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qm", "tune")
    branch = f"gh-readonly-queue/main/pr-4-{main}"
    git(clone, "checkout", "-q", "-b", branch, "main")
    git(
        clone, "-c", "user.name=Q", "-c", "user.email=q@example.com", "merge", "-q", "--no-ff", "-m", "Merge #4", "tune"
    )
    git(clone, "push", "-q", "origin", branch)
    head = git(clone, "rev-parse", "HEAD").strip()
    payload = recorded("merge_group_checks_requested.payload.json")
    payload["merge_group"].update(head_sha=head, head_ref=f"refs/heads/{branch}", base_ref="refs/heads/main")
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()

    svc = service(world)
    receiver = Receiver(Settings(GH_SECRET, ML_SECRET, resync_seconds=3600), LocalWork(svc, svc.catalog))
    sent: list[dict] = []
    with GitHubMock() as gh, TestClient(create_app(receiver)) as client:
        gh.passthru(world.url)
        validate_check(gh, head, 43, "success", sent)
        headers = {"X-GitHub-Event": "merge_group", "X-GitHub-Delivery": "q-1", "X-Hub-Signature-256": signature}
        response = client.post("/webhooks/github", content=body, headers=headers)
        assert response.status_code == 202 and response.json()["queued"] == [f"validate {head[:12]}"]
        assert receiver.queue.join_idle(60)
    assert sent[0] == {"name": "releasebot/validate", "head_sha": head, "status": "in_progress"}
    assert (sent[1]["status"], sent[1]["conclusion"]) == ("completed", "success")
    assert f"at {head[:12]}" in sent[1]["output"]["summary"]
