"""The verbs of the real ``releasebot`` parser, and which of them a test has read as JSON.

A verb is a leaf of the parser's subcommands, named by its path (``plan``, ``drift run``).
A test that parses a verb's ``--output json`` document is marked
``@pytest.mark.json_output("<verb>", ...)``; it reads the document with :meth:`Result.json`
(tests/conftest.py) or :func:`parse`, which remember the verb, and tests/conftest.py fails a
marked test that never did. tests/test_cli_output.py checks that every verb has such a test.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
MARKER = "json_output"

# Verbs whose JSON a test parsed, in the test running now (conftest clears it per test).
parsed: set[str] = set()


def leaf_verbs(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every leaf subcommand of ``parser`` by its path: ``{"plan": ..., "drift run": ...}``."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= leaf_verbs(sub, f"{prefix}{name} ")
    if not found and prefix:
        found[prefix.strip()] = parser
    return found


def output_choices(parser: argparse.ArgumentParser) -> list[str]:
    """The choices of a verb's ``--output``, empty when it has none."""
    for action in parser._actions:
        if "--output" in action.option_strings:
            return list(action.choices or [])
    return []


def verb_of(argv: Sequence[str], parser: argparse.ArgumentParser | None = None) -> str | None:
    """The verb an argument list runs: its subcommand words, past any global options."""
    if parser is None:
        from bot.cli import build_parser

        parser = build_parser()
    words: list[str] = []
    tokens = list(argv)
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return " ".join(words) or None
        while tokens and tokens[0].startswith("-"):
            option = parser._option_string_actions.get(tokens.pop(0).split("=", 1)[0])
            if option is not None and option.nargs != 0 and tokens:
                tokens.pop(0)  # its value
        if not tokens or tokens[0] not in subs[0].choices:
            return None
        words.append(tokens[0])
        parser = subs[0].choices[tokens.pop(0)]


def parse(argv: Sequence[str], stdout: str) -> Any:
    """``stdout`` of ``releasebot ARGV --output json``: exactly one JSON document. Remembered."""
    args = [str(a) for a in argv]
    assert "json" in args[args.index("--output") + 1 :][:1] or "--output=json" in args, args
    document = json.loads(stdout)
    verb = verb_of(args)
    assert verb is not None, argv
    parsed.add(verb)
    return document


def marked_verbs(root: Path = TESTS) -> dict[str, list[str]]:
    """Verbs named by ``json_output`` markers in the test files under ``root``, with the tests."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Attribute)
                    and decorator.func.attr == MARKER
                ):
                    for arg in decorator.args:
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                            found.setdefault(arg.value, []).append(f"{path.name}::{node.name}")
    return found


def missing_json(marked: Sequence[str], seen: set[str]) -> list[str]:
    """The verbs a test is marked for but never parsed the JSON of."""
    return [verb for verb in marked if verb not in seen]
