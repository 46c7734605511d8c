"""The GraphQL checker the GitHub mocks use is what it says it is, and cannot pass vacuously."""

from __future__ import annotations

import hashlib

import pytest

from tests.github_graphql import SCHEMA_FILE, answer, check, refusal

# PyGithub 2.x's PullRequest.enable_automerge sends exactly this (Requester.graphql_named_mutation).
ENABLE = (
    "mutation Mutation($input: EnablePullRequestAutoMergeInput!) { enablePullRequestAutoMerge(input: $input) "
    "{ actor { avatarUrl login resourcePath url } clientMutationId } }"
)
INPUT = {"pullRequestId": "PR_kwDOA", "mergeMethod": "MERGE", "expectedHeadOid": "a" * 40}


def test_the_schema_is_the_upstream_copy_byte_for_byte() -> None:
    digest = hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest()
    assert digest == "3c62d0526d133cee53221c89de9b455ade24db78b9e7ad56d642c4c15bce2654"


def test_the_auto_merge_mutation_validates_with_its_variables() -> None:
    operation = check(ENABLE, {"input": INPUT})
    assert operation.operation.value == "mutation"


@pytest.mark.parametrize(
    ("document", "variables", "problem"),
    [
        (ENABLE.replace("clientMutationId", "clientMutationID"), {"input": INPUT}, "Cannot query field"),
        (ENABLE.replace("EnablePullRequestAutoMergeInput", "EnableAutoMergeInput"), {"input": INPUT}, "Unknown type"),
        (ENABLE, {"input": INPUT | {"mergeMethod": "SQUISH"}}, "does not exist in 'PullRequestMergeMethod'"),
        (ENABLE, {"input": {"mergeMethod": "MERGE"}}, "pullRequestId"),
        (ENABLE, {"input": INPUT | {"deleteBranch": True}}, "deleteBranch"),
    ],
    ids=["misspelled-field", "unknown-input-type", "bad-enum-value", "missing-required-input", "unknown-input-field"],
)
def test_a_wrong_document_or_wrong_variables_fail(document: str, variables: dict, problem: str) -> None:
    with pytest.raises(AssertionError, match=problem):
        check(document, variables)


def test_an_answer_takes_the_documents_shape_and_fails_when_the_schema_needs_more() -> None:
    actor = {"__typename": "Bot", "avatarUrl": "https://x", "login": "rb[bot]", "resourcePath": "/apps/rb", "url": "u"}
    sent = answer(ENABLE, {"input": INPUT}, {"enablePullRequestAutoMerge": {"actor": actor, "clientMutationId": None}})
    selected = {k: v for k, v in actor.items() if k != "__typename"}  # not asked for, so not sent
    assert sent == {"data": {"enablePullRequestAutoMerge": {"actor": selected, "clientMutationId": None}}}
    query = "mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id}) { pullRequest { number } } }"
    with pytest.raises(AssertionError, match=r"non-nullable field PullRequest\.number"):
        answer(query, {"id": "PR_1"}, {"enablePullRequestAutoMerge": {"pullRequest": {"title": "no number"}}})


def test_a_refusal_is_githubs_error_shape() -> None:
    said = refusal(ENABLE, "Auto merge is not allowed for this repository")
    assert said["data"] == {"enablePullRequestAutoMerge": None}
    [error] = said["errors"]
    assert error["path"] == ["enablePullRequestAutoMerge"] and error["locations"] == [{"line": 1, "column": 63}]
