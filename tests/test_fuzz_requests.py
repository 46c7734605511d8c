"""Fuzzing ``serve``'s webhooks with mutated real payloads and headers, signed and unsigned.

Every request must get 202, 400, 401 or 413 — never a 5xx; an unsigned or wrongly signed one
must queue nothing, and whatever a signed one queues must be well-formed work for a model of
the catalog. The receiver is the real app, called as ASGI in this process (an HTTP client per request would
cost more than the receiver does); the work is a sink that records what would be queued (nothing
else writes in ``serve``: the worker only acts on queued items). Each example sends one mutated
body four ways: signed, unsigned, with the wrong secret, and with a garbage signature header.
Deterministic (``derandomize``, no example database), so a CI run is the same run every time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.catalog import Catalog
from bot.intake import CheckRequest, CommandRequest, sign_mlflow
from bot.metrics import Metrics
from bot.server import Receiver, Settings, create_app
from bot.work import Reconcile
from tests.test_hostile_requests import UPSTREAM_HOOKS
from tests.test_server import ALIAS_MOVED, CAT, GH_SECRET, HOOKS, ML_SECRET

MODES = ("signed", "unsigned", "wrong-secret", "garbage")
GITHUB_EXAMPLES = 1_750  # x 4 modes = 7,000 requests
MLFLOW_EXAMPLES = 750  # x 4 modes = 3,000 requests
NOW = 1_800_000_000.0
SHA = "0123456789abcdef0123456789abcdef01234567"


class _Recorder:
    def __init__(self) -> None:
        self.items: list[Hashable] = []

    def put(self, item: Hashable) -> None:
        self.items.append(item)

    def depth(self) -> int:
        return 0

    def scheduled(self) -> dict[Hashable, float]:
        # One walk waiting for its next look, so that events on main bring something forward.
        return {Reconcile("fraud-detector"): 0.0}


@dataclass
class SinkWork:
    """The receiver's :class:`bot.work.Work`, recording what would be queued and running nothing."""

    catalog_value: Catalog
    queue: _Recorder = field(default_factory=_Recorder)
    metrics: Metrics = field(default_factory=Metrics)

    def catalog(self) -> Catalog:
        return self.catalog_value

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def exposition(self) -> bytes:
        return b""


def _github_bases() -> list[tuple[str, str]]:
    """(event, JSON text) of every recorded payload, and variants that reach the routes that act."""
    bases = [(p.parent.name, p.read_text()) for p in sorted(UPSTREAM_HOOKS.glob("*/*.json"))]
    pr = json.loads((HOOKS / "pull_request_opened.payload.json").read_text())
    pr["pull_request"]["base"]["ref"] = "main"
    bases.append(("pull_request", json.dumps(pr)))
    pr["action"], pr["pull_request"]["head"]["ref"] = "closed", "releasebot/staging/credit-risk/release"
    bases.append(("pull_request", json.dumps(pr)))
    push = json.loads((HOOKS / "push_with-new-branch.payload.json").read_text())
    push["ref"] = "refs/heads/main"
    push["commits"][0]["modified"] = ["staging/credit-risk/inferenceservice.yaml"]
    bases.append(("push", json.dumps(push)))
    comment = json.loads((HOOKS / "issue_comment_comment.json").read_text())
    comment["comment"]["body"] = "/releasebot rollback 3"
    bases.append(("issue_comment", json.dumps(comment)))
    return bases


GITHUB_BASES = _github_bases()
MLFLOW_BASES = [
    json.dumps(ALIAS_MOVED),
    json.dumps({**ALIAS_MOVED, "action": "deleted"}),
    json.dumps({"entity": "model_version_tag", "action": "set", "data": {"name": "credit-risk", "key": "k"}}),
]
EVENTS = sorted({event for event, _ in GITHUB_BASES} | {"made-up"})

_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**20, max_value=10**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["main", "refs/heads/main", "releasebot/dev/fraud-detector/release", SHA, "/releasebot plan"])
)
JSON_VALUES = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
# Header bytes as a client may send them: anything but line breaks and NUL.
HEADER_BYTES = st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b""))


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _mutate(data: st.DataObject, text: str) -> bytes:
    """One to three edits to the JSON (replace a value, delete a key), or damage to its bytes."""
    how = data.draw(st.sampled_from(["values", "values", "values", "bytes", "deep", "whole"]))
    if how == "whole":
        return json.dumps(data.draw(JSON_VALUES)).encode()
    if how == "deep":
        depth = data.draw(st.integers(1, 5_000))
        return b'{"a":' * depth + b"1" + b"}" * data.draw(st.integers(0, depth))
    if how == "bytes":
        raw = bytearray(text.encode())
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, len(raw) - 1))
            raw[at : at + data.draw(st.integers(0, 3))] = data.draw(st.binary(max_size=4))
        return bytes(raw)
    payload = json.loads(text)
    paths = _paths(payload)
    for _ in range(data.draw(st.integers(1, 3))):
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        node = payload
        try:
            for key in path[:-1]:
                node = node[key]
            if isinstance(node, dict) and data.draw(st.booleans()):
                del node[path[-1]]
            else:
                node[path[-1]] = data.draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or retyped this path
    return json.dumps(payload).encode()


