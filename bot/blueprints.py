"""Blueprints: plain YAML documents with ``${placeholders}`` in scalar values, rendered as data.

Rendering parses the blueprint, replaces placeholders in the parsed tree and returns a tree; it
never splices text into YAML, so no value can inject structure. The rules:

* A scalar that is exactly ``${name}`` takes the value itself, of any type: a string, a number,
  a mapping, a list. A value of ``None`` removes the key (or list item) altogether, which is how
  optional parts (autoscaling, a transformer) come and go.
* ``${name}`` inside a longer string is interpolated and must be a string or a number.
* ``$${`` writes a literal ``${`` (GitHub Actions and Argo CD have their own templating).
* A placeholder in a key, or a name nobody provides, is an error naming the blueprint file and line.

A catalog may name a folder of its own blueprints; a file there replaces the built-in file of the
same relative name. This module knows the rules above and nothing about any Kubernetes kind.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import ScalarString

from bot import yamlio
from bot.errors import Location, SecurityError, YamlError
from bot.resources import blueprints_dir

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_ESCAPE = "$${"


class Blueprint:
    """One parsed blueprint file, ready to render many times."""

    def __init__(self, doc: Any, source: str) -> None:
        self.doc = doc
        self.source = source
        _check_keys(doc, source, ())

    def render(self, values: Mapping[str, Any]) -> Any:
        out = copy.deepcopy(self.doc)
        return _render_node(out, values, self.source, ())


def _check_keys(node: Any, source: str, path: tuple[Any, ...]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and "${" in key:
                raise YamlError(
                    f"placeholder in a key ({key!r}): placeholders may only stand in values",
                    Location(source, _line(node, key), yamlio.format_path((*path, key))),
                )
            _check_keys(value, source, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_keys(value, source, (*path, i))


def _line(container: Any, key: Any) -> int | None:
    return yamlio.line_of(container, (key,))


def to_commented(value: Any) -> Any:
    """Plain dicts/lists -> ruamel containers, so inserted values dump like the rest of the file."""
    if isinstance(value, Mapping) and not isinstance(value, CommentedMap):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = to_commented(v)
        return out
    if isinstance(value, list | tuple) and not isinstance(value, CommentedSeq):
        return CommentedSeq(to_commented(v) for v in value)
    return value


def _lookup(name: str, values: Mapping[str, Any], source: str, line: int | None, path: Any) -> Any:
    if name not in values:
        known = ", ".join(sorted(values))
        raise YamlError(f"unknown placeholder ${{{name}}} (known: {known})", Location(source, line, path))
    return values[name]


def _substitute(text: str, values: Mapping[str, Any], source: str, line: int | None, path: str) -> Any:
    whole = _PLACEHOLDER.fullmatch(text)
    if whole:
        value = _lookup(whole.group(1), values, source, line, path)
        if isinstance(value, CommentedMap):
            value = copy.deepcopy(value)
            value.ca.comment = None  # a component blueprint's header comment stays in the blueprint
        return yamlio.quote_ambiguous(to_commented(copy.deepcopy(value)))

    def one(match: re.Match[str]) -> str:
        value = _lookup(match.group(1), values, source, line, path)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise YamlError(
                f"${{{match.group(1)}}} is part of a longer string, so it needs a string or number value, "
                f"not {type(value).__name__}",
                Location(source, line, path),
            )
        return str(value)

    parts = text.split(_ESCAPE)
    return "${".join(_PLACEHOLDER.sub(one, part) for part in parts)


def _render_node(node: Any, values: Mapping[str, Any], source: str, path: tuple[Any, ...]) -> Any:
    if isinstance(node, dict):
        keys: list[Any] = list(node)
    elif isinstance(node, list):
        keys = list(reversed(range(len(node))))  # backwards, so deleting an item keeps the others' indexes
    else:
        return node
    for key in keys:
        value = node[key]
        if isinstance(value, str) and "${" in value:
            new = _substitute(value, values, source, _line(node, key), yamlio.format_path((*path, key)))
            if new is None:
                del node[key]
            else:
                node[key] = type(value)(new) if isinstance(value, ScalarString) and isinstance(new, str) else new
        else:
            _render_node(value, values, source, (*path, key))
    return node


class BlueprintSet:
    """Finds blueprints by relative name: the catalog's own folder first, then the built-in ones."""

    def __init__(self, user_dir: Path | None = None) -> None:
        self.user_dir = user_dir
        self._cache: dict[str, Blueprint] = {}

    def _path(self, name: str) -> tuple[Path, str]:
        for root, label in ((self.user_dir, "blueprints (catalog)"), (blueprints_dir(), "blueprints")):
            if root is None:
                continue
            candidate = (root / name).resolve()
            # A blueprint name or a link inside the user's folder must not reach outside it.
            if not candidate.is_relative_to(root.resolve()):
                raise SecurityError(f"blueprint {name!r} resolves outside {root}")
            if candidate.is_file():
                return candidate, f"{label}/{name}" if root is blueprints_dir() else str(candidate)
        raise YamlError(f"no blueprint named {name!r}", Location(name))

    def get(self, name: str) -> Blueprint:
        if name not in self._cache:
            path, source = self._path(name)
            self._cache[name] = Blueprint(yamlio.load_file(path, source), source)
        return self._cache[name]

    def render(self, name: str, values: Mapping[str, Any]) -> Any:
        return self.get(name).render(values)
