"""Bad requests to ``serve``, one group per test: each gets a 4xx (never a 5xx), a log line saying
why, and no work. Real recorded payloads still route exactly as they did."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
from pathlib import Path

import pytest

from bot import intake
from bot.errors import InvalidRequest
from bot.server import MAX_BODY
from tests.conftest import PROJECT
from tests.test_server import ALIAS_MOVED, GH_SECRET, Harness, merged_pr, recorded

UPSTREAM_HOOKS = PROJECT.parent / "shared/upstream/github-webhooks/payload-examples"


@pytest.fixture
def h():
    harness = Harness()
    with harness.client:
        yield harness


def events(h: Harness, source: str, kind: str, outcome: str) -> float:
    return h.receiver.metrics.events.labels(source, kind, outcome)._value.get()


def raw_github(h: Harness, event: str, body: bytes, signature: bytes):
    return h.client.post(
        "/webhooks/github",
        content=body,
        headers={"X-GitHub-Event": event, "X-GitHub-Delivery": "d-raw", "X-Hub-Signature-256": signature},
    )


def raw_mlflow(h: Harness, body: bytes, timestamp: bytes, signature: bytes):
    return h.client.post(
        "/webhooks/mlflow",
        content=body,
        headers={"X-MLflow-Delivery-Id": "m-raw", "X-MLflow-Timestamp": timestamp, "X-MLflow-Signature": signature},
    )


# --- bad signature encodings -----------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        "sha256=é".encode("latin-1"),  # not ASCII: compare_digest refused to compare it (a 500 before)
        b"sha256=\xff\xfe" + b"0" * 62,
        "sha256=\uff41\uff42".encode(),  # fullwidth letters: UTF-8 bytes read as latin-1 text
        b"sha256=",
        b"md5=abc",
        b"garbage",
    ],
)
def test_github_signatures_that_do_not_decode_or_match_are_401_and_counted(
    h: Harness, signature: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps(merged_pr()).encode()
    with caplog.at_level(logging.WARNING, "releasebot.server"):
        response = raw_github(h, "pull_request", body, signature)
    assert response.status_code == 401
    assert response.text == "missing or malformed X-Hub-Signature-256" or "does not match" in response.text
    assert events(h, "github", "pull_request", "unauthorized") == 1
    assert any("unauthorized" in r.getMessage() for r in caplog.records)
    assert h.settle() == [] and h.receiver.queue.depth() == 0


@pytest.mark.parametrize(
    ("timestamp", "signature", "message"),
    [
        (None, "v1,é".encode("latin-1"), "X-MLflow-Signature does not match the body"),
        (None, b"v1,\xff" * 10, "X-MLflow-Signature does not match the body"),
        ("١٨٠٠٠٠٠٠٠٠".encode(), b"v1,x", "X-MLflow-Timestamp is not a number of seconds"),  # Arabic-Indic digits
        (b"9" * 400, b"v1,x", "X-MLflow-Timestamp is not a number of seconds"),  # too big for a float clock
        (b"-5", b"v1,x", "X-MLflow-Timestamp is not a number of seconds"),
    ],
)
def test_mlflow_signatures_and_timestamps_that_do_not_decode_are_401_and_counted(
    h: Harness, timestamp: bytes | None, signature: bytes, message: str
) -> None:
    response = raw_mlflow(h, json.dumps(ALIAS_MOVED).encode(), timestamp or str(int(h.now)).encode(), signature)
    assert (response.status_code, response.text) == (401, message)
    assert events(h, "mlflow", "unknown", "unauthorized") == 1
    assert h.settle() == [] and h.receiver.queue.depth() == 0


# --- signed JSON of the wrong shape ----------------------------------------------------------


def _set(payload: dict, path: tuple, value: object) -> dict:
    out = copy.deepcopy(payload)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def _comment() -> dict:
    return _set(recorded("issue_comment_comment.json"), ("comment", "body"), "/releasebot status")


def _opened() -> dict:
    return _set(recorded("pull_request_opened.payload.json"), ("pull_request", "base", "ref"), "main")


def _push() -> dict:
    return _set(recorded("push_with-new-branch.payload.json"), ("ref",), "refs/heads/main")


WRONG_SHAPES = {
    "pull_request is a string": ("pull_request", _set(merged_pr(), ("pull_request",), "x"), "$.pull_request is a"),
    "head.ref is missing": (
        "pull_request",
        _set(merged_pr(), ("pull_request", "head", "ref"), KeyError),
        "$.pull_request.head.ref is null",
    ),
    "head is an array": ("pull_request", _set(_opened(), ("pull_request", "head"), []), "$.pull_request.head is an"),
    "head.sha is not a commit id": (
        "pull_request",
        _set(_opened(), ("pull_request", "head", "sha"), "--upload-pack=x"),
        "$.pull_request.head.sha is not a commit id",
    ),
    "pull request number is a string": (
        "pull_request",
        _set(_opened(), ("pull_request", "number"), "2"),
        "$.pull_request.number is a string",
    ),
    "review without a pull request": (
        "pull_request_review",
        _set(recorded("pull_request_review_approved.json"), ("pull_request",), None),
        "$.pull_request is null",
    ),
    "issue.number is a string": ("issue_comment", _set(_comment(), ("issue", "number"), "2"), "$.issue.number is a"),
    "comment body is an object": (
        "issue_comment",
        _set(_comment(), ("comment", "body"), {"a": 1}),
        "$.comment.body is an object",
    ),
    "commits is an object": ("push", _set(_push(), ("commits",), {"a": 1}), "$.commits is an object"),
    "a commit is a string": ("push", _set(_push(), ("commits",), ["abc"]), "$.commits[0] is a string"),
    "modified holds a number": (
        "push",
        _set(_push(), ("commits", 0, "modified"), [7]),
        "$.commits[0].modified[0] is an integer",
    ),
    "check_run pull_requests holds arrays": (
        "check_run",
        _set(recorded("check_run_rerequested.payload.json"), ("check_run", "pull_requests"), [[1]]),
        "$.check_run.pull_requests[0] is an array",
    ),
    "the body is an array": ("pull_request", [merged_pr()], "expected a JSON object, got an array"),
    "the body is a number": ("push", 3, "expected a JSON object, got an integer"),
}


@pytest.mark.parametrize("case", sorted(WRONG_SHAPES))
def test_signed_github_json_of_the_wrong_shape_is_400_naming_the_path(
    h: Harness, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    event, payload, message = WRONG_SHAPES[case]
    with caplog.at_level(logging.WARNING, "releasebot.server"):
        response = h.github(event, json.dumps(payload).encode())
    assert response.status_code == 400 and message in response.text, response.text
    assert events(h, "github", event, "malformed") == 1
    assert [r.getMessage() for r in caplog.records if message in r.getMessage()], caplog.text
    assert h.settle() == [] and h.receiver.queue.depth() == 0
    # The delivery id was not used up: the sender's corrected retry is worked.
    if event == "pull_request" and case.startswith("pull_request is"):
        assert h.github(event, merged_pr()).json()["queued"] == ["fraud-detector"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({**ALIAS_MOVED, "data": ["fraud-detector"]}, "$.data is an array"),
        ({**ALIAS_MOVED, "data": {"name": 7}}, "$.data.name is an integer"),
        ({k: v for k, v in ALIAS_MOVED.items() if k != "data"}, "$.data is null"),
        ([ALIAS_MOVED], "expected a JSON object, got an array"),
    ],
)
def test_signed_mlflow_json_of_the_wrong_shape_is_400_naming_the_path(h: Harness, payload, message: str) -> None:
    response = h.mlflow(json.dumps(payload).encode())
    assert response.status_code == 400 and message in response.text, response.text
    assert h.settle() == [] and h.receiver.queue.depth() == 0


# --- too deep, too big -----------------------------------------------------------------------


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_json_nested_too_deep_is_400_before_it_is_parsed(h: Harness, opener: bytes) -> None:
    # 200,000 levels: far past the parser's recursion limit, well under the size cap.
    body = opener * 200_000
    assert len(body) <= MAX_BODY
    response = h.github("push", body)
    assert (response.status_code, response.text) == (400, "JSON nested deeper than 64 levels")
    response = h.mlflow(body)
    assert (response.status_code, response.text) == (400, "JSON nested deeper than 64 levels")
    assert h.settle() == [] and h.receiver.queue.depth() == 0


def test_the_depth_limit_counts_brackets_outside_strings_only() -> None:
    deep = b"[" * 65 + b"]" * 65
    with pytest.raises(InvalidRequest, match="deeper than 64"):
        intake.parse_json(deep)
    assert intake.parse_json(b"[" * 64 + b"]" * 64) is not None
    # Brackets, quotes and backslashes inside strings are text, not structure.
    text = json.dumps({"a": "[" * 500 + '\\"{' * 300, "b": [["x"]]}).encode()
    assert intake.parse_json(text)["b"] == [["x"]]
    assert intake._depth(b'["\\\\", [[["\\"]"]]]]', 10) == 4


@pytest.mark.parametrize("source", ["github", "mlflow"])
def test_a_body_over_the_cap_is_413_and_counted(h: Harness, source: str) -> None:
    body = b" " * (MAX_BODY + 1)
    response = h.github("push", body) if source == "github" else h.mlflow(body)
    assert response.status_code == 413
    assert events(h, source, "unknown", "too-large") == 1
    assert h.settle() == [] and h.receiver.queue.depth() == 0


def test_a_lying_content_length_does_not_crash_the_receiver(h: Harness) -> None:
    body = json.dumps(merged_pr()).encode()
    sig = "sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
    for length in ("²".encode("latin-1"), b"-1", b"1" * 50):
        response = h.client.post(
            "/webhooks/github",
            content=body,
            headers={"X-GitHub-Event": "ping", "X-Hub-Signature-256": sig, "Content-Length": length},
        )
        assert response.status_code < 500


# --- unknown events --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    # (status and check_suite are events releasebot routes: walks move on them; merge_group
    # checks_requested asks for the validate check; see test_server.)
    ["workflow_run", "deployment_status", "made-up", "é".encode("latin-1")],
)
def test_unknown_events_are_202_logged_and_not_worked(h: Harness, event, caplog: pytest.LogCaptureFixture) -> None:
    name = event if isinstance(event, str) else "x"
    folder = UPSTREAM_HOOKS / name
    payload = json.loads(next(folder.glob("*.json")).read_bytes()) if folder.is_dir() else {"anything": [1, {}]}
    body = json.dumps(payload).encode()
    sig = ("sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()).encode()
    with caplog.at_level(logging.INFO, "releasebot.server"):
        response = raw_github(h, event, body, sig)
    assert response.status_code == 202 and response.json()["queued"] == []
    assert "nothing to do" in caplog.text
    assert events(h, "github", "other", "ignored") == 1
    assert h.settle() == []


# --- real payloads are unchanged -------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(UPSTREAM_HOOKS.glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_recorded_github_payload_is_accepted(h: Harness, path: Path) -> None:
    response = h.github(path.parent.name, path.read_bytes())
    assert response.status_code == 202, response.text
