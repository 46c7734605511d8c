"""``environments/`` is exactly what ``releasebot init`` makes from its catalog, and stays so."""

from __future__ import annotations

import difflib
from pathlib import Path

from tests.conftest import EXAMPLE_DIR, tree
from tests.regenerate_environments import generate


def test_example_environments_repo_is_fresh(tmp_path: Path) -> None:
    fresh = tmp_path / "environments"
    generate(fresh)
    want, have = tree(fresh), tree(EXAMPLE_DIR)
    stale = sorted(set(want) ^ set(have)) + sorted(n for n in set(want) & set(have) if want[n] != have[n])
    detail = "".join(
        "".join(
            difflib.unified_diff(
                have.get(n, b"").decode().splitlines(True), want.get(n, b"").decode().splitlines(True), n, n
            )
        )
        for n in stale[:3]
    )
    assert not stale, f"environments/ is stale; run `make environments`. Differs: {stale}\n{detail}"


def test_example_environments_repo_passes_render_check_and_validate(run_cli) -> None:
    assert run_cli("render", "--check", EXAMPLE_DIR).code == 0
    result = run_cli("validate", EXAMPLE_DIR)
    assert result.code == 0, result.err


def test_example_has_three_models_and_three_environments() -> None:
    assert sorted(p.name for p in (EXAMPLE_DIR / "production").iterdir()) == [
        "credit-risk",
        "fraud-detector",
        "karpenter",
        "namespace.yaml",  # the environment's Namespace, so a first sync works on an empty cluster
        "review-sentiment",
    ]
    assert {p.name for p in EXAMPLE_DIR.iterdir() if p.is_dir() and not p.name.startswith(".")} == {
        "argocd",
        "dev",
        "staging",
        "production",
        "releasebot",  # the bot's own deployment, synced by argocd/releasebot-application.yaml
    }
