"""Registering the GitHub App: the manifest subscribes to what releasebot routes with the permissions
GitHub requires, `app manifest` fills in an installation's URLs, serve's setup page says the next
step without touching the code, and `app exchange` turns GitHub's code into files for the Secret."""

from __future__ import annotations

import html
import json
import re
import stat
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bot import githubapp, intake
from bot.server import GITHUB_EVENTS, Receiver, Settings, create_app
from bot.work import LocalWork
from tests.github_api import SPEC, GitHubMock, example
from tests.test_server import CAT, HOOKS, RecordingWorker

# GitHub sends these to every App, subscribed or not (GitHub Docs, "Webhook events and payloads").
ALWAYS_SENT = {"installation", "ping"}
# Subscribed ahead of routing: the merge queue's checks (issue 14) come with the merge-queue
# intake. Until then serve answers them 202 with no work, as any event it does not route.
ACKNOWLEDGED = {"merge_group"}
# The repository permission GitHub requires, at least read, to subscribe an App to each event:
# GitHub Docs, "Webhook events and payloads", each event's "Availability" ("To subscribe to this
# event, a GitHub App must have at least read-level access for the ... repository permission").
EVENT_PERMISSION = {
    "check_run": "checks",
    "check_suite": "checks",
    "issue_comment": "issues",
    "merge_group": "merge_queues",
    "pull_request": "pull_requests",
    "pull_request_review": "pull_requests",
    "push": "contents",
    "status": "statuses",
}
SHIPPED = githubapp.template()


def _routed_payload(event: str) -> dict:
    """A delivery of ``event`` that releasebot has work for (recorded where there is a recording)."""
    if event == "pull_request":
        payload = json.loads((HOOKS / "pull_request_opened.payload.json").read_text())
        payload["pull_request"]["base"]["ref"] = "main"
        return payload
    if event == "pull_request_review":
        payload = json.loads((HOOKS / "pull_request_review_approved.json").read_text())
        payload["pull_request"]["head"]["ref"] = "releasebot/production/fraud-detector/release"
        return payload
    if event == "push":
        payload = json.loads((HOOKS / "push_with-new-branch.payload.json").read_text())
        payload["ref"] = "refs/heads/main"
        payload["commits"][0]["modified"] = ["staging/credit-risk/inferenceservice.yaml"]
        return payload
    if event == "check_run":
        return json.loads((HOOKS / "check_run_rerequested.payload.json").read_text())
    if event == "issue_comment":
        payload = json.loads((HOOKS / "issue_comment_comment.json").read_text())
        payload["comment"]["body"] = "/releasebot status"
        payload["comment"]["user"]["type"] = "User"
        return payload
    if event == "check_suite":
        suite = {"head_sha": "a" * 40, "head_branch": "releasebot/staging/fraud-detector/release"}
        return {"action": "completed", "check_suite": suite}
    if event == "status":
        return {"sha": "a" * 40, "branches": [{"name": "main"}]}
    raise AssertionError(f"no delivery of {event} to route")


def test_the_manifest_subscribes_to_exactly_the_events_releasebot_routes() -> None:
    events = set(SHIPPED["default_events"])
    assert events == (GITHUB_EVENTS - ALWAYS_SENT) | ACKNOWLEDGED
    for event in sorted(events - ACKNOWLEDGED):
        routed = intake.route_github(event, _routed_payload(event), CAT, "d-1")
        assert routed.models or routed.checks or routed.commands or routed.walks, f"{event}: {routed.note}"


def test_every_permission_is_a_github_app_permission_at_a_level_github_knows() -> None:
    known = SPEC["components"]["schemas"]["app-permissions"]["properties"]
    permissions = SHIPPED["default_permissions"]
    assert "pull_request" not in known and "pull_requests" in known  # the check can tell a typo
    for name, level in permissions.items():
        assert name in known, f"{name} is not a GitHub App permission"
        assert level in known[name]["enum"], f"{name}: {level} is not one of {known[name]['enum']}"


def test_each_event_comes_with_the_permission_github_requires_and_nothing_more_is_asked() -> None:
    permissions = SHIPPED["default_permissions"]
    for event in SHIPPED["default_events"]:
        assert permissions.get(EVENT_PERMISSION[event]) in ("read", "write"), event
    # Least privilege: what releasebot writes (bot branches, pull requests, check runs, drift
    # alerts and replies, deployments) and reads; no workflows, administration or secrets.
    assert permissions == {
        "contents": "write",
        "pull_requests": "write",
        "checks": "write",
        "issues": "write",
        "deployments": "write",
        "metadata": "read",
        "statuses": "read",
        "merge_queues": "read",
    }
    assert SHIPPED["public"] is False and SHIPPED["request_oauth_on_install"] is False


