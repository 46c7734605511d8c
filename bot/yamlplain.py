"""Plain data from YAML, fast, for checks that need no round trip (``validate``, the catalog).

:func:`load_all` answers what ``[yamlio.to_plain(d) for d in yamlio.load_all(text, source)]``
answers, about twenty times faster: libyaml's event parser (PyYAML's C ``CParser``) instead of
ruamel's pure-Python scanner, the events turned into dicts, lists and scalars here, in one loop,
with ruamel's own YAML 1.2 rules for plain scalars (``on`` stays a string, ``0755`` is the
integer 755, ``1_000`` is 1000, as ruamel reads them) and the same guard as :mod:`bot.yamlio`,
fed the same events as they arrive.

Whatever this reader would not reproduce exactly is handed to the round-trip path, which then
gives the answer, or the located refusal, it always gave: explicit tags, ``%YAML``/``%TAG``
directives, merge keys, timestamps, keys that are not strings, duplicate keys, aliases of an
unfinished collection, tabs, anything libyaml or the guard refuses. Without libyaml every file
takes that path.

It keeps no comments, styles or line numbers: a caller that finds a problem in the plain data
re-loads that file with :mod:`bot.yamlio` to say where. An alias becomes a shared reference,
not a copy; the guard has already bounded what walking it as a tree costs, and nothing here
mutates the result.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml.resolver import implicit_resolvers

from bot import yamlio
from bot.errors import YamlError

try:  # PyYAML built with libyaml; a PyYAML without it has no C parser to offer
    from yaml import YAMLError as _LibyamlError
    from yaml._yaml import CParser as _CParser
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    _CParser = None
    _LibyamlError = Exception

_STR, _INT, _FLOAT, _BOOL, _NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))

# ruamel's implicit resolvers for YAML 1.2 (its default), by first character, in ruamel's order:
# the same table ruamel's VersionedResolver consults, so a plain scalar gets the same type.
_RESOLVERS: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
for _versions, _tag, _regexp, _first in implicit_resolvers:
    if (1, 2) in _versions:
        for _ch in _first:
            _RESOLVERS.setdefault(_ch, []).append((_tag, _regexp))


class _NeedsRoundTrip(Exception):
    """Something only the round-trip path reads exactly."""


def _int(text: str) -> int:
    # ruamel's construct_yaml_int for YAML 1.2: a leading 0 is decimal, 0o is octal.
    value = text.replace("_", "")
    sign = -1 if value[0] == "-" else 1
    if value[0] in "+-":
        value = value[1:]
    for prefix, base in (("0b", 2), ("0x", 16), ("0o", 8)):
        if value.startswith(prefix):
            return sign * int(value[2:], base)
    return sign * int(value)


def _float(text: str) -> float:
    # ruamel's construct_yaml_float for YAML 1.2.
    value = text.replace("_", "").lower()
    sign = -1 if value[0] == "-" else 1
    if value[0] in "+-":
        value = value[1:]
    if value == ".inf":
        return sign * float("inf")
    if value == ".nan":
        return float("nan")
    return sign * float(value)


def _plain_scalar(value: str) -> Any:
    for tag, regexp in _RESOLVERS.get(value[:1], ()):
        if regexp.match(value):
            if tag == _BOOL:
                return value.lower() == "true"
            if tag == _NULL:
                return None
            try:
                if tag == _INT:
                    return _int(value)
                if tag == _FLOAT:
                    return _float(value)
            except (ValueError, IndexError):
                raise _NeedsRoundTrip from None
            raise _NeedsRoundTrip  # merge keys, timestamps and ruamel's odd '=' and '!' values
    return value


_NO_KEY = object()


def _build(text: str, source: str) -> list[Any]:
    """One pass over libyaml's events: guard each, build plain documents."""
    if "\t" in text:
        # libyaml takes "key:<tab>value", which ruamel refuses; ruamel's verdict is the one that counts.
        raise _NeedsRoundTrip
    see = yamlio.Guard(source, None).see
    docs: list[Any] = []
    # Per open collection: the container, the key awaiting its value (_NO_KEY when the next
    # scalar is a key; None in a list), and its anchor.
    stack: list[list[Any]] = []
    anchors: dict[str, Any] = {}
    unfinished: set[str] = set()
    parser = _CParser(text)
    try:
        while (ev := parser.get_event()) is not None:
            see(ev)
            kind = type(ev).__name__
            if kind == "ScalarEvent":
                if ev.tag is not None:
                    raise _NeedsRoundTrip
                value: Any = _plain_scalar(ev.value) if ev.implicit[0] else ev.value
                if ev.anchor is not None:
                    anchors[ev.anchor] = value
            elif kind == "MappingStartEvent" or kind == "SequenceStartEvent":
                if ev.tag is not None:
                    raise _NeedsRoundTrip
                mapping = kind == "MappingStartEvent"
                container: Any = {} if mapping else []
                if ev.anchor is not None:
                    anchors[ev.anchor] = container
                    unfinished.add(ev.anchor)
                stack.append([container, _NO_KEY if mapping else None, ev.anchor])
                continue
            elif kind == "MappingEndEvent" or kind == "SequenceEndEvent":
                value, _, anchor = stack.pop()
                if anchor is not None:
                    unfinished.discard(anchor)
            elif kind == "AliasEvent":
                if ev.anchor not in anchors or ev.anchor in unfinished:
                    raise _NeedsRoundTrip  # undefined (the round trip says so), or recursive
                value = anchors[ev.anchor]
            elif kind == "DocumentStartEvent":
                if ev.version is not None or ev.tags:
                    raise _NeedsRoundTrip
                anchors = {}
                continue
            else:
                continue
            if not stack:
                docs.append(value)
                continue
            top = stack[-1]
            parent, key = top[0], top[1]
            if key is None:
                parent.append(value)
            elif key is _NO_KEY:
                if type(value) is not str or value in parent:
                    raise _NeedsRoundTrip  # a key to_plain would turn into a string, or a duplicate
                top[1] = value
            else:
                parent[key] = value
                top[1] = _NO_KEY
    finally:
        parser.dispose()
    return docs


def load_all(text: str, source: str, max_bytes: int = yamlio.MAX_BYTES) -> list[Any]:
    """Every document as plain data, as ``yamlio.to_plain`` would give it; refusals as yamlio's."""
    if _CParser is not None:
        try:
            yamlio.check_raw(text, source, max_bytes)
            return _build(text, source)
        except (_NeedsRoundTrip, YamlError, _LibyamlError):
            pass  # the round trip below answers, with its own located message
    return [yamlio.to_plain(doc) for doc in yamlio.load_all(text, source, max_bytes)]


def load(text: str, source: str, max_bytes: int = yamlio.MAX_BYTES) -> Any:
    """Exactly one document as plain data; refusals as :func:`bot.yamlio.load` gives them."""
    if _CParser is not None:
        try:
            yamlio.check_raw(text, source, max_bytes)
            docs = _build(text, source)
            if len(docs) == 1:
                return docs[0]
        except (_NeedsRoundTrip, YamlError, _LibyamlError):
            pass
    return yamlio.to_plain(yamlio.load(text, source, max_bytes))
