"""Golden trees: ``tests/golden/<case>/input`` rendered must equal ``expected``, file by file.

Regenerate after an intended blueprint change with ``pytest tests/test_golden.py --update-golden``
and review the diff of real manifests.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from bot.blueprints import BlueprintSet
from bot.catalog import CATALOG_FILE, load_catalog
from bot.manifests.render import dir_reader, list_files, plan_render, write_changes
from tests.conftest import tree

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input").is_dir())


def render_dir(root: Path) -> list[str]:
    cat = load_catalog(root / CATALOG_FILE, CATALOG_FILE)
    plan = plan_render(cat, BlueprintSet(cat.blueprints), dir_reader(root), list_files(root))
    write_changes(root, plan.changes)
    return [c.describe() for c in plan.changes]


@pytest.mark.parametrize("case", CASES)
def test_golden_tree(case: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    work = tmp_path / case
    shutil.copytree(GOLDEN / case / "input", work)
    render_dir(work)
    expected_dir = GOLDEN / case / "expected"
    if request.config.getoption("--update-golden"):
        shutil.rmtree(expected_dir, ignore_errors=True)
        shutil.copytree(work, expected_dir)
    got, want = tree(work), tree(expected_dir)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], "".join(
            difflib.unified_diff(want[name].decode().splitlines(True), got[name].decode().splitlines(True), name, name)
        )
    # Rendering the result again changes nothing.
    assert render_dir(work) == []


def test_one_owned_field_changes_exactly_one_line() -> None:
    """The catalog raised production max replicas 10 -> 12: the hand-edited, comment-rich manifest
    differs in that one line, and every comment, quote and human field is kept byte for byte."""
    name = "production/fraud-detector/inferenceservice.yaml"
    before = (GOLDEN / "owned-field-edit" / "input" / name).read_text().splitlines(True)
    after = (GOLDEN / "owned-field-edit" / "expected" / name).read_text().splitlines(True)
    assert len(before) == len(after)
    changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert changed == [
        (
            "    maxReplicas: 10   # raised after the Black Friday incident\n",
            "    maxReplicas: 12   # raised after the Black Friday incident\n",
        )
    ]