@pytest.mark.json_output("app manifest")
def test_app_manifest_fills_in_the_installation_s_urls_and_the_page_that_posts_it(run_cli, tmp_path: Path) -> None:
    form = tmp_path / "register.html"
    result = run_cli(
        "app",
        "manifest",
        "--url",
        "https://bot.acme.dev/releasebot/",
        "--org",
        "acme",
        "--form",
        form,
        "--output",
        "json",
    )
    assert result.code == 0, result.err
    out = result.json()
    app = out["manifest"]
    assert app["hook_attributes"] == {"url": "https://bot.acme.dev/releasebot/webhooks/github", "active": True}
    assert app["redirect_url"] == app["setup_url"] == "https://bot.acme.dev/releasebot/app/setup"
    assert app["name"] == "releasebot-acme"
    assert {k: v for k, v in app.items() if k not in ("hook_attributes", "redirect_url", "setup_url", "name")} == {
        k: v for k, v in SHIPPED.items() if k not in ("hook_attributes", "redirect_url", "setup_url", "name")
    }
    assert out["register_url"] == f"https://github.com/organizations/acme/settings/apps/new?state={out['state']}"
    page = form.read_text()
    assert "<script" not in page.lower()
    [action] = re.findall(r'<form action="([^"]*)" method="post">', page)
    assert html.unescape(action) == out["register_url"]
    [value] = re.findall(r'<input type="hidden" name="manifest" value="([^"]*)">', page)
    assert json.loads(html.unescape(value)) == app

    text = run_cli("app", "manifest", "--url", "https://bot.acme.dev", "--name", "acme-releases")
    assert text.code == 0 and '"name": "acme-releases"' in text.out
    assert "https://github.com/settings/apps/new" in text.out and "releasebot app exchange CODE" in text.out


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--url", "http://bot.acme.dev"], "expected an absolute https:// URL"),
        (["--url", "https://bot.acme.dev/?x=1"], "no query or fragment"),
        (["--url", "https://bot.acme.dev#top"], "no query or fragment"),
        (["--url", "https://user:pw@bot.acme.dev"], "no credentials"),
        (["--url", "bot.acme.dev"], "expected an absolute https:// URL"),
        (["--url", "https://bot.acme.dev:99999"], "is not a URL"),
        (["--url", "https://bot.acme.dev", "--org", "acme_ml"], "not a GitHub organisation name"),
        (["--url", "https://bot.acme.dev", "--name", "x" * 35], "1 to 34 printable characters"),
    ],
)
def test_app_manifest_refuses_a_bad_url_org_or_name_with_exit_2_and_writes_nothing(
    run_cli, tmp_path: Path, args: list[str], said: str
) -> None:
    form = tmp_path / "register.html"
    result = run_cli("app", "manifest", *args, "--form", form)
    assert result.code == 2 and said in result.err and result.out == ""
    assert "user:pw" not in result.err
    assert not form.exists()


def _client(catalog=lambda: CAT) -> TestClient:
    receiver = Receiver(Settings("gh", "ml", resync_seconds=3600), LocalWork(RecordingWorker(), catalog))
    return TestClient(create_app(receiver))


def test_every_url_of_the_manifest_is_one_serve_answers() -> None:
    app = githubapp.manifest("https://bot.acme.dev")
    with _client() as client:
        hook = client.post(app["hook_attributes"]["url"].removeprefix("https://bot.acme.dev"), content=b"{}")
        assert hook.status_code == 401  # there, and signed deliveries only
        for url in (app["redirect_url"], app["setup_url"]):
            assert client.get(url.removeprefix("https://bot.acme.dev")).status_code == 200


