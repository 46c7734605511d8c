"""Faults injected through GitHub mocks that match GitHub's own REST description (see
``tests/github_api.py``): rate limits, a failing front end, an expiring token. Every mocked call
must be made, and no call beyond them is allowed.

Retries do not sleep in tests (``conftest.no_retry_sleeps``); the wait each retry was given is
recorded from :func:`bot.forge.github._backoff`, the hook that decides it.
"""

from __future__ import annotations

import time

import pytest

import bot.forge.github as github_forge
from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.forge.github import TokenSource
from tests.github_api import GitHubMock, example, pull_request
from tests.test_github_forge import BRANCH, LIST_QUERY, REPO, change, forge

BUSY = {"message": "Server Error", "documentation_url": "https://docs.github.com/rest"}


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[bool | float]:
    """What the retry hook answered for each failure: True (exponential backoff), a wait in
    seconds (what GitHub asked for), or False (not retried here)."""
    seen: list[bool | float] = []
    original = github_forge._backoff

    def recording(exc: Exception) -> bool | float:
        seen.append(original(exc))
        return seen[-1]

    monkeypatch.setattr(github_forge, "_backoff", recording)
    return seen


def _opens_pr_after(gh: GitHubMock) -> None:
    c = change()
    gh.add("pulls/list", REPO, 200, [], query=LIST_QUERY)
    gh.add("pulls/create", REPO, 201, pull_request(7, BRANCH, c.title, c.body))
    gh.add("issues/add-labels", {**REPO, "issue_number": 7}, 200, example("label-items"))


def test_github_502_then_200_is_retried_with_backoff(waits: list) -> None:
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 502, BUSY)
        _opens_pr_after(gh)
        assert forge().propose(change(), "abc").startswith("opened pull request #7")
    assert waits == [True]


def test_github_429_with_retry_after_waits_what_github_asked(waits: list) -> None:
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 429, {"message": "Too Many Requests"}, headers={"Retry-After": "7"})
        _opens_pr_after(gh)
        assert forge().propose(change(), "abc").startswith("opened pull request #7")
    assert waits == [7.0]


def test_github_primary_rate_limit_waits_until_the_reset(waits: list) -> None:
    reset = int(time.time()) + 30
    limited = {
        "message": "API rate limit exceeded for installation ID 42.",
        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
    }
    c = change()
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [], query=LIST_QUERY)
        gh.add(
            "pulls/create",
            REPO,
            403,
            limited,
            headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
        )
        gh.add("pulls/create", REPO, 201, pull_request(7, BRANCH, c.title, c.body))
        gh.add("issues/add-labels", {**REPO, "issue_number": 7}, 200, example("label-items"))
        assert forge().propose(c, "abc").startswith("opened pull request #7")
    assert len(waits) == 1 and 20 < waits[0] <= 32  # until the reset, plus the second it falls in


def test_github_failing_for_good_is_a_transient_error_after_the_bound(waits: list) -> None:
    with GitHubMock() as gh:
        for _ in range(4):
            gh.add("pulls/list", REPO, 503, BUSY)
        with pytest.raises(TransientUpstreamError, match=r"GitHub 503: .* \(still failing after 4 attempts\)"):
            forge().propose(change(), "abc")
    assert waits == [True, True, True, True]  # the fourth answer is retryable, but the bound is reached


def test_a_rate_limit_reset_beyond_the_longest_wait_is_handed_up_with_its_delay(waits: list) -> None:
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 429, {"message": "Too Many Requests"}, headers={"Retry-After": "900"})
        with pytest.raises(TransientUpstreamError) as raised:
            forge().propose(change(), "abc")
    assert raised.value.delay == 900.0 and raised.value.retryable
    assert waits == [False]  # not slept in a worker thread: serve schedules the key again


def _app_tokens() -> TokenSource:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return TokenSource(app_id="123", private_key=pem, installation_id=42)


def _grant(token: str) -> dict:
    from datetime import UTC, datetime, timedelta

    expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return example("installation-token") | {"token": token, "expires_at": expires}


BAD_CREDENTIALS = {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}


def test_an_installation_token_expiring_mid_run_is_refreshed_once() -> None:
    tokens = _app_tokens()
    sent: list[str] = []
    with GitHubMock() as gh:
        gh.add("apps/create-installation-access-token", {"installation_id": 42}, 201, _grant("ghs_cached"))
        gh.add(
            "pulls/list", REPO, 200, [], query=LIST_QUERY, check_request=lambda h, b: sent.append(h["Authorization"])
        )
        # The cached token is revoked or expired between two calls of one run.
        gh.add("pulls/create", REPO, 401, BAD_CREDENTIALS, check_request=lambda h, b: sent.append(h["Authorization"]))
        gh.add("apps/create-installation-access-token", {"installation_id": 42}, 201, _grant("ghs_fresh"))
        c = change()
        gh.add(
            "pulls/create",
            REPO,
            201,
            pull_request(7, BRANCH, c.title, c.body),
            check_request=lambda h, b: sent.append(h["Authorization"]),
        )
        gh.add("issues/add-labels", {**REPO, "issue_number": 7}, 200, example("label-items"))
        assert forge(tokens).propose(c, "abc").startswith("opened pull request #7")
    assert sent == ["token ghs_cached", "token ghs_cached", "token ghs_fresh"]
    assert tokens.refreshes == 2


