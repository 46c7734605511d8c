"""A plain git remote as a forge: the pushed branch is the proposal; withdrawing deletes it.

This is the ``branch`` write-back mode, and works with any git remote (a local path, SSH, HTTPS).
Review happens however the team reviews branches; merging is a person's ``git merge``. There are
no checks, auto-merge or deployments on a plain remote: those verbs say so, or nothing.
"""

from __future__ import annotations

from bot.plan import Alert, Change, Close, Key
from bot.plan.types import Deployment
from bot.repo import EnvRepo


class GitForge:
    def __init__(self, repo: EnvRepo) -> None:
        self.repo = repo

    def propose(self, change: Change, head: str) -> str:
        return f"branch {change.key.branch} at {head[:12]}"

    def withdraw(self, close: Close) -> str:
        self.repo.delete_branch(close.branch)
        return f"deleted branch {close.branch.name} ({close.reason})"

    def note(self, key: Key, message: str) -> str | None:
        return None  # a bare branch has nowhere to say it; the CLI prints it

    def alert(self, alert: Alert) -> str | None:
        # No issue tracker behind a plain remote: say it in the run's output, every run it holds.
        return f"drift alert (no issue tracker on a plain git remote): {alert.title}" if alert.raised else None

    def verdict(self, change: Change) -> str | None:
        # No checks on a plain remote: the evidence is in the change's commit message and body.
        if change.verdict is None:
            return None
        return f"analysis {'passed' if change.verdict.passed else 'failed'} for {change.key.branch}"

    def quality(self, change: Change, head: str) -> str | None:
        # No checks here either: the gate's evidence is in the change's body.
        if change.gate is None:
            return None
        return f"quality gate {'passed' if change.gate.passed else 'failed'} for {change.key.branch} at {head[:12]}"

    def merge_when_ready(self, change: Change, head: str) -> str | None:
        # Nothing merges a plain branch but a person: say so rather than pretend.
        return f"{change.key.branch} at {head[:12]} waits for a person's merge (no auto-merge on a plain git remote)"

    def deployment(self, d: Deployment) -> str | None:
        return None  # a plain remote has no deployments; the walk's state is in Git already
