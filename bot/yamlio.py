"""Guarded YAML input and byte-stable YAML output.

Every YAML file releasebot reads (catalogs, blueprints, manifests) comes through :func:`load`,
which refuses hostile or ambiguous input while it parses, before anything is constructed from it:

* files over :data:`MAX_BYTES` (or the caller's own cap);
* nesting deeper than :data:`MAX_DEPTH` (ruamel's composer recurses and its scanner is quadratic
  in flow depth, so a 10,000-deep ``[[[[`` would take a minute; a raw pre-scan stops it first);
* aliases that add more than :data:`MAX_EXPANDED_NODES` nodes when expanded (billion laughs);
* tags outside the YAML core schema (``!!python/object`` and friends, custom ``!tags``);
* duplicate keys, and more or fewer documents than expected.

The guard watches the parser's events as the composer consumes them, so each file is parsed once.

Output goes through :func:`dump`, configured so that a round trip is byte-identical apart from
the values we changed: quotes, comments, key order and indentation survive. Values releasebot
writes pass through :func:`quote_ambiguous` first, so a string that YAML 1.1 readers (Kubernetes,
Argo CD) would take for a boolean or number (``yes``, ``on``, ``0755``) is quoted.

This module knows nothing about catalogs or Kubernetes; it only loads, dumps and locates.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.parser import RoundTripParser
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from bot.errors import Location, YamlError

MAX_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64
MAX_EXPANDED_NODES = 100_000

_CORE_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}

PathElem = str | int
JsonPath = tuple[PathElem, ...]


def format_path(path: Sequence[PathElem]) -> str:
    """``("spec", "containers", 0, "image")`` -> ``$.spec.containers[0].image``."""
    out = "$"
    for elem in path:
        if isinstance(elem, int):
            out += f"[{elem}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", elem):
            out += f".{elem}"
        else:
            out += "[" + repr(elem) + "]"
    return out


# --- input -----------------------------------------------------------------------------------


_PRESCAN = re.compile(r"[\[\]{}'\"#\n]")


def _flow_depth_prescan(text: str, source: str) -> None:
    """Refuse deep flow nesting without running ruamel's scanner, which is quadratic in it.

    A deliberately simple lexer that jumps between the characters that matter: it counts ``[``
    and ``{`` that can open a flow collection, skipping quoted strings inside flow context and
    comments. It can over-count (a bracket in a block scalar), never miss real flow nesting.
    """
    depth, line, quote, pos = 0, 1, "", 0
    while (match := _PRESCAN.search(text, pos)) is not None:
        i, ch = match.start(), match.group()
        pos = i + 1
        if ch == "\n":
            line += 1
        elif quote:
            if ch == quote == "'" and text.startswith("''", i):
                pos = i + 2  # '' is an escaped quote inside single quotes
            elif ch == quote:
                j = i - 1
                while quote == '"' and j >= 0 and text[j] == "\\":
                    j -= 1
                if (i - 1 - j) % 2 == 0:  # an even run of backslashes does not escape the quote
                    quote = ""
        elif ch == "#" and (i == 0 or text[i - 1] in " \t\n"):
            newline = text.find("\n", i)
            if newline < 0:
                return
            pos = newline
        elif ch in "'\"":
            if depth > 0:
                quote = ch
        elif ch in "[{":
            if depth == 0:
                j = i - 1
                while j >= 0 and text[j] in " \t":
                    j -= 1
                if j >= 0 and text[j] not in "\n:-?,":
                    continue  # a bracket inside a plain scalar, such as items[0]
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlError(f"nesting deeper than {MAX_DEPTH} levels is refused", Location(source, line))
        elif depth > 0:
            depth -= 1


class Guard:
    """The hostile-input checks, applied to parser events as the composer consumes them.

    Seeing each event once, as it is used, is what lets one parse both build the document and
    guard it: a refusal stops the parse at the offending event (a 10,000-deep document is refused
    at level 65, before ruamel's recursive composer gets deep). It works on the event stream of
    ruamel and of PyYAML alike (same event class names, same fields).

    Alias expansion counts only what aliases add: each alias adds the expanded size of its
    anchor's subtree, so an honest file of any size adds nothing, while a billion-laughs file
    (sizes multiplying level by level) passes the limit within a few lines. An alias also carries
    its anchor's height, so aliases cannot nest a document deeper than :data:`MAX_DEPTH` either.
    """

    __slots__ = ("added", "anchors", "docs", "documents", "open", "source")

    def __init__(self, source: str, documents: int | None) -> None:
        self.source = source
        self.documents = documents
        self.docs = 0
        self.added = 0
        self.open: list[list[Any]] = []  # per open collection: [anchor, expanded size, height]
        self.anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded size, height)

    def _where(self, ev: Any) -> Location:
        return Location(self.source, ev.start_mark.line + 1 if ev.start_mark else None)

    def _too_deep(self, ev: Any) -> YamlError:
        return YamlError(f"nesting deeper than {MAX_DEPTH} levels is refused", self._where(ev))

    def _check_tag(self, ev: Any) -> None:
        tag = ev.tag
        if tag is not None and tag not in _CORE_TAGS and tag != "!":
            raise YamlError(
                f"YAML tag {tag!r} is refused: only the core schema (str, int, float, bool, null, map, seq) is allowed",
                self._where(ev),
            )

    def see(self, ev: Any) -> None:
        kind = type(ev).__name__
        top = self.open[-1] if self.open else None
        if kind == "ScalarEvent":
            if ev.tag is not None:
                self._check_tag(ev)
            if top is not None:
                top[1] += 1
            if ev.anchor:
                self.anchors[ev.anchor] = (1, 0)
        elif kind in ("MappingStartEvent", "SequenceStartEvent"):
            if ev.tag is not None:
                self._check_tag(ev)
            if len(self.open) >= MAX_DEPTH:
                raise self._too_deep(ev)
            self.open.append([ev.anchor, 1, 1])
        elif kind in ("MappingEndEvent", "SequenceEndEvent"):
            anchor, size, height = self.open.pop()
            if self.open:
                parent = self.open[-1]
                parent[1] += size
                parent[2] = max(parent[2], height + 1)
            if anchor:
                self.anchors[anchor] = (size, height)
        elif kind == "AliasEvent":
            # An alias of a collection still open (a recursive document) is counted as one node.
            size, height = self.anchors.get(ev.anchor, (1, 0))
            if len(self.open) + height > MAX_DEPTH:
                raise self._too_deep(ev)
            self.added += size
            if self.added > MAX_EXPANDED_NODES:
                raise YamlError(
                    f"aliases expand to more than {MAX_EXPANDED_NODES} nodes (a 'billion laughs' document?)",
                    self._where(ev),
                )
            if top is not None:
                top[1] += size
                top[2] = max(top[2], height + 1)
        elif kind == "DocumentStartEvent":
            self.docs += 1
            if self.documents is not None and self.docs > self.documents:
                raise YamlError(
                    f"expected {self.documents} YAML document, found another one starting here", self._where(ev)
                )
        elif kind == "StreamEndEvent" and self.documents is not None and self.docs < self.documents:
            raise YamlError("the file holds no YAML document", Location(self.source, 1))


class _GuardedParser(RoundTripParser):
    """ruamel's round-trip parser, showing every event to the loader's guard as it is consumed."""

    def get_event(self) -> Any:
        event = super().get_event()
        if event is not None:
            self.loader.guard.see(event)
        return event


class _GuardedYAML(YAML):
    guard: Guard


def _mark_location(source: str, exc: MarkedYAMLError) -> Location:
    mark = exc.problem_mark or exc.context_mark
    return Location(source, mark.line + 1 if mark else None)


Style = tuple[int, int, int]  # ruamel's (mapping, sequence, offset) indentation
DEFAULT_STYLE: Style = (2, 4, 2)


def guess_style(text: str) -> Style:
    """The indentation a file already uses, so that dumping it again moves nothing.

    ruamel applies one indentation to a whole file; a file written as ``key:\n- item`` would be
    re-indented wholesale if we dumped it with our default. Mixed styles fall back to the first seen.
    """
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    mapping = offset = None
    for above, below in itertools.pairwise(lines):
        if not above.rstrip().endswith(":"):
            continue
        key_col = len(above) - len(above.lstrip(" -"))
        below_col = len(below) - len(below.lstrip(" "))
        body = below.lstrip(" ")
        if body.startswith("- ") or body == "-":
            if offset is None and below_col >= key_col:
                offset = below_col - key_col
        elif mapping is None and below_col > key_col:
            mapping = below_col - key_col
        if mapping is not None and offset is not None:
            break
    mapping = mapping or DEFAULT_STYLE[0]
    offset = DEFAULT_STYLE[2] if offset is None else offset
    return (mapping, offset + 2, offset)


def _yaml(style: Style = DEFAULT_STYLE) -> _GuardedYAML:
    y = _GuardedYAML(typ="rt")
    y.preserve_quotes = True
    y.indent(mapping=style[0], sequence=style[1], offset=style[2])
    # Never fold long strings (URIs, JSON bodies): a fold is a diff nobody asked for.
    y.width = 4096
    return y


def load(text: str, source: str, max_bytes: int = MAX_BYTES) -> Any:
    """Load exactly one YAML document round-trip (comments kept), refusing hostile input."""
    docs = list(_load(text, source, 1, max_bytes))
    return docs[0]


def load_all(text: str, source: str, max_bytes: int = MAX_BYTES) -> list[Any]:
    """Load every document of a multi-document file (same guards, any number of documents)."""
    return list(_load(text, source, None, max_bytes))


def check_raw(text: str, source: str, max_bytes: int = MAX_BYTES) -> None:
    """The checks that must run before any parser sees the text: its size and its flow nesting."""
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise YamlError(f"file is larger than {max_bytes // 1024} KiB", Location(source))
    _flow_depth_prescan(text, source)


def _load(text: str, source: str, documents: int | None, max_bytes: int = MAX_BYTES) -> Iterator[Any]:
    check_raw(text, source, max_bytes)
    y = _yaml()
    y.Parser = _GuardedParser
    y.guard = Guard(source, documents)
    try:
        if documents == 1:
            yield y.load(text)
        else:
            yield from y.load_all(text)
    except YamlError:
        raise
    except DuplicateKeyError as exc:
        key = re.search(r'found duplicate key "([^"]*)"', str(exc))
        name = key.group(1) if key else "?"
        raise YamlError(f"duplicate key {name!r}", _mark_location(source, exc)) from None
    except MarkedYAMLError as exc:
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlError(f"invalid YAML: {problem}", _mark_location(source, exc)) from None
    except YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}", Location(source)) from None
    except (ValueError, IndexError):
        # ruamel's number constructors fail on a few scalars its resolver calls numbers ("-_", "0b_").
        raise YamlError("invalid YAML: a value that looks like a number but is not one", Location(source)) from None
    except RecursionError:
        # The guard refuses deep nesting long before this; kept so that no input reaches a traceback.
        raise YamlError(f"nesting deeper than {MAX_DEPTH} levels is refused", Location(source)) from None


def read_text(path: Path, source: str | None = None, max_bytes: int = MAX_BYTES) -> str:
    """A YAML file's text, refused when unreadable, larger than ``max_bytes`` or not UTF-8."""
    name = source or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise YamlError(f"cannot read file: {exc.strerror}", Location(name)) from None
    if len(raw) > max_bytes:
        raise YamlError(f"file is larger than {max_bytes // 1024} KiB", Location(name))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"file is not UTF-8 (byte {exc.start})", Location(name)) from None


def load_file(path: Path, source: str | None = None) -> Any:
    """:func:`load` on a file; ``source`` is the name used in messages (default: the path)."""
    return load(read_text(path, source), source or str(path))


# --- output ----------------------------------------------------------------------------------

# Plain strings that YAML 1.1 readers (Kubernetes' sigs.k8s.io/yaml, Argo CD) would turn into
# booleans or numbers although YAML 1.2 (ruamel's default) keeps them as strings.
_YAML11_AMBIGUOUS = re.compile(
    r"(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF"
    r"|[-+]?0[0-7_]+|[-+]?0b[01_]+|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?"
    r"|[-+]?[0-9][0-9_]*_[0-9_]*)"
)


def quote_ambiguous(node: Any) -> Any:
    """Wrap strings a YAML 1.1 reader would mistake for booleans or numbers in double quotes.

    Applied to values releasebot writes, never to a whole existing file: a person's unquoted
    ``yes`` elsewhere in a manifest is theirs to keep.
    """
    if isinstance(node, dict):
        for k in list(node):
            node[k] = quote_ambiguous(node[k])
        return node
    if isinstance(node, list):
        for i, v in enumerate(node):
            node[i] = quote_ambiguous(v)
        return node
    if type(node) is str and _YAML11_AMBIGUOUS.fullmatch(node):
        return DoubleQuotedScalarString(node)
    return node


def dump(doc: Any, style: Style = DEFAULT_STYLE) -> str:
    """Serialise one document with the settings that make round trips byte-stable.

    Pass the :func:`guess_style` of the file the document came from when writing it back.
    """
    buf = io.StringIO()
    _yaml(style).dump(doc, buf)
    return buf.getvalue()


# --- navigation ------------------------------------------------------------------------------


def line_of(doc: Any, path: Sequence[PathElem]) -> int | None:
    """1-based line of the deepest node on ``path`` that exists in a round-trip document."""
    line: int | None = 1
    node = doc
    for elem in path:
        try:
            if isinstance(node, CommentedMap) and elem in node:
                line = node.lc.key(elem)[0] + 1
                node = node[elem]
            elif isinstance(node, CommentedSeq) and isinstance(elem, int) and 0 <= elem < len(node):
                line = node.lc.item(elem)[0] + 1
                node = node[elem]
            else:
                break
        except (KeyError, IndexError, TypeError):
            break
    return line


def to_plain(node: Any) -> Any:
    """ruamel round-trip objects -> plain dict/list/str/int/float/bool/None (for JSON Schema)."""
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    # ruamel's ScalarBoolean subclasses int; its repr tells it apart.
    if type(node).__name__ == "ScalarBoolean":
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if type(node).__name__ == "TaggedScalar":  # an explicit core tag such as ``!!str 5``
        return str(node.value)
    return node