def test_a_second_401_after_a_fresh_token_is_permanent(waits: list) -> None:
    tokens = _app_tokens()
    with GitHubMock() as gh:
        gh.add("apps/create-installation-access-token", {"installation_id": 42}, 201, _grant("ghs_cached"))
        gh.add("pulls/list", REPO, 401, BAD_CREDENTIALS)
        gh.add("apps/create-installation-access-token", {"installation_id": 42}, 201, _grant("ghs_fresh"))
        gh.add("pulls/list", REPO, 401, BAD_CREDENTIALS)
        with pytest.raises(PermanentUpstreamError, match=r"GitHub 401: .*Bad credentials"):
            forge(tokens).propose(change(), "abc")
    assert tokens.refreshes == 2 and waits == [False]  # minted once more, then not retried


# -- the releasebot/validate check run always reaches a conclusion ----------------------------


@pytest.fixture
def world(mlflow_url: str, tmp_path, run_cli):
    from tests.test_release_loop import World

    return World(mlflow_url, tmp_path, run_cli)


def _pr_head(world, change_tree) -> str:
    """A branch ``tune`` by a person, changed by ``change_tree(clone)``; its head commit."""
    from tests.test_release_loop import git

    clone = world.tmp / "author"
    git(world.tmp, "clone", "--quiet", str(world.remote), str(clone))
    git(clone, "checkout", "-q", "-b", "tune")
    change_tree(clone)
    git(clone, "add", "--all")
    git(clone, "-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "-qm", "tune")
    git(clone, "push", "-q", "origin", "tune")
    return git(clone, "rev-parse", "HEAD").strip()


def _check_expected(gh: GitHubMock, world, sha: str, sent: list[dict]) -> None:
    from tests.github_api import check_run
    from tests.test_service import REPO as SERVICE_REPO

    gh.passthru(world.url)  # MLflow
    gh.add(
        "checks/list-for-ref",
        {**SERVICE_REPO, "ref": sha},
        200,
        {"total_count": 0, "check_runs": []},
        query={"check_name": "releasebot/validate"},
    )
    gh.add("checks/create", SERVICE_REPO, 201, check_run(51, sha))
    gh.add(
        "checks/update",
        {**SERVICE_REPO, "check_run_id": 51},
        200,
        check_run(51, sha, "completed", "failure"),
        check_request=lambda h, b: sent.append(b),
    )


def test_an_escaping_symlink_in_a_pr_head_completes_the_check_as_a_failure_naming_it(world) -> None:
    from bot.errors import SecurityError
    from bot.intake import CheckRequest
    from tests.test_service import service

    sha = _pr_head(world, lambda clone: (clone / "staging/fraud/secrets.yaml").symlink_to("/etc/passwd"))
    sent: list[dict] = []
    with GitHubMock() as gh:
        _check_expected(gh, world, sha, sent)
        with pytest.raises(SecurityError):
            service(world).validate(CheckRequest(sha, "tune", 12))
    [done] = sent
    assert done["status"] == "completed" and done["conclusion"] == "failure"
    assert "staging/fraud/secrets.yaml" in done["output"]["summary"]
    assert done["output"]["title"] == "Refused: the commit is unsafe to read"


def test_any_failure_while_validating_still_completes_the_check(world, monkeypatch) -> None:
    import bot.service
    from bot.intake import CheckRequest
    from tests.test_service import service

    sha = _pr_head(world, lambda clone: (clone / "notes.txt").write_text("x\n"))

    def broken(root):
        raise RecursionError("maximum recursion depth exceeded while reading blueprints/x.yaml")

    monkeypatch.setattr(bot.service, "validate_repo", broken)
    sent: list[dict] = []
    with GitHubMock() as gh:
        _check_expected(gh, world, sha, sent)
        with pytest.raises(RecursionError):
            service(world).validate(CheckRequest(sha, "tune", 12))
    [done] = sent
    assert done["conclusion"] == "failure"
    assert (
        "RecursionError: maximum recursion depth exceeded while reading blueprints/x.yaml" in done["output"]["summary"]
    )


def test_a_crash_between_starting_and_finishing_a_check_ends_with_one_concluded_check(world) -> None:
    """The worker died after creating the releasebot/validate check run (it stays in progress on
    GitHub); the check is run again: it takes that run up and concludes it, creating none."""
    from bot.intake import CheckRequest
    from tests.github_api import check_run
    from tests.test_service import REPO as SERVICE_REPO
    from tests.test_service import service

    sha = _pr_head(world, lambda clone: (clone / "notes.txt").write_text("x\n"))
    left = check_run(51, sha)  # in progress, as the dead worker left it
    sent: list[dict] = []
    with GitHubMock() as gh:
        gh.passthru(world.url)
        gh.add(
            "checks/list-for-ref",
            {**SERVICE_REPO, "ref": sha},
            200,
            {"total_count": 1, "check_runs": [left]},
            query={"check_name": "releasebot/validate"},
        )
        gh.add(
            "checks/update",
            {**SERVICE_REPO, "check_run_id": 51},
            200,
            check_run(51, sha, "completed", "success"),
            check_request=lambda h, b: sent.append(b),
        )
        service(world).validate(CheckRequest(sha, "tune", 12))
    [done] = sent  # no checks/create: a second create would be an unexpected request
    assert done["status"] == "completed" and done["conclusion"] == "success"
