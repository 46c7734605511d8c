"""Field ownership: copy the fields one owner controls from a desired document into an existing one.

An owned path is a tuple of mapping keys, list indexes and :class:`Sel` selectors (the list
element whose ``name`` is ...). :func:`apply_owned` edits the existing round-trip document in
place and touches nothing outside the owned paths, so comments, key order, quoting and every
human edit elsewhere survive byte for byte. Within an owned path, values are synced leaf by leaf,
so an unchanged leaf keeps its comment and quote style too.

Two modes:

* ``value``: the path's value must equal the desired one; absent in desired means removed.
* ``presence``: the owner decides only whether the path exists. When desired has it and the file
  does not, the desired subtree is copied whole; when desired lacks it, it is removed; otherwise
  it is left to the ``value`` paths below it and to people.

This module is pure: documents in, documents out, a list of changed paths as the receipt.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import ScalarString

from bot.yamlio import format_path, to_plain


@dataclass(frozen=True)
class Sel:
    """Selects the element of a list of mappings whose ``key`` equals ``value``."""

    key: str
    value: str

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


Elem = str | int | Sel
Path = tuple[Elem, ...]


@dataclass(frozen=True)
class Owned:
    path: Path
    mode: Literal["value", "presence"] = "value"


_MISSING = object()


def _step(node: Any, elem: Elem) -> Any:
    if isinstance(elem, Sel):
        if isinstance(node, list):
            for item in node:
                if isinstance(item, dict) and item.get(elem.key) == elem.value:
                    return item
        return _MISSING
    if isinstance(elem, int):
        return node[elem] if isinstance(node, list) and 0 <= elem < len(node) else _MISSING
    return node[elem] if isinstance(node, dict) and elem in node else _MISSING


def get(node: Any, path: Path) -> Any:
    for elem in path:
        node = _step(node, elem)
        if node is _MISSING:
            return _MISSING
    return node


def has(node: Any, path: Path) -> bool:
    """Whether ``path`` exists in ``node`` (with any value, null included)."""
    return get(node, path) is not _MISSING


def show(path: Path) -> str:
    """A readable JSON path; selectors print as ``[name=value]``."""
    out = "$"
    for elem in path:
        out += f"[{elem}]" if isinstance(elem, Sel) else format_path([elem])[1:]
    return out


def _parent(existing: Any, path: Path, create: bool) -> Any:
    node = existing
    for depth, elem in enumerate(path[:-1]):
        nxt = _step(node, elem)
        if nxt is _MISSING or nxt is None:
            if not create:
                return _MISSING
            # What we create depends on how the path goes on: a selector or index needs a list.
            below = path[depth + 1]
            fresh: Any = CommentedSeq() if isinstance(below, Sel | int) else CommentedMap()
            if isinstance(elem, Sel):
                nxt = CommentedMap([(elem.key, elem.value)])
                node.append(nxt)
            elif isinstance(node, dict):
                nxt = fresh
                node[elem] = nxt
            else:
                return _MISSING
        node = nxt
    return node


def _restyle(old: Any, new: Any) -> Any:
    """Keep the quote style of the value being replaced."""
    if isinstance(old, ScalarString) and isinstance(new, str) and not isinstance(new, ScalarString):
        return type(old)(new)
    return new


def _sync(container: Any, key: Any, desired: Any) -> bool:
    """Make ``container[key]`` equal ``desired``, editing as little as possible."""
    current = container[key]
    if to_plain(current) == to_plain(desired):
        return False
    if isinstance(current, CommentedMap) and isinstance(desired, dict):
        for k in [k for k in current if k not in desired]:
            del current[k]
        for pos, (k, v) in enumerate(desired.items()):
            if k in current:
                _sync(current, k, v)
            else:
                current.insert(min(pos, len(current)), k, copy.deepcopy(v))
        return True
    if isinstance(current, CommentedSeq) and isinstance(desired, list) and len(current) == len(desired):
        for i, v in enumerate(desired):
            _sync(current, i, v)
        return True
    container[key] = _restyle(current, copy.deepcopy(desired))
    return True


def _delete(parent: Any, elem: Elem) -> bool:
    if isinstance(elem, Sel):
        for i, item in enumerate(parent):
            if isinstance(item, dict) and item.get(elem.key) == elem.value:
                del parent[i]
                return True
        return False
    if isinstance(parent, dict) and elem in parent:
        del parent[elem]
        return True
    return False


def differs(existing: Any, desired: Any, owned: list[Owned]) -> bool:
    """Whether :func:`apply_owned` would change anything, asked of plain data without editing it.

    Deciding "nothing to do" from a fast plain parse is what keeps a pass over a settled fleet
    cheap; only a document that differs is loaded round trip to be edited. When in doubt (a
    parent that could not be created) it says "differs" and the round trip decides.
    """
    for rule in owned:
        want, have = get(desired, rule.path), get(existing, rule.path)
        if want is _MISSING:
            if have is not _MISSING:
                return True
            continue
        if rule.mode == "presence" and have is not _MISSING:
            continue
        if have is _MISSING or to_plain(have) != to_plain(want):
            return True
    return False


def apply_owned(existing: Any, desired: Any, owned: list[Owned]) -> list[str]:
    """Bring the owned paths of ``existing`` in line with ``desired``; return what changed."""
    changed: list[str] = []
    for rule in owned:
        want = get(desired, rule.path)
        have = get(existing, rule.path)
        last = rule.path[-1]
        if want is _MISSING:
            parent = _parent(existing, rule.path, create=False)
            if have is not _MISSING and parent is not _MISSING and _delete(parent, last):
                changed.append(show(rule.path))
            continue
        if rule.mode == "presence" and have is not _MISSING:
            continue
        parent = _parent(existing, rule.path, create=True)
        if parent is _MISSING:
            continue
        if have is _MISSING:
            if isinstance(last, Sel):
                parent.append(copy.deepcopy(want))
            elif isinstance(parent, dict):
                parent[last] = copy.deepcopy(want)
            else:
                continue
            changed.append(show(rule.path))
            continue
        if isinstance(last, Sel):
            index = next(i for i, item in enumerate(parent) if item is have)
            if _sync(parent, index, want):
                changed.append(show(rule.path))
        elif _sync(parent, last, want):
            changed.append(show(rule.path))
    return changed
