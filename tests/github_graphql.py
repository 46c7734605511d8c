"""GitHub's GraphQL endpoint under ``responses``, checked against GitHub's own schema.

:func:`check` validates a document the bot sends, and its variables, against GitHub's public
GraphQL schema (``shared/upstream/github-graphql/schema.graphql`` beside the project, read in
place and pinned by its sha256): the document with
``graphql.validate`` (fields, arguments, types), the variables by coercing them to the types the
document declares (an unknown enum value, a missing required input field or a wrong type fails).

:func:`mock` answers one ``POST /graphql`` on a :class:`tests.github_api.GitHubMock` (so it counts
in ``checked`` and must be fired): the request is checked, then answered the way GitHub answers,
either with ``data`` run through the document against the schema (the answer then has exactly
the fields the document selects, with the schema's types and nullability; a field the answer
lacks where the schema needs one fails), or with GraphQL errors (HTTP 200, ``data`` null for the
field, and ``errors`` carrying ``type``, ``path``, ``locations`` and ``message``).

The schema is GitHub's public IDL as the npm package ``@octokit/graphql-schema@15.26.1`` ships it
(MIT; provenance in the shared upstream README). It is built once per test process (about a
second) with graphql-core 3.2 and ``assume_valid_sdl``: the IDL defines
``EnterpriseOwnerInfo.repositoryDeployKeySetting`` and ``…Organizations`` twice, and 3.3 adds a rule
on deprecated interface fields that this schema breaks in twelve places.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from graphql import FieldNode, GraphQLSchema, OperationDefinitionNode, build_schema, execute_sync, parse, validate
from graphql.execution.values import get_variable_values

from tests.conftest import PROJECT
from tests.github_api import BASE, GitHubMock

SCHEMA_FILE = PROJECT.parent / "shared/upstream/github-graphql/schema.graphql"
SCHEMA_SHA256 = "3c62d0526d133cee53221c89de9b455ade24db78b9e7ad56d642c4c15bce2654"


@functools.cache
def schema() -> GraphQLSchema:
    data = SCHEMA_FILE.read_bytes()
    # The version the bot's documents were checked against: another one is a decision, not drift.
    assert hashlib.sha256(data).hexdigest() == SCHEMA_SHA256, f"{SCHEMA_FILE} is not the pinned schema"
    return build_schema(data.decode("utf-8"), assume_valid_sdl=True)


def check(document: str, variables: dict[str, Any] | None = None) -> OperationDefinitionNode:
    """The document's one operation, after checking it and ``variables`` against GitHub's schema;
    AssertionError naming the first problem otherwise."""
    ast = parse(document)
    errors = validate(schema(), ast)
    assert not errors, f"GraphQL document does not match GitHub's schema: {errors[0].message}"
    operations = [d for d in ast.definitions if isinstance(d, OperationDefinitionNode)]
    assert len(operations) == 1, "one operation per request"
    coerced = get_variable_values(schema(), operations[0].variable_definitions or [], variables or {})
    assert not isinstance(coerced, list), f"GraphQL variables do not match GitHub's schema: {coerced[0].message}"
    return operations[0]


def answer(document: str, variables: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """What GitHub sends for ``document`` when its fields hold ``data`` (interface and union
    values name their type in ``__typename``)."""
    result = execute_sync(schema(), parse(document), root_value=data, variable_values=variables)
    assert not result.errors, f"the mocked GraphQL answer does not fit the schema: {result.errors[0].message}"
    return {"data": result.data}


def refusal(document: str, message: str, kind: str = "UNPROCESSABLE") -> dict[str, Any]:
    """GitHub's answer when the operation's first field fails: HTTP 200, the field null, and the
    error with its path and where the field sits in the document."""
    [operation] = [d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode)]
    field = operation.selection_set.selections[0]
    assert isinstance(field, FieldNode) and field.loc is not None
    name = field.name.value
    line, column = field.loc.source.get_location(field.loc.start)
    return {
        "data": {name: None},
        "errors": [{"type": kind, "path": [name], "locations": [{"line": line, "column": column}], "message": message}],
    }


def mock(
    gh: GitHubMock,
    data: dict[str, Any] | None = None,
    error: str | None = None,
    check_request: Callable[[str, dict[str, Any]], None] | None = None,
) -> None:
    """Answer the next ``POST /graphql`` with ``data`` (run through the document) or ``error``."""
    assert (data is None) != (error is None), "give data or an error"
    url = re.compile(re.escape(BASE).replace("com", "com(:443)?") + r"/graphql$")

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        sent = json.loads(request.body)
        assert set(sent) <= {"query", "variables", "operationName"}, sent
        document, variables = sent["query"], sent.get("variables") or {}
        check(document, variables)
        if check_request:
            check_request(document, variables)
        body = answer(document, variables, data) if data is not None else refusal(document, error or "")
        gh.checked += 1
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    gh.rsps.add_callback("POST", url, callback=callback)
