"""Where a planned change goes once its branch is pushed: one module per forge.

A forge has eight verbs. ``propose`` makes the pushed branch reviewable (a pull request on GitHub;
nothing more on a plain git remote) and ``withdraw`` retracts a branch whose change is no longer
wanted; ``note`` tells reviewers something once; ``alert`` keeps one issue per alert key (drift,
or a quality gate's tracking issue) up to date; ``verdict`` reports a walk step's analysis and
``quality`` the quality gate's evidence on a proposed head; ``merge_when_ready`` hands a proposed
head to the forge's auto-merge; ``deployment`` records a walk step as a deployment. All must be
idempotent: the reconciler may call them again for the same key.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.plan import Alert, Change, Close, Key
from bot.plan.types import Deployment

if TYPE_CHECKING:
    from bot.metrics import Metrics
    from bot.repo import EnvRepo


class Forge(Protocol):
    def propose(self, change: Change, head: str) -> str:
        """Make the pushed branch of ``change`` reviewable; return where a person finds it."""
        ...

    def withdraw(self, close: Close) -> str:
        """Retract the branch of ``close``; return what was done."""
        ...

    def note(self, key: Key, message: str) -> str | None:
        """Say ``message`` where the key's reviewers will see it, once; None when nothing was said."""
        ...

    def alert(self, alert: Alert) -> str | None:
        """Raise, update or resolve the one issue of ``alert.key``; None when nothing changed."""
        ...

    def verdict(self, change: Change) -> str | None:
        """Report the analysis a walk step rests on, once; None when nothing was reported."""
        ...

    def quality(self, change: Change, head: str) -> str | None:
        """Report ``change.gate`` on the proposed ``head``, once; None when nothing was reported."""
        ...

    def merge_when_ready(self, change: Change, head: str) -> str | None:
        """Have the proposal of ``change`` at ``head`` merged once the forge's rules allow; say what
        was done or what it waits for; None when there is nothing to do."""
        ...

    def deployment(self, d: Deployment) -> str | None:
        """Make the forge record walk step ``d`` in its state; None when it already did."""
        ...


def forges(
    repo: EnvRepo, env: Mapping[str, str], metrics: Metrics | None = None, github_forge: Forge | None = None
) -> Callable[[str], Forge | None]:
    """The forge of each write-back mode: the plain git remote for ``commit`` and ``branch``;
    GitHub for ``pull-request`` when RELEASEBOT_GITHUB_* configure it (``github_forge`` when
    already made; else made on first use, since an App looks its installation up, and then
    kept), else None."""
    from bot.catalog import CATALOG_FILE, parse_catalog
    from bot.forge.git import GitForge

    plain = GitForge(repo)
    github: list[Forge | None] = [github_forge] if github_forge is not None else []

    def forge(mode: str) -> Forge | None:
        if mode in ("commit", "branch"):
            return plain
        if not github:
            from bot.forge.github import forge_from_env  # PyGithub takes a second to import

            text = repo.read(CATALOG_FILE) or ""
            cat = parse_catalog(text, CATALOG_FILE, repo.workdir, cache=repo.cache_dir)
            github.append(forge_from_env(repo, cat.repo_url, repo.branch, dict(env), metrics))
        return github[0]

    return forge


# Which bot branch heads were proposed, as {branch: head}, in the clone's cache folder. A pass that
# dies after pushing a branch and before its pull request leaves a branch the next plan holds (it
# already says what the plan says), so nothing would ever propose it: reconcile proposes a held
# head again when it is not recorded here. Only proposals are recorded, never plans, so a lost or
# stale file costs one look-up per held branch (propose is idempotent), never a wrong write.
PROPOSED_FILE = "proposed.json"


def proposed(cache: Path) -> dict[str, str]:
    try:
        found = json.loads((cache / PROPOSED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: every held branch is looked up once more
    return (
        {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(found, dict) else {}
    )


def record_proposed(cache: Path, branch: str, head: str) -> None:
    """Remember that ``branch`` at ``head`` was proposed; written whole or not at all (a crash
    mid-write must not leave a file that forgets every other branch)."""
    found = proposed(cache)
    if found.get(branch) == head:
        return
    found[branch] = head
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=cache, delete=False, encoding="utf-8") as out:
            json.dump(found, out, sort_keys=True)
        os.replace(out.name, cache / PROPOSED_FILE)
    except OSError:
        pass  # not remembered: the next pass looks the pull request up once more, nothing else
