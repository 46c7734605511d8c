"""One lifecycle for every kind of change: whether an open bot branch already says what a plan
would say, or has become a person's. Pure.

Release, pin, capacity and retrain changes all ask this before proposing anything, so the rule
"never rewrite a person's commits; an unchanged plan writes nothing" is written once.
"""

from __future__ import annotations

from dataclasses import replace

from bot.plan.types import BotBranch, Change, Close, Key, Note


def persons(key: Key, branch: BotBranch | None, error: bool = False) -> Note | None:
    """A note that the key's open branch carries a person's commits (so nothing may rewrite it),
    or None. ``error`` when the rewrite was asked for by someone (a rollback) and is refused."""
    if branch is None or not branch.human_commits:
        return None
    shas = ", ".join(c[:8] for c in branch.human_commits)
    message = f"{key.branch} has commits by a person ({shas}); releasebot will not rewrite it"
    return Note(key, message, error=error, tell=True)


def _held(key: Key, branch: BotBranch | None, fp: str) -> tuple[bool, list[Note]]:
    """Whether the key's open branch already says this (same fingerprint) or is a person's now."""
    if branch is None:
        return False, []
    note = persons(key, branch)
    if note is not None:
        return True, [note]
    return branch.fingerprint == fp, []


Outcome = tuple[list[Change], list[Close], list[Note]]


def _wanted(change: Change, branch: BotBranch | None, held: bool) -> Outcome:
    """``change`` as the outcome of its key: to be written, or — when its open branch already
    says it — handed out as held at that branch's head, for reconcile to make sure it was
    proposed (a pass may have died after the push and before the pull request)."""
    if held and branch is not None:
        return [replace(change, held=branch.head)], [], []
    return [change], [], []


def _moot(key: Key, branch: BotBranch | None, reason: str) -> Outcome:
    """Nothing is wanted for ``key``: close its open branch with ``reason`` — unless a person
    committed to it, which is said once and left alone. The same for every kind of change."""
    if branch is None:
        return [], [], []
    if branch.human_commits:
        return [], [], _held(key, branch, "")[1]
    return [], [Close(key, branch, reason)], []


def _noted(note: Note) -> Outcome:
    return [], [], [note]
