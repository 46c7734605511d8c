"""Where a planned change goes once its branch is pushed: one module per forge.

A forge has five verbs. ``propose`` makes the pushed branch reviewable (a pull request on GitHub;
nothing more on a plain git remote) and ``withdraw`` retracts a branch whose change is no longer
wanted; ``note`` tells reviewers something once; ``alert`` keeps one issue per drift alert key
up to date; ``verdict`` reports a walk step's analysis. All must be idempotent: the reconciler
may call them again for the same key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from bot.plan import Alert, Change, Close, Key

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
