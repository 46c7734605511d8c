"""The GitHub forge under ``responses``: every request and mocked response matches GitHub's schema,
and every mocked call must be made (``assert_all_requests_are_fired``)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.forge.github import GitHubForge, TokenSource, repo_full_name
from bot.plan import Change, Close, FileEdit, Key
from bot.repo import EnvRepo
from tests.github_api import GitHubMock, example, pull_request, pull_simple

KEY = Key("production", "fraud", "release")
BRANCH = KEY.branch
REPO = {"owner": "acme", "repo": "envs"}
LIST_QUERY = {"state": "open", "head": f"acme:{BRANCH}", "base": "main"}


def change(version: str = "3", fp: str = "f00d", supersedes: str | None = None) -> Change:
    title = f"Release fraud v{version} to production" + (f" (supersedes v{supersedes})" if supersedes else "")
    return Change(
        key=KEY,
        write_back="pull-request",
        edits=(FileEdit("p", "a", "b", ()),),
        version=version,
        previous="2",
        commit_message="m",
        title=title,
        body=f"evidence\n<!-- releasebot:fingerprint={fp} -->",
        fingerprint=fp,
        supersedes=supersedes,
        labels=("releasebot", "production"),
    )


def forge(tokens: TokenSource | None = None, repo: EnvRepo | None = None) -> GitHubForge:
    return GitHubForge(
        repo or EnvRepo("unused", Path("unused")), "acme/envs", tokens or TokenSource(token="ghs_test"), throttle=False
    )


def test_new_release_opens_one_pull_request_with_labels() -> None:
    c = change()
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [], query=LIST_QUERY)
        gh.add(
            "pulls/create",
            REPO,
            201,
            pull_request(7, BRANCH, c.title, c.body),
            check_request=lambda h, b: _expect(b, {"head": BRANCH, "base": "main", "title": c.title}),
        )
        gh.add(
            "issues/add-labels",
            {**REPO, "issue_number": 7},
            200,
            example("label-items"),
            check_request=lambda h, b: _expect({"labels": b}, {"labels": ["releasebot", "production"]}),
        )
        assert forge().propose(c, "abc") == "opened pull request #7 (https://github.com/acme/envs/pull/7)"
        assert gh.checked == 3  # the REST calls one new release pull request costs


def test_a_newer_alias_move_edits_the_same_pull_request() -> None:
    old, new = change("3", "aaaa"), change("4", "bbbb", supersedes="3")
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [pull_simple(7, BRANCH, old.title, old.body)], query=LIST_QUERY)
        gh.add(
            "pulls/update",
            {**REPO, "pull_number": 7},
            200,
            pull_request(7, BRANCH, new.title, new.body),
            check_request=lambda h, b: _expect(b, {"title": "Release fraud v4 to production (supersedes v3)"}),
        )
        assert forge().propose(new, "abc").startswith("updated pull request #7")


def test_an_unchanged_plan_writes_nothing() -> None:
    c = change()
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [pull_simple(7, BRANCH, c.title, c.body)], query=LIST_QUERY)
        assert forge().propose(c, "abc") == "pull request #7 is up to date"


def test_422_already_exists_counts_as_success() -> None:
    c = change()
    exists = {
        "message": "Validation Failed",
        "errors": [
            {
                "resource": "PullRequest",
                "code": "custom",
                "message": f"A pull request already exists for acme:{BRANCH}.",
            }
        ],
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
    }
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [], query=LIST_QUERY)
        gh.add("pulls/create", REPO, 422, exists)
        gh.add("pulls/list", REPO, 200, [pull_simple(9, BRANCH, "older title", "old body")], query=LIST_QUERY)
        gh.add("pulls/update", {**REPO, "pull_number": 9}, 200, pull_request(9, BRANCH, c.title, c.body))
        assert forge().propose(c, "abc").startswith("updated pull request #9")


def test_a_502_is_retried_then_succeeds() -> None:
    c = change()
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [], query=LIST_QUERY)
        _bad_gateway(gh)  # GitHub's front end, not the API: no documented schema to check
        gh.add("pulls/create", REPO, 201, pull_request(7, BRANCH, c.title, c.body))
        gh.add("issues/add-labels", {**REPO, "issue_number": 7}, 200, example("label-items"))
        assert forge().propose(c, "abc").startswith("opened pull request #7")


def test_github_down_for_good_is_a_transient_error() -> None:
    with GitHubMock() as gh:
        for _ in range(4):
            _bad_gateway(gh, "GET")
        with pytest.raises(TransientUpstreamError, match="still failing after 4 attempts"):
            forge().propose(change(), "abc")


def test_app_token_is_refreshed_after_a_401() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    tokens = TokenSource(app_id="123", private_key=pem, installation_id=42)
    c = change()
    seen: list[str] = []
    expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    grant = example("installation-token") | {"token": "ghs_first", "expires_at": expires}
    with GitHubMock() as gh:
        gh.add(
            "apps/create-installation-access-token",
            {"installation_id": 42},
            201,
            grant,
            check_request=lambda h, b: seen.append(h["Authorization"].split()[0]),
        )
        gh.add(
            "pulls/list",
            REPO,
            401,
            {"message": "Bad credentials", "documentation_url": "https://docs.github.com"},
            check_request=lambda h, b: seen.append(h["Authorization"]),
        )
        gh.add("apps/create-installation-access-token", {"installation_id": 42}, 201, grant | {"token": "ghs_second"})
        gh.add(
            "pulls/list", REPO, 200, [], query=LIST_QUERY, check_request=lambda h, b: seen.append(h["Authorization"])
        )
        gh.add("pulls/create", REPO, 201, pull_request(7, BRANCH, c.title, c.body))
        gh.add("issues/add-labels", {**REPO, "issue_number": 7}, 200, example("label-items"))
        assert forge(tokens).propose(c, "abc").startswith("opened pull request #7")
    assert seen == ["Bearer", "token ghs_first", "token ghs_second"]  # a JWT for the grant, then each token
    assert tokens.refreshes == 2


def test_a_token_close_to_expiry_is_refreshed_before_use() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    now = [datetime(2026, 11, 22, 12, 0, tzinfo=UTC)]
    tokens = TokenSource(app_id="123", private_key=pem, installation_id=42, clock=lambda: now[0])
    grant = example("installation-token") | {"expires_at": "2026-11-22T13:00:00Z"}
    with GitHubMock() as gh:
        gh.add("apps/create-installation-access-token", {"installation_id": 42}, 201, grant | {"token": "ghs_a"})
        gh.add("apps/create-installation-access-token", {"installation_id": 42}, 201, grant | {"token": "ghs_b"})
        assert tokens.token() == "ghs_a"
        now[0] += timedelta(minutes=50)
        assert tokens.token() == "ghs_a"  # 10 minutes left: still good
        now[0] += timedelta(minutes=6)
        assert tokens.token() == "ghs_b"  # 4 minutes left: refreshed first


def test_withdraw_comments_closes_and_deletes_the_branch(tmp_path: Path) -> None:
    remote = tmp_path / "envs.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    seed = tmp_path / "seed"
    subprocess.run(["git", "clone", "-q", str(remote), str(seed)], check=True, capture_output=True)
    (seed / "a").write_text("a")
    for args in (
        ["add", "a"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"],
        ["push", "-q", "origin", "HEAD:main", f"HEAD:{BRANCH}"],
    ):
        subprocess.run(["git", "-C", str(seed), *args], check=True)
    repo = EnvRepo(str(remote), tmp_path / "work")
    branch = repo.bot_branches()[BRANCH]
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [pull_simple(7, BRANCH, "t", "b")], query=LIST_QUERY)
        gh.add(
            "issues/create-comment",
            {**REPO, "issue_number": 7},
            201,
            example("issue-comment"),
            check_request=lambda h, b: _expect(b, {"body": "Closing: main already serves version 2."}),
        )
        gh.add(
            "pulls/update",
            {**REPO, "pull_number": 7},
            200,
            pull_request(7, BRANCH, "t", "b"),
            check_request=lambda h, b: _expect(b, {"state": "closed"}),
        )
        result = forge(repo=repo).withdraw(Close(KEY, branch, "main already serves version 2"))
    assert result == "closed pull request #7 (main already serves version 2)"
    repo.sync()
    assert BRANCH not in repo.bot_branches()


def test_a_person_s_commit_is_said_once_on_the_pull_request() -> None:
    message = f"{BRANCH} has commits by a person (1234abcd); releasebot will not rewrite it"
    posted: list[str] = []
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [pull_simple(7, BRANCH, "t", "b")], query=LIST_QUERY)
        gh.add("issues/list-comments", {**REPO, "issue_number": 7}, 200, [])
        gh.add(
            "issues/create-comment",
            {**REPO, "issue_number": 7},
            201,
            example("issue-comment"),
            check_request=lambda h, b: posted.append(b["body"]),
        )
        assert forge().note(KEY, message) == "commented on pull request #7"
    comment = example("issue-comment-items")[0] | {"body": posted[0]}
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [pull_simple(7, BRANCH, "t", "b")], query=LIST_QUERY)
        gh.add("issues/list-comments", {**REPO, "issue_number": 7}, 200, [comment])
        assert forge().note(KEY, message) is None


def test_a_403_without_rate_limit_is_permanent() -> None:
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [], query=LIST_QUERY)
        gh.add(
            "pulls/create",
            REPO,
            403,
            {"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com"},
        )
        with pytest.raises(PermanentUpstreamError, match=r"GitHub 403: open a pull request.*not accessible"):
            forge().propose(change(), "abc")


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://github.com/acme/envs.git", "acme/envs"),
        ("git@github.com:acme/envs.git", "acme/envs"),
        ("https://github.com/acme/envs", "acme/envs"),
    ],
)
def test_repo_full_name(url: str, name: str) -> None:
    assert repo_full_name(url) == name


def _expect(body: dict, subset: dict) -> None:
    assert {k: body.get(k) for k in subset} == subset, body


def _bad_gateway(gh: GitHubMock, method: str = "POST") -> None:
    import re

    import responses

    url = re.compile(r"https://api\.github\.com(:443)?/repos/acme/envs/pulls(\?.*)?$")
    gh.rsps.add(responses.Response(method, url, status=502, json={"message": "Bad Gateway"}))


def test_a_walk_verdict_is_the_releasebot_rollout_check_on_the_commit_it_judged_once() -> None:
    from bot.plan.types import Measurement, Verdict
    from tests.github_api import check_run

    sha = "a" * 40
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    verdict = Verdict(
        False,
        (Measurement("error-ratio", 'sum(rate(x{revision_name="r2"}[600s]))', 0.3, 0.0, "≤ 0.01", False),),
        start,
        start + timedelta(minutes=10),
    )
    c = Change(
        key=KEY,
        write_back="pull-request",
        edits=(FileEdit("p", "a", "b", ()),),
        version="2",
        previous="3",
        commit_message="m",
        title="Roll back fraud in production to v2: canary v3 failed at 10%",
        body="b",
        fingerprint="f",
        verdict=verdict,
        verdict_sha=sha,
    )
    external_id = "production/fraud/2026-11-22T09:00:00Z/2026-11-22T09:10:00Z"

    def expect(headers: dict, body: dict) -> None:
        assert (body["name"], body["head_sha"], body["status"], body["conclusion"]) == (
            "releasebot/rollout",
            sha,
            "completed",
            "failure",
        )
        assert body["external_id"] == external_id
        assert "error-ratio" in body["output"]["summary"] and "❌ fail" in body["output"]["summary"]

    listed = {"total_count": 0, "check_runs": []}
    with GitHubMock() as gh:
        gh.add("checks/list-for-ref", {**REPO, "ref": sha}, 200, listed, query={"check_name": "releasebot/rollout"})
        gh.add("checks/create", REPO, 201, check_run(61, sha, "completed", "failure"), check_request=expect)
        assert forge().verdict(c) == f"reported releasebot/rollout (failure) on {sha[:12]}"
    # Asked again (the next pass, another replica): the check is there, nothing is created.
    again = check_run(61, sha, "completed", "failure") | {"name": "releasebot/rollout", "external_id": external_id}
    with GitHubMock() as gh:
        gh.add(
            "checks/list-for-ref",
            {**REPO, "ref": sha},
            200,
            {"total_count": 1, "check_runs": [again]},
            query={"check_name": "releasebot/rollout"},
        )
        assert forge().verdict(c) is None


def test_the_quality_gate_is_the_releasebot_quality_check_on_the_proposed_head_once() -> None:
    from dataclasses import replace

    from bot.plan.types import Gate, GateRow
    from tests.github_api import check_run

    head = "b" * 40
    gate = Gate(
        KEY,
        "3",
        "2",
        True,
        (
            GateRow("accuracy", "0.94", "0.93", "≥ baseline + 0.005", True),
            GateRow("tag validation.dataset", "sha256:ab|cd", None, "tag present", True),
        ),
        "passed 2 of 2 checks against v2",
    )
    c = replace(change(), gate=gate)
    sent: list[dict] = []
    listed = {"total_count": 0, "check_runs": []}
    with GitHubMock() as gh:
        gh.add("checks/list-for-ref", {**REPO, "ref": head}, 200, listed, query={"check_name": "releasebot/quality"})
        gh.add(
            "checks/create",
            REPO,
            201,
            check_run(71, head, "completed", "success"),
            check_request=lambda h, b: sent.append(b),
        )
        assert forge().quality(c, head) == f"reported releasebot/quality (success) on {head[:12]}"
    [body] = sent
    assert (body["name"], body["head_sha"], body["conclusion"]) == ("releasebot/quality", head, "success")
    assert body["external_id"] == "production/fraud/v3/passed"
    assert body["output"]["title"] == "production/fraud v3: passed 2 of 2 checks against v2"
    assert body["output"]["summary"].splitlines()[2:] == [
        "| check | v3 | v2 | rule | |",
        "|---|---:|---:|---|:---:|",
        "| accuracy | 0.94 | 0.93 | ≥ baseline + 0.005 | ✅ |",
        "| tag validation.dataset | sha256:ab\\|cd | — | tag present | ✅ |",
    ]
    there = check_run(71, head, "completed", "success") | {
        "name": "releasebot/quality",
        "external_id": body["external_id"],
    }
    with GitHubMock() as gh:  # the next pass: it is there, nothing is created
        gh.add(
            "checks/list-for-ref",
            {**REPO, "ref": head},
            200,
            {"total_count": 1, "check_runs": [there]},
            query={"check_name": "releasebot/quality"},
        )
        assert forge().quality(c, head) is None
