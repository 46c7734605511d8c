"""Reviewers and auto-merge on GitHub: every REST call matches GitHub's OpenAPI description, every
GraphQL document and its variables GitHub's GraphQL schema, and every mocked call must be made."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.github_api import GitHubMock, check_run, example, pull_request, pull_simple
from tests.github_graphql import mock as graphql
from tests.test_github_forge import BRANCH, LIST_QUERY, REPO, _expect, change, forge

HEAD = "c0ffee" + "0" * 34
NOT_ALLOWED = "Auto merge is not allowed for this repository"
CLEAN = "Pull request Pull request is in clean status"


def auto(**fields) -> object:
    return replace(change(), auto_merge=True, **fields)


def open_pr(head: str = HEAD, auto_merge: dict | None = None) -> dict:
    c = change()
    pr = pull_simple(7, BRANCH, c.title, c.body)
    pr["head"]["sha"] = head
    pr["auto_merge"] = auto_merge
    return pr


def runs(*states: tuple[str, str, str | None]) -> dict:
    """A check-runs listing: (name, status, conclusion) per run on HEAD."""
    found = [
        check_run(40 + i, HEAD, status, conclusion) | {"name": name}
        for i, (name, status, conclusion) in enumerate(states)
    ]
    return {"total_count": len(found), "check_runs": found}


def statuses(*states: tuple[str, str]) -> dict:
    """A combined status: (context, state) per commit status on HEAD."""
    combined = example("combined-commit-status")
    template = combined["statuses"][0]
    combined["statuses"] = [template | {"context": c, "state": s} for c, s in states]
    combined["total_count"] = len(states)
    overall = {s for _, s in states}
    combined["state"] = (
        "failure" if overall & {"failure", "error"} else "pending" if overall - {"success"} else "success"
    )
    combined["sha"] = HEAD
    return combined


ACTOR = {"__typename": "Bot", "avatarUrl": "https://avatars.example/1", "login": "releasebot[bot]"}
ENABLED = {"enablePullRequestAutoMerge": {"actor": ACTOR | {"resourcePath": "/apps/releasebot", "url": "u"}}}


# --- reviewers --------------------------------------------------------------------------------


def test_reviewers_are_asked_when_the_pull_request_opens_but_not_its_author() -> None:
    c = replace(change(), reviewers=("alice-ml", "octocat"), team_reviewers=("acme/ml-platform",))
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [], query=LIST_QUERY)
        gh.add("pulls/create", REPO, 201, pull_request(7, BRANCH, c.title, c.body))  # opened by octocat
        gh.add("issues/add-labels", {**REPO, "issue_number": 7}, 200, example("label-items"))
        gh.add(
            "pulls/request-reviewers",
            {**REPO, "pull_number": 7},
            201,
            pull_simple(7, BRANCH, c.title, c.body),
            check_request=lambda h, b: _expect(b, {"reviewers": ["alice-ml"], "team_reviewers": ["ml-platform"]}),
        )
        said = forge().propose(c, HEAD)
    assert said == (
        "opened pull request #7 (https://github.com/acme/envs/pull/7); asked alice-ml, team ml-platform for review"
    )


def test_an_updated_pull_request_does_not_ask_its_reviewers_again() -> None:
    old, new = change("3", "aaaa"), replace(change("4", "bbbb", supersedes="3"), reviewers=("alice-ml",))
    with GitHubMock() as gh:  # no pulls/request-reviewers mocked: asking would be an unexpected request
        gh.add("pulls/list", REPO, 200, [pull_simple(7, BRANCH, old.title, old.body)], query=LIST_QUERY)
        gh.add("pulls/update", {**REPO, "pull_number": 7}, 200, pull_request(7, BRANCH, new.title, new.body))
        assert forge().propose(new, HEAD).startswith("updated pull request #7")


def test_a_reviewer_who_is_not_a_collaborator_is_said_on_the_pull_request_and_the_others_are_asked() -> None:
    c = replace(change(), reviewers=("alice-ml", "mallory"), team_reviewers=("other-org/ops",))
    refused = {
        "message": "Reviews may only be requested from collaborators. One or more of the users or teams you "
        "specified is not a collaborator of the acme/envs repository.",
        "documentation_url": "https://docs.github.com/rest/pulls/review-requests",
    }
    asked, comments = [], []
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [], query=LIST_QUERY)
        gh.add("pulls/create", REPO, 201, pull_request(7, BRANCH, c.title, c.body))
        gh.add("issues/add-labels", {**REPO, "issue_number": 7}, 200, example("label-items"))
        number = {**REPO, "pull_number": 7}
        record = lambda h, b: asked.append(b)  # noqa: E731
        gh.add("pulls/request-reviewers", number, 422, refused, check_request=record)
        gh.add("pulls/request-reviewers", number, 201, pull_simple(7, BRANCH, c.title, c.body), check_request=record)
        gh.add("pulls/request-reviewers", number, 422, refused, check_request=record)
        gh.add(
            "issues/create-comment",
            {**REPO, "issue_number": 7},
            201,
            example("issue-comment"),
            check_request=lambda h, b: comments.append(b["body"]),
        )
        said = forge().propose(c, HEAD)
    assert asked == [{"reviewers": ["alice-ml", "mallory"]}, {"reviewers": ["alice-ml"]}, {"reviewers": ["mallory"]}]
    assert "; asked alice-ml for review; could not ask team other-org/ops (not a team of acme); mallory (" in said
    [comment] = comments
    assert comment.startswith("releasebot could not ask for a review from: team other-org/ops (not a team of acme);")
    assert "mallory (Reviews may only be requested from collaborators." in comment
    assert "reviewers` in the catalog" in comment


# --- auto-merge -------------------------------------------------------------------------------


def test_auto_merge_is_enabled_with_the_graphql_mutation_pinned_to_the_head() -> None:
    sent: list[tuple[str, dict]] = []
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [open_pr()], query=LIST_QUERY)
        graphql(gh, data=ENABLED, check_request=lambda doc, variables: sent.append((doc, variables)))
        said = forge().merge_when_ready(auto(), HEAD)
        assert gh.checked == 2
    assert said == f"enabled auto-merge on pull request #7 at {HEAD[:12]}: GitHub merges it once its checks pass"
    [(document, variables)] = sent
    assert "enablePullRequestAutoMerge(input: $input)" in document
    assert variables == {
        "input": {"pullRequestId": "MDExOlB1bGxSZXF1ZXN0MQ==", "mergeMethod": "MERGE", "expectedHeadOid": HEAD}
    }


def test_auto_merge_already_enabled_asks_nothing_more() -> None:
    enabled = {"enabled_by": example("pull-request")["user"], "merge_method": "merge", "commit_title": "t"}
    enabled["commit_message"] = "m"
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [open_pr(auto_merge=enabled)], query=LIST_QUERY)
        assert forge().merge_when_ready(auto(), HEAD) is None
        assert gh.checked == 1


@pytest.mark.parametrize("refusal", [NOT_ALLOWED, CLEAN])
def test_without_github_auto_merge_a_green_head_is_merged_by_rest_at_that_head(refusal: str) -> None:
    merged = []
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [open_pr()], query=LIST_QUERY)
        graphql(gh, error=refusal)
        gh.add(
            "checks/list-for-ref",
            {**REPO, "ref": HEAD},
            200,
            runs(("validate", "completed", "success"), ("releasebot/validate", "completed", "neutral")),
        )
        gh.add("repos/get-combined-status-for-ref", {**REPO, "ref": HEAD}, 200, statuses(("ci/lint", "success")))
        gh.add(
            "pulls/merge",
            {**REPO, "pull_number": 7},
            200,
            example("pull-request-merge-result-response-if-merge-was-successful"),
            check_request=lambda h, b: merged.append(b),
        )
        said = forge().merge_when_ready(auto(), HEAD)
    assert merged == [{"merge_method": "merge", "sha": HEAD}]  # a merge commit, and only at this head
    assert said == f"merged pull request #7 at {HEAD[:12]}: its checks are green (GitHub auto-merge: {refusal})"


def test_no_commit_statuses_at_all_is_green() -> None:
    nothing = statuses() | {"state": "pending"}  # GitHub says pending when a commit has no statuses at all
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [open_pr()], query=LIST_QUERY)
        graphql(gh, error=NOT_ALLOWED)
        gh.add("checks/list-for-ref", {**REPO, "ref": HEAD}, 200, runs(("validate", "completed", "skipped")))
        gh.add("repos/get-combined-status-for-ref", {**REPO, "ref": HEAD}, 200, nothing)
        gh.add(
            "pulls/merge",
            {**REPO, "pull_number": 7},
            200,
            example("pull-request-merge-result-response-if-merge-was-successful"),
        )
        assert forge().merge_when_ready(auto(), HEAD).startswith("merged pull request #7")


@pytest.mark.parametrize(
    ("listed", "combined", "waits_for"),
    [
        (runs(("validate", "in_progress", None)), None, "its checks finish: validate still running"),
        (
            runs(("validate", "completed", "success"), ("releasebot/validate", "completed", "failure")),
            None,
            "its failed checks pass again: releasebot/validate (failure)",
        ),
        (
            runs(("validate", "completed", "success")),
            statuses(("ci/lint", "success"), ("ci/deploy-preview", "pending")),
            "its commit statuses succeed: ci/deploy-preview (pending)",
        ),
        (
            runs(("releasebot/quality", "completed", "success")),
            statuses() | {"state": "pending"},
            "its checks report: none has reported on this head yet",
        ),
    ],
    ids=["check-pending", "check-failed", "status-pending", "nothing-but-releasebots-evidence"],
)
def test_a_head_that_is_not_green_is_not_merged(listed: dict, combined: dict | None, waits_for: str) -> None:
    with GitHubMock() as gh:  # no pulls/merge mocked: a merge would be an unexpected request
        gh.add("pulls/list", REPO, 200, [open_pr()], query=LIST_QUERY)
        graphql(gh, error=NOT_ALLOWED)
        gh.add("checks/list-for-ref", {**REPO, "ref": HEAD}, 200, listed)
        if combined is not None:
            gh.add("repos/get-combined-status-for-ref", {**REPO, "ref": HEAD}, 200, combined)
        said = forge().merge_when_ready(auto(), HEAD)
    assert said == f"pull request #7: GitHub auto-merge is not available ({NOT_ALLOWED}); merging it once {waits_for}"


def test_a_pull_request_whose_head_moved_is_not_merged() -> None:
    moved = "d" * 40
    with GitHubMock() as gh:  # nothing but the look-up: no GraphQL, no merge
        gh.add("pulls/list", REPO, 200, [open_pr(head=moved)], query=LIST_QUERY)
        said = forge().merge_when_ready(auto(), HEAD)
    assert (
        said
        == f"pull request #7: its head dddddddddddd is not {HEAD[:12]}, the head releasebot proposed; not merging it"
    )


def test_a_head_that_moves_while_merging_is_not_merged() -> None:
    conflict = {"message": "Head branch was modified. Review and try the merge again.", "documentation_url": "x"}
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [open_pr()], query=LIST_QUERY)
        graphql(gh, error=CLEAN)
        gh.add("checks/list-for-ref", {**REPO, "ref": HEAD}, 200, runs(("validate", "completed", "success")))
        gh.add("repos/get-combined-status-for-ref", {**REPO, "ref": HEAD}, 200, statuses())
        gh.add("pulls/merge", {**REPO, "pull_number": 7}, 409, conflict)
        said = forge().merge_when_ready(auto(), HEAD)
    assert said == (
        f"pull request #7: GitHub did not merge it at {HEAD[:12]}: Head branch was modified. Review and try the merge "
        "again."
    )


def test_another_graphql_error_is_a_failure_not_a_merge() -> None:
    from bot.errors import PermanentUpstreamError

    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [open_pr()], query=LIST_QUERY)
        graphql(gh, error="Pull request User is not allowed to push to this repository")
        with pytest.raises(PermanentUpstreamError, match=r"enable auto-merge on #7: .*not allowed to push"):
            forge().merge_when_ready(auto(), HEAD)


def test_no_open_pull_request_is_nothing_to_merge() -> None:
    with GitHubMock() as gh:
        gh.add("pulls/list", REPO, 200, [], query=LIST_QUERY)
        assert forge().merge_when_ready(auto(), HEAD) is None
