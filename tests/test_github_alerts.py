"""Drift alerts as GitHub issues: one per (environment, model), updated rather than duplicated.

Every request and mocked response matches GitHub's schema, and every mocked call must be made."""

from __future__ import annotations

from pathlib import Path

from bot.commands import Subject, subject_of_issue
from bot.forge.github import GitHubForge, TokenSource
from bot.plan import Alert, Key
from bot.repo import EnvRepo
from tests.github_api import GitHubMock, example, issue

REPO = {"owner": "acme", "repo": "envs"}
LIST_QUERY = {"state": "all", "labels": "releasebot", "sort": "created", "direction": "desc"}
KEY = Key("production", "fraud", "alert")


def alert(run: str = "r1", raised: bool = True) -> Alert:
    fp = {"r1": "aaaa1111", "r2": "bbbb2222"}[run]
    body = f"drift table for {run}\n<!-- releasebot:fingerprint={fp} -->" if raised else f"no drift ({run})"
    title = "Drift: fraud v3 in production" if raised else "No drift: fraud v3 in production"
    return Alert(KEY, raised, title, body, fp, ("releasebot", "drift"))


def forge() -> GitHubForge:
    return GitHubForge(EnvRepo("unused", Path("unused")), "acme/envs", TokenSource(token="ghs_test"), throttle=False)


def existing(a: Alert, state: str = "open", number: int = 12) -> dict:
    return issue(number, a.title, f"{a.body}\n\n{a.marker}", state)


def test_drift_opens_one_labelled_issue() -> None:
    a, sent = alert(), []
    unrelated = issue(11, "Drift: fraud v3 in staging", "<!-- releasebot:alert=staging/fraud -->")
    with GitHubMock() as gh:
        gh.add("issues/list-for-repo", REPO, 200, [unrelated], query=LIST_QUERY)
        gh.add("issues/create", REPO, 201, issue(12, a.title, a.body), check_request=lambda h, b: sent.append(b))
        # Then it looks again (another replica may have opened one meanwhile): only its own.
        gh.add("issues/list-for-repo", REPO, 200, [existing(a), unrelated], query=LIST_QUERY)
        assert forge().alert(a) == "opened drift alert issue #12 (https://github.com/acme/envs/issues/12)"
        assert gh.checked == 3
    assert sent[0]["title"] == a.title and sent[0]["labels"] == ["releasebot", "drift"]
    assert sent[0]["body"].endswith("<!-- releasebot:alert=production/fraud -->")


def test_the_same_drift_run_again_changes_nothing() -> None:
    with GitHubMock() as gh:
        gh.add("issues/list-for-repo", REPO, 200, [existing(alert())], query=LIST_QUERY)
        assert forge().alert(alert()) is None
        assert gh.checked == 1  # one read, no write


def test_a_newer_drifting_run_updates_the_same_issue() -> None:
    new, sent = alert("r2"), []
    with GitHubMock() as gh:
        gh.add("issues/list-for-repo", REPO, 200, [existing(alert("r1"))], query=LIST_QUERY)
        gh.add(
            "issues/update",
            {**REPO, "issue_number": 12},
            200,
            issue(12, new.title, new.body),
            check_request=lambda h, b: sent.append(b),
        )
        assert forge().alert(new).startswith("updated drift alert issue #12")
    assert "drift table for r2" in sent[0]["body"] and "state" not in sent[0]


def test_a_person_closing_the_issue_holds_for_that_run_and_a_new_run_reopens_it() -> None:
    with GitHubMock() as gh:
        gh.add("issues/list-for-repo", REPO, 200, [existing(alert("r1"), state="closed")], query=LIST_QUERY)
        assert forge().alert(alert("r1")) is None
    sent: list[dict] = []
    with GitHubMock() as gh:
        gh.add("issues/list-for-repo", REPO, 200, [existing(alert("r1"), state="closed")], query=LIST_QUERY)
        gh.add(
            "issues/update",
            {**REPO, "issue_number": 12},
            200,
            issue(12, "t", "b"),
            check_request=lambda h, b: sent.append(b),
        )
        assert forge().alert(alert("r2")).startswith("reopened drift alert issue #12")
    assert sent[0]["state"] == "open" and "drift table for r2" in sent[0]["body"]


