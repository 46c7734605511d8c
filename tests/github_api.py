"""GitHub mocks that must match GitHub's own OpenAPI description.

:class:`GitHubMock` wraps ``responses`` (``assert_all_requests_are_fired=True``): each mocked
operation is named by its OpenAPI operationId, its request body is validated against the
operation's request schema and its response against the response schema for its status, using
the REST subset in ``tests/fixtures/github`` and the operations extracted beside it.
Response bodies start from the description's own examples, so they look like what GitHub sends.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import responses
from openapi_schema_validator import OAS30Validator

FIXTURES = Path(__file__).parent / "fixtures/github"


def _load_spec() -> dict[str, Any]:
    """The subset, plus the operations extracted beside it from the same upstream file."""
    spec = json.loads((FIXTURES / "api.github.com.subset.json").read_text())
    extra = json.loads((FIXTURES / "api.github.com.extra.json").read_text())
    for path, ops in extra["paths"].items():
        spec["paths"].setdefault(path, {}).update(ops)
    for kind, items in extra["components"].items():
        for name, node in items.items():
            # A shared component must be the same text in both, or one file is not what it claims.
            assert spec["components"].setdefault(kind, {}).setdefault(name, node) == node, f"{kind}/{name} differs"
    return spec


SPEC = _load_spec()
BASE = "https://api.github.com"


def _strip_discriminator(node: Any) -> Any:
    """Adapt two spots where OAS30Validator reads GitHub's description differently from GitHub.

    * ``discriminator`` sits beside inline ``oneOf`` without a mapping; the validator misreads it.
    * ``nullable`` beside an ``enum`` without null (a check run's ``conclusion``): GitHub sends
      null, and OpenAPI 3.0.3 says nullable adds null to the allowed values; the validator
      refuses it. The copy handed to the validator lists null in such enums.
    """
    if isinstance(node, dict):
        out = {k: _strip_discriminator(v) for k, v in node.items() if k != "discriminator"}
        if out.get("nullable") is True and isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    if isinstance(node, list):
        return [_strip_discriminator(v) for v in node]
    return node


_COMPONENTS = _strip_discriminator(SPEC["components"])
_OPS: dict[str, tuple[str, str, dict[str, Any]]] = {}
for _path, _ops in SPEC["paths"].items():
    for _method, _op in _ops.items():
        if isinstance(_op, dict) and "operationId" in _op:
            _OPS[_op["operationId"]] = (_method.upper(), _path, _op)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = SPEC["components"][kind][name]
    return node


def validate(schema: dict[str, Any], instance: Any, what: str) -> None:
    validator = OAS30Validator({**_strip_discriminator(schema), "components": _COMPONENTS})
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        raise AssertionError(f"{what} does not match GitHub's schema at {list(e.absolute_path)}: {e.message[:300]}")


def example(name: str) -> Any:
    return copy.deepcopy(SPEC["components"]["examples"][name]["value"])


def pull_request(number: int, head: str, title: str, body: str, owner: str = "acme", repo: str = "envs") -> dict:
    pr = example("pull-request")
    api = f"{BASE}/repos/{owner}/{repo}"
    pr.update(
        number=number,
        title=title,
        body=body,
        state="open",
        html_url=f"https://github.com/{owner}/{repo}/pull/{number}",
        url=f"{api}/pulls/{number}",
        issue_url=f"{api}/issues/{number}",
        comments_url=f"{api}/issues/{number}/comments",
    )
    pr["head"]["ref"] = head
    pr["base"]["ref"] = "main"
    # The upstream example's requested_teams items lack the required "type" (a known upstream flaw).
    pr["requested_teams"] = []
    return pr


def pull_simple(number: int, head: str, title: str, body: str) -> dict:
    item = example("pull-request-simple-items")[0]
    full = pull_request(number, head, title, body)
    for key in ("number", "title", "body", "state", "html_url", "url", "issue_url", "comments_url"):
        item[key] = full[key]
    item["head"]["ref"] = head
    item["base"]["ref"] = "main"
    item["requested_teams"] = []
    return item


def issue(number: int, title: str, body: str, state: str = "open", owner: str = "acme", repo: str = "envs") -> dict:
    item = example("issue")
    api = f"{BASE}/repos/{owner}/{repo}"
    item.update(
        number=number,
        title=title,
        body=body,
        state=state,
        html_url=f"https://github.com/{owner}/{repo}/issues/{number}",
        url=f"{api}/issues/{number}",
        comments_url=f"{api}/issues/{number}/comments",
    )
    item.pop("pull_request", None)  # an issue, not a pull request
    return item


def permission(login: str, level: str) -> dict:
    """A collaborator-permission answer. The upstream example lacks user.role_name, which its
    schema requires; GitHub sends it."""
    answer = example("repository-collaborator-permission-response-if-user-has-admin-permissions")
    role = {"admin": "admin", "write": "write", "read": "read", "none": "read"}[level]
    answer.update(permission=level, role_name=role)
    answer["user"].update(login=login, role_name=role)
    return answer


def check_run(run_id: int, head_sha: str, status: str = "in_progress", conclusion: str | None = None) -> dict:
    run = example("check-run")
    run.update(
        id=run_id,
        head_sha=head_sha,
        name="releasebot/validate",
        status=status,
        url=f"{BASE}/repos/acme/envs/check-runs/{run_id}",
        html_url=f"https://github.com/acme/envs/runs/{run_id}",
    )
    run["conclusion"] = conclusion  # null while in progress, as GitHub sends it
    return run


class GitHubMock:
    def __init__(self) -> None:
        self.rsps = responses.RequestsMock(assert_all_requests_are_fired=True)
        self.checked = 0

    def __enter__(self) -> GitHubMock:
        self.rsps.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.rsps.__exit__(*exc)

    def passthru(self, prefix: str) -> None:
        self.rsps.add_passthru(prefix)

    def add(
        self,
        operation: str,
        params: dict[str, Any],
        status: int,
        body: Any = None,
        query: dict[str, str] | None = None,
        check_request: Callable[[dict[str, Any], Any], None] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        extra_headers = headers or {}
        method, template, op = _OPS[operation]
        path, patterns = template, {}
        for key, value in params.items():
            if isinstance(value, re.Pattern):  # a value the test cannot know beforehand (a commit made in it)
                patterns[f"PARAM{len(patterns)}PARAM"], value = value.pattern, f"PARAM{len(patterns)}PARAM"
            path = path.replace("{" + key + "}", str(value))
        where = re.escape(path)
        for token, pattern in patterns.items():
            where = where.replace(token, f"(?:{pattern})")
        url = re.compile(re.escape(BASE).replace("com", "com(:443)?") + where + r"(\?.*)?$")
        responses_spec = op["responses"].get(str(status))
        if responses_spec is None and status == 401:
            # GitHub answers 401 on every endpoint; the description documents it once, as a component.
            responses_spec = SPEC["components"]["responses"]["requires_authentication"]
        if responses_spec is None and status in (429, 500, 502, 503, 504):
            # GitHub's rate limiter and front end answer these on any endpoint; the description
            # documents them on a few operations only, with the same error shape.
            responses_spec = SPEC["components"]["responses"]["service_unavailable"]
        assert responses_spec is not None, f"{operation} has no documented {status} response"

        def callback(request: Any) -> tuple[int, dict[str, str], str]:
            # A callable body is made when the request comes: for answers that name what the
            # code under test made a moment before (a commit it pushed).
            answer = body() if callable(body) else body
            if query:
                from urllib.parse import parse_qsl, urlsplit

                got = dict(parse_qsl(urlsplit(request.url).query))
                assert all(got.get(k) == v for k, v in query.items()), f"{operation} query {got} lacks {query}"
            sent = json.loads(request.body) if request.body else None
            if "requestBody" in op and sent is not None:
                schema = _resolve(op["requestBody"])["content"]["application/json"]["schema"]
                validate(schema, sent, f"the request body of {operation}")
            if check_request:
                check_request(dict(request.headers), sent)
            content = _resolve(responses_spec).get("content", {})
            if answer is not None and "application/json" in content:
                validate(content["application/json"]["schema"], answer, f"the {status} response of {operation}")
            self.checked += 1
            # GitHub reports the rate limit on every answer; releasebot exports the remaining count.
            headers = {
                "Content-Type": "application/json",
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": str(5000 - self.checked),
                **extra_headers,
            }
            return status, headers, json.dumps(answer) if answer is not None else ""

        self.rsps.add_callback(method, url, callback=callback)