def _well_formed(item: Hashable) -> bool:
    if isinstance(item, Reconcile):
        return item.name in {m.name for m in CAT.models}
    if isinstance(item, CheckRequest):
        return (
            len(item.head_sha) in (40, 64)
            and isinstance(item.head_branch, str)
            and (item.pull_number is None or type(item.pull_number) is int)
        )
    if isinstance(item, CommandRequest):
        return type(item.number) is int and all(isinstance(s, str) for s in (item.user, item.line, item.issue_body))
    return False


class Fuzz:
    def __init__(self) -> None:
        self.work = SinkWork(CAT)
        self.receiver = Receiver(Settings(GH_SECRET, ML_SECRET, 3600), self.work, clock=lambda: NOW)
        self.app = create_app(self.receiver)
        self.loop = asyncio.new_event_loop()
        self.sent = 0
        self.statuses: dict[int, int] = {}

    def post(self, path: str, body: bytes, headers: dict[str, bytes]) -> int:
        """One POST through the app, as a server would hand it over. An exception escaping the app
        (which a server answers 500) fails the test with its traceback."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v) for k, v in headers.items()]
            + [(b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status: list[int] = []

        async def receive() -> dict:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        self.loop.run_until_complete(self.app(scope, receive, send))
        return status[0]

    def send(self, path: str, body: bytes, headers: dict[str, bytes], signed: bool) -> None:
        before = len(self.work.queue.items)
        status = self.post(path, body, headers)
        self.sent += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        assert status in (202, 400, 401, 413), (status, path, headers, body[:300])
        added = self.work.queue.items[before:]
        if not signed:
            assert status == 401 and not added, (status, added)
        if status != 202:
            assert not added, added
        assert all(_well_formed(item) for item in added), added


@pytest.fixture(scope="module")
def fuzz():
    f = Fuzz()
    yield f
    f.loop.close()


FUZZ = settings(
    max_examples=GITHUB_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


def test_mutated_github_deliveries_never_get_a_5xx_and_unsigned_ones_queue_nothing(fuzz: Fuzz) -> None:
    start, sent = time.monotonic(), fuzz.sent

    @FUZZ
    @given(data=st.data())
    def deliver(data: st.DataObject) -> None:
        event, text = data.draw(st.sampled_from(GITHUB_BASES))
        body = _mutate(data, text)
        event_header = data.draw(st.sampled_from([*EVENTS, event, event]).map(str.encode) | HEADER_BYTES)
        delivery = data.draw(HEADER_BYTES)
        garbage = data.draw(HEADER_BYTES | HEADER_BYTES.map(lambda b: b"sha256=" + b))
        for mode in MODES:
            headers = {"X-GitHub-Event": event_header, "X-GitHub-Delivery": delivery}
            secret = {"signed": GH_SECRET, "wrong-secret": "not-the-secret"}.get(mode)
            if secret:
                digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                headers["X-Hub-Signature-256"] = f"sha256={digest}".encode()
            elif mode == "garbage":
                headers["X-Hub-Signature-256"] = garbage
            fuzz.send("/webhooks/github", body, headers, signed=mode == "signed")

    deliver()
    assert fuzz.sent - sent >= GITHUB_EXAMPLES * len(MODES)
    print(f"github: {fuzz.sent - sent} requests in {time.monotonic() - start:.1f} s; statuses {fuzz.statuses}")


def test_mutated_mlflow_deliveries_never_get_a_5xx_and_unsigned_ones_queue_nothing(fuzz: Fuzz) -> None:
    start, sent = time.monotonic(), fuzz.sent

    @settings(FUZZ, max_examples=MLFLOW_EXAMPLES)
    @given(data=st.data())
    def deliver(data: st.DataObject) -> None:
        body = _mutate(data, data.draw(st.sampled_from(MLFLOW_BASES)))
        delivery = data.draw(st.sampled_from([b"m-1", b"m-2"]) | HEADER_BYTES)
        timestamp = data.draw(st.just(str(int(NOW)).encode()) | HEADER_BYTES)
        garbage = data.draw(HEADER_BYTES | HEADER_BYTES.map(lambda b: b"v1," + b))
        for mode in MODES:
            headers = {"X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": timestamp}
            secret = {"signed": ML_SECRET, "wrong-secret": "not-the-secret"}.get(mode)
            if secret:
                # Headers reach the app as latin-1 text; sign what it will read.
                text_delivery, text_timestamp = delivery.decode("latin-1"), timestamp.decode("latin-1")
                headers["X-MLflow-Signature"] = sign_mlflow(secret, text_delivery, text_timestamp, body).encode()
            elif mode == "garbage":
                headers["X-MLflow-Signature"] = garbage
            signed = mode == "signed" and bool(delivery) and timestamp == str(int(NOW)).encode()
            fuzz.send("/webhooks/mlflow", body, headers, signed=signed)

    deliver()
    assert fuzz.sent - sent >= MLFLOW_EXAMPLES * len(MODES)
    print(f"mlflow: {fuzz.sent - sent} requests in {time.monotonic() - start:.1f} s; statuses {fuzz.statuses}")
