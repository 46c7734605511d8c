"""The README's configuration reference, generated from its two sources of truth.

* Environment variables: :mod:`bot.settings` (what the code reads them through).
* Catalog settings: ``schemas/catalog.schema.json`` (what ``releasebot.yaml`` is validated against),
  every property with its type, default and description.

Each table sits in the README between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``.
``python -m tests.regenerate_docs`` (``make docs``) rewrites them; ``tests/test_docs.py`` fails
when the README is stale. Nothing else in the README is touched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot import settings

PROJECT = Path(__file__).resolve().parent.parent
README = PROJECT / "README.md"
SCHEMA = PROJECT / "schemas/catalog.schema.json"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_table() -> str:
    lines = [
        "| variable | default | read by | `serve --config` | meaning |",
        "|---|---|---|---|---|",
    ]
    for s in settings.ALL:
        default = s.shown or (f"`{s.default}`" if s.default is not None else "—")
        meaning = s.meaning + (" Secret: never printed or logged." if s.secret else "")
        readers = ", ".join(f"`{r}`" for r in s.read_by)
        lines.append(f"| `{s.name}` | {_cell(default)} | {readers} | {'yes' if s.serve else ''} | {_cell(meaning)} |")
    return "\n".join(lines)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        return defs[name], name
    return node, None


def _scalar_def(target: dict[str, Any]) -> bool:
    return "properties" not in target and target.get("type") != "object"


def _type(node: dict[str, Any], defs: dict[str, Any]) -> str:
    target, ref = _resolve(node, defs)
    if ref is not None and _scalar_def(target):
        return f"[{ref}](#catalog-types)"
    if "enum" in target:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in target["enum"])
    if "const" in target:
        return f"`{json.dumps(target['const'])}`"
    kind = target.get("type")
    if kind == "array":
        return f"list of {_type(target.get('items', {}), defs)}"
    if kind == "object" and isinstance(target.get("additionalProperties"), dict) and "properties" not in target:
        return f"map of {_type(target['additionalProperties'], defs)}"
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind is None:
        alternatives = target.get("oneOf") or target.get("anyOf") or []
        return " or ".join(_type(a, defs) for a in alternatives) or "any"
    return str(kind)


def _rows(path: str, node: dict[str, Any], required: bool, defs: dict[str, Any], seen: dict[str, str]) -> Iterator[str]:
    target, ref = _resolve(node, defs)
    description = node.get("description") or target.get("description") or ""
    if ref is not None and _scalar_def(target):
        description = node.get("description") or ""  # the type's own text is in the types table
    default = node.get("default", target.get("default"))
    shown = "—" if default is None else f"`{json.dumps(default)}`"
    again = ref is not None and ref in seen and not _scalar_def(target)
    if again:
        description = f"{description} As `{seen[ref]}`.".strip()
    flag = " (required)" if required else ""
    yield f"| `{path}`{flag} | {_type(node, defs)} | {shown} | {_cell(description) or '—'} |"
    if again:
        return
    if ref is not None:
        seen[ref] = path
    if target.get("type") == "array":
        items, _ = _resolve(target.get("items", {}), defs)
        if "properties" in items:
            yield from _children(f"{path}[]", target["items"], defs, seen)
        return
    if "properties" in target:
        yield from _children(path, node, defs, seen)
    elif isinstance(target.get("additionalProperties"), dict):
        values, _ = _resolve(target["additionalProperties"], defs)
        if "properties" in values:
            yield from _children(f"{path}.<name>", target["additionalProperties"], defs, seen)


def _children(path: str, node: dict[str, Any], defs: dict[str, Any], seen: dict[str, str]) -> Iterator[str]:
    target, _ = _resolve(node, defs)
    required = set(target.get("required", []))
    for key, child in target.get("properties", {}).items():
        yield from _rows(f"{path}.{key}", child, key in required, defs, seen)


def catalog_table(schema: dict[str, Any] | None = None) -> str:
    schema = schema if schema is not None else json.loads(SCHEMA.read_text())
    defs = schema.get("$defs", {})
    lines = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    required = set(schema.get("required", []))
    seen: dict[str, str] = {}
    for key, child in schema["properties"].items():
        lines += _rows(key, child, key in required, defs, seen)
    lines += ["", '<a id="catalog-types"></a>', "", "| type | what it accepts |", "|---|---|"]
    for name, target in defs.items():
        if _scalar_def(target):
            lines.append(f"| `{name}` | {_cell(target.get('description', '')) or _type(target, defs)} |")
    return "\n".join(lines)


TABLES = {"environment variables": settings_table, "catalog settings": catalog_table}


def render(text: str) -> str:
    """``text`` with every generated block replaced by what the sources say now."""
    for name, make in TABLES.items():
        pattern = re.compile(
            rf"(<!-- generated: {re.escape(name)} -->\n)(?:.*?\n)?(<!-- end: {re.escape(name)} -->)", re.S
        )
        if not pattern.search(text):
            raise SystemExit(f"README.md has no generated block for {name!r}")
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main() -> None:
    README.write_text(render(README.read_text()))


if __name__ == "__main__":
    main()
