"""The import contract of DESIGN.md, as code: the core imports no adapter.

The core (the planner, capacity arithmetic, manifests, PR bodies, the catalog) must stay a set
of pure functions over values, testable with plain data. It may import other core modules and
small helpers (YAML, errors, schemas), never the modules that talk to MLflow, git, GitHub or
Kubernetes, nor those libraries themselves. The check follows imports transitively, including
imports inside functions, so a lazy import cannot slip an adapter in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parent.parent / "bot"
CORE = ("bot.plan", "bot.capacity", "bot.manifests", "bot.prbody", "bot.catalog", "bot.status", "bot.statuspage")
ADAPTERS = {
    "bot.registry",
    "bot.repo",
    "bot.forge",
    "bot.cluster",
    "bot.analysis",
    "bot.reconcile",
    "bot.service",
    "bot.server",
}
LIBRARIES = {"mlflow", "git", "github", "kubernetes", "requests", "urllib3", "httpx", "subprocess", "socket"}
# Terminals are the CLI's business: the core reports progress through a callback (bot.progress).
LIBRARIES |= {"rich", "shtab"}


def _module_files() -> dict[str, Path]:
    found = {}
    for path in BOT.rglob("*.py"):
        parts = path.relative_to(BOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, name: str) -> set[str]:
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}  # "from bot import registry" names a module
    return out


def _closure(start: str, files: dict[str, Path]) -> dict[str, str]:
    """Every module reachable from ``start``, with the module that first imported it."""
    seen = {start: "-"}
    todo = [start]
    while todo:
        current = todo.pop()
        for imported in _imports(files[current], current):
            target = imported if imported in files else None
            top = imported.split(".")[0]
            if target is None and top != "bot":
                seen.setdefault(imported, current)
                continue
            if target is not None and target not in seen:
                seen[target] = current
                todo.append(target)
    return seen


@pytest.mark.parametrize("core", CORE)
def test_core_imports_no_adapter(core: str) -> None:
    files = _module_files()
    starts = [name for name in files if name == core or name.startswith(core + ".")]
    assert starts, core
    for start in starts:
        reached = _closure(start, files)
        bad = {
            m: via
            for m, via in reached.items()
            if any(m == a or m.startswith(a + ".") for a in ADAPTERS) or m.split(".")[0] in LIBRARIES
        }
        assert not bad, f"{start} reaches adapters or I/O libraries (module <- imported by): {bad}"


def test_the_contract_catches_an_adapter_import(tmp_path: Path) -> None:
    """The check itself can fail: a module importing bot.registry lazily is caught."""
    files = _module_files()
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from bot.registry import Registry\n    return Registry\n")
    files["bot.plan.fake"] = fake
    reached = _closure("bot.plan.fake", files)
    assert "bot.registry" in reached


def test_adapter_value_types_live_in_the_core() -> None:
    from bot import registry
    from bot.plan import types

    for name in ("Version", "ModelState", "RegistrySnapshot", "Dataset"):
        assert getattr(registry, name) is getattr(types, name)


def test_the_demo_calls_library_functions_not_the_cli() -> None:
    files = _module_files()
    assert "bot.cli" not in _closure("bot.demo", files)
