"""Where a planned change goes once its branch is pushed: one module per forge.

A forge has four verbs. ``propose`` makes the pushed branch reviewable (a pull request on GitHub;
nothing more on a plain git remote) and ``withdraw`` retracts a branch whose change is no longer
wanted; ``note`` tells reviewers something once; ``alert`` keeps one issue per drift alert key
up to date. All must be idempotent: the reconciler may call them again for the same key.
"""

from __future__ import annotations

from typing import Protocol

from bot.plan import Alert, Change, Close, Key


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