def test_no_drift_closes_the_open_issue_with_a_comment() -> None:
    sent: list[dict] = []
    with GitHubMock() as gh:
        gh.add("issues/list-for-repo", REPO, 200, [existing(alert("r1"))], query=LIST_QUERY)
        gh.add(
            "issues/create-comment",
            {**REPO, "issue_number": 12},
            201,
            example("issue-comment"),
            check_request=lambda h, b: sent.append(b),
        )
        gh.add(
            "issues/update",
            {**REPO, "issue_number": 12},
            200,
            issue(12, "t", "b", state="closed"),
            check_request=lambda h, b: sent.append(b),
        )
        assert forge().alert(alert("r2", raised=False)) == (
            "closed drift alert issue #12: No drift: fraud v3 in production"
        )
    assert sent[0]["body"] == "Resolved: no drift (r2)"
    assert sent[1] == {"state": "closed", "state_reason": "completed"}


def test_no_drift_and_no_open_issue_is_silent() -> None:
    with GitHubMock() as gh:
        gh.add("issues/list-for-repo", REPO, 200, [existing(alert("r1"), state="closed")], query=LIST_QUERY)
        assert forge().alert(alert("r2", raised=False)) is None


def test_two_replicas_racing_end_with_one_open_alert_issue() -> None:
    """Replica B looks before replica A's issue exists, so both create (#12 by A, #13 by B). Each
    looks again after its create: A sees only its own and keeps it; B sees #12 too and closes its
    own #13 as the duplicate. The mocks answer in the order the race asked."""
    a, comments, closes = alert(), [], []
    first, second = existing(a, number=12), existing(a, number=13)
    with GitHubMock() as gh:
        gh.add("issues/list-for-repo", REPO, 200, [], query=LIST_QUERY)  # A looks
        gh.add("issues/create", REPO, 201, first)  # A creates #12
        gh.add("issues/list-for-repo", REPO, 200, [first], query=LIST_QUERY)  # A looks again
        gh.add("issues/list-for-repo", REPO, 200, [], query=LIST_QUERY)  # B had looked before #12
        gh.add("issues/create", REPO, 201, second)  # B creates #13
        gh.add("issues/list-for-repo", REPO, 200, [second, first], query=LIST_QUERY)  # B looks again
        gh.add(
            "issues/create-comment",
            {**REPO, "issue_number": 13},
            201,
            example("issue-comment"),
            check_request=lambda h, b: comments.append(b),
        )
        gh.add(
            "issues/update",
            {**REPO, "issue_number": 13},
            200,
            existing(a, "closed", 13),
            check_request=lambda h, b: closes.append(b),
        )
        said_a, said_b = forge().alert(a), forge().alert(a)
    assert said_a == "opened drift alert issue #12 (https://github.com/acme/envs/issues/12)"
    assert said_b == (
        "opened drift alert issue #13 (https://github.com/acme/envs/issues/13), "
        "then closed it as a duplicate of #12, which another replica opened first"
    )
    assert comments == [{"body": "Duplicate of #12: another releasebot replica opened it first."}]
    assert closes == [{"state": "closed", "state_reason": "duplicate"}]


def test_a_quality_gate_issue_is_its_own_issue_beside_the_drift_alert_and_always_labelled_releasebot() -> None:
    quality = Alert(
        Key("production", "fraud", "quality"),
        True,
        "Quality gate: fraud v4 not released to production",
        "accuracy 0.91 < 0.93\n<!-- releasebot:fingerprint=cccc3333 -->",
        "cccc3333",
        ("quality",),  # the planner's labels lack "releasebot": the forge adds it, or it would never find it again
    )
    drift_issue = existing(alert())  # same (environment, model), the drift alert's marker
    sent: list[dict] = []
    with GitHubMock() as gh:
        gh.add("issues/list-for-repo", REPO, 200, [drift_issue], query=LIST_QUERY)
        gh.add("issues/create", REPO, 201, issue(14, quality.title, "b"), check_request=lambda h, b: sent.append(b))
        gh.add("issues/list-for-repo", REPO, 200, [issue(14, quality.title, "b")], query=LIST_QUERY)
        said = forge().alert(quality)
    assert said == "opened quality gate issue #14 (https://github.com/acme/envs/issues/14)"
    assert sent[0]["labels"] == ["releasebot", "quality"]
    assert sent[0]["body"].endswith("<!-- releasebot:quality=production/fraud -->")
    # /releasebot commands said on it know which (environment, model) they are about.
    assert subject_of_issue(sent[0]["body"]) == Subject("production", "fraud")
    with GitHubMock() as gh:  # found again by its own marker: unchanged, nothing written
        gh.add("issues/list-for-repo", REPO, 200, [drift_issue, existing(quality, number=14)], query=LIST_QUERY)
        assert forge().alert(quality) is None