def test_the_setup_page_names_the_next_command_and_never_exchanges_the_code() -> None:
    def not_ready():
        raise RuntimeError("still cloning")

    # It needs no catalog: it answers while the worker is still starting. No GitHub mock is
    # active, so any request to GitHub would fail the test.
    with GitHubMock(), _client(not_ready) as client:
        page = client.get("/app/setup", params={"code": "a1b2c3d4e5", "state": "Xy_z-9"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "releasebot app exchange a1b2c3d4e5 --out releasebot-app" in page.text
        assert "State: <code>Xy_z-9</code>" in page.text and "<script" not in page.text.lower()
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"

        installed = client.get("/app/setup", params={"installation_id": "4242", "setup_action": "install"})
        assert installed.status_code == 200 and "RELEASEBOT_GITHUB_INSTALLATION_ID=4242" in installed.text

        for params in ({"code": "<script>alert(1)</script>"}, {"code": "ok", "state": '"><img src=x>'}):
            refused = client.get("/app/setup", params=params)
            assert refused.status_code == 400
            assert "<script>" not in refused.text and "<img" not in refused.text
        assert client.get("/app/setup", params={"installation_id": "12; DROP"}).status_code == 400


REPO_FILES = ("app-id", "private-key.pem", "webhook-secret", "mlflow-webhook-secret")


@pytest.mark.json_output("app exchange")
def test_app_exchange_writes_the_app_s_keys_for_the_secret_and_refuses_to_write_over_them(
    run_cli, tmp_path: Path
) -> None:
    answer = example("integration-from-manifest")
    out = tmp_path / "creds"
    with GitHubMock() as gh:
        gh.add("apps/create-from-manifest", {"code": "a1b2c3"}, 201, answer)
        result = run_cli("app", "exchange", "a1b2c3", "--out", out, "--output", "json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["app_id"] == answer["id"] and report["slug"] == answer["slug"]
    assert report["install_url"] == f"{answer['html_url']}/installations/new"
    assert sorted(p.name for p in out.iterdir()) == sorted(REPO_FILES)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in REPO_FILES:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    assert (out / "app-id").read_text() == str(answer["id"])  # no newline: the env var must be the id
    assert (out / "private-key.pem").read_text() == answer["pem"]
    assert (out / "webhook-secret").read_text() == answer["webhook_secret"]
    assert re.fullmatch(r"[0-9a-f]{64}", (out / "mlflow-webhook-secret").read_text())
    # The printed command puts each file under the key the Deployment reads, and no secret value.
    assert report["secret_keys"] == {
        "app-id": "RELEASEBOT_GITHUB_APP_ID",
        "private-key.pem": "github-app-private-key.pem",
        "webhook-secret": "RELEASEBOT_GITHUB_WEBHOOK_SECRET",
        "mlflow-webhook-secret": "RELEASEBOT_MLFLOW_WEBHOOK_SECRET",
    }
    deployment = (Path(__file__).parent.parent / "blueprints/releasebot/deployment.yaml").read_text()
    assert "key: github-app-private-key.pem" in deployment and "secretRef:" in deployment
    assert f"--from-file=RELEASEBOT_GITHUB_APP_ID={out}/app-id" in report["kubectl"]
    assert answer["pem"] not in result.out and answer["webhook_secret"] not in result.out

    # Run again into the same folder: refused before the code is spent (no request is mocked).
    with GitHubMock():
        again = run_cli("app", "exchange", "a1b2c3", "--out", out)
    assert again.code == 2 and "already holds app-id" in again.err
    assert (out / "webhook-secret").read_text() == answer["webhook_secret"]


def test_app_exchange_text_says_the_three_next_steps(run_cli, tmp_path: Path) -> None:
    with GitHubMock() as gh:
        gh.add("apps/create-from-manifest", {"code": "c0de"}, 201, example("integration-from-manifest"))
        result = run_cli("app", "exchange", "c0de", "--out", tmp_path / "creds", "--namespace", "bots")
    assert result.code == 0, result.err
    assert "kubectl create secret generic releasebot --namespace bots" in result.out
    assert "/installations/new" in result.out
    assert f"--secret-file {tmp_path / 'creds' / 'mlflow-webhook-secret'}" in result.out


@pytest.mark.parametrize(("status", "code", "said"), [(404, 2, "more than an hour old"), (503, 3, "try again")])
def test_a_spent_code_or_a_github_failure_writes_nothing(
    run_cli, tmp_path: Path, status: int, code: int, said: str
) -> None:
    body = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"} if status == 404 else None
    if status == 503:
        body = {"code": "unavailable", "message": "busy", "documentation_url": "https://docs.github.com/rest"}
    with GitHubMock() as gh:
        gh.add("apps/create-from-manifest", {"code": "old"}, status, body)
        result = run_cli("app", "exchange", "old", "--out", tmp_path / "creds")
    assert result.code == code and said in result.err
    assert not (tmp_path / "creds").exists()
