"""``/releasebot`` comment commands: what was asked, about which (environment, model). Pure.

A command is one line of a comment: ``/releasebot status | plan | rollback [VERSION] | hold |
resume | retry``. Its subject comes from where it was said: a releasebot pull request names its
key in its branch (``releasebot/<env>/<model>/<kind>``), a drift alert issue in a hidden marker.
``status`` and ``plan`` also work anywhere else, about the whole repository.

This module parses and words replies; :mod:`bot.service` checks the commenter's permission and
carries commands out. Nothing here talks to GitHub.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot import prbody
from bot.catalog import Catalog
from bot.manifests import inferenceservice as isvc
from bot.output import text_table as text_table  # where the CLI and the demo have found it
from bot.plan import Key, Plan, RepoState, Walk, served
from bot.registry import RegistrySnapshot

COMMANDS = ("status", "plan", "rollback", "hold", "resume", "retry")
NEEDS_SUBJECT = frozenset({"rollback", "hold", "resume"})
USAGE = "`/releasebot status | plan | rollback [VERSION] | hold | resume | retry`"
WRITE_PERMISSIONS = frozenset({"admin", "write"})  # GitHub reports maintain as write
# A drift alert's issue, or a quality gate's tracking issue: both name their (environment, model).
_ALERT_RE = re.compile(r"<!-- releasebot:(?:alert|quality)=([a-z0-9-]+)/([a-z0-9-]+) -->")
_VERSION_RE = re.compile(r"^[0-9]{1,9}$")


@dataclass(frozen=True)
class Subject:
    environment: str
    model: str


@dataclass(frozen=True)
class Command:
    name: str
    version: str | None = None


class CommandError(ValueError):
    """The comment is not a command releasebot understands; the message is the reply."""


def parse(line: str) -> Command:
    words = line.split()
    if not words or words[0] != "/releasebot":
        raise CommandError(f"not a releasebot command; use {USAGE}")
    if len(words) == 1 or words[1] not in COMMANDS:
        got = f"`{prbody.cell(words[1])}` is not a command; " if len(words) > 1 else ""
        raise CommandError(f"{got}use {USAGE}")
    name, rest = words[1], words[2:]
    if name == "rollback" and len(rest) == 1:
        if not _VERSION_RE.match(rest[0]):
            raise CommandError(f"`{prbody.cell(rest[0])}` is not a model version number")
        return Command(name, rest[0])
    if rest:
        raise CommandError(f"`{name}` takes {'at most one version' if name == 'rollback' else 'no arguments'}")
    return Command(name)


def subject_of_branch(branch: str) -> Subject | None:
    parts = branch.split("/")
    if len(parts) == 4 and parts[0] == "releasebot":
        return Subject(parts[1], parts[2])
    return None


def subject_of_issue(body: str) -> Subject | None:
    match = _ALERT_RE.search(body or "")
    return Subject(match.group(1), match.group(2)) if match else None


def _login(user: str) -> str:
    return re.sub(r"[^A-Za-z0-9\-\[\]]", "", user)  # a GitHub login; anything else is dropped


def refusal(user: str, permission: str, repo: str) -> str:
    who = _login(user)
    return f"@{who} releasebot commands need write permission on {repo}; you have `{permission}`. Nothing was done."


def reply(user: str, line: str, lines: list[str]) -> str:
    """Quote the command, then say what came of it."""
    said = "\n".join(lines) if lines else "Nothing to do."
    return f"> {prbody.clean(line)[:200]}\n\n@{_login(user)}: {said}"


def table(rows: list[dict[str, str]], columns: list[str]) -> list[str]:
    if not rows:
        return []
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(prbody.cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return out


def _row(key: Key, action: str, before: str, after: str, branch: str, detail: str) -> dict[str, str]:
    return {
        "environment": key.environment,
        "model": key.model,
        "kind": key.kind,
        "action": action,
        "from": before,
        "to": after,
        "branch": branch,
        "detail": detail,
    }


def plan_rows(p: Plan) -> list[dict[str, str]]:
    return (
        [_row(c.key, c.write_back, c.previous or "-", c.version, c.key.branch, c.title) for c in p.changes]
        + [_row(x.key, "close", x.branch.version or "-", "-", x.branch.name, x.reason) for x in p.closes]
        + [_row(n.key, "error" if n.error else "note", "-", "-", n.key.branch, n.message) for n in p.notes]
        # Resolved alerts only make sure an issue is closed; listing them every run would be noise.
        + [_row(a.key, "alert", "-", "-", "-", a.title) for a in p.alerts if a.raised]
        + [_row(w.key, "walk", w.stable or "-", w.version, w.key.branch, walk_text(w)) for w in p.walks]
    )


def walk_text(w: Walk) -> str:
    """One line for a walk: phase, step and percentage, since, next look, last verdict."""
    parts = [w.phase]
    if w.step is not None:
        parts.append(f"step {w.step + 1}" + (f" at {w.percent}%" if w.percent is not None else ""))
    if w.since is not None:
        parts.append(f"since {w.since:%Y-%m-%d %H:%M:%SZ}")
    if w.next_look is not None:
        parts.append(f"next look {w.next_look:%H:%M:%SZ}")
    if w.verdict is not None:
        parts.append("analysis " + ("error" if w.verdict.error else "passed" if w.verdict.passed else "failed"))
    return " · ".join(parts) + (f": {w.message}" if w.message else "")


def status_rows(
    cat: Catalog, state: RepoState, snapshot: RegistrySnapshot, subject: Subject | None, walks: Iterable[Walk] = ()
) -> list[dict]:
    """What each (environment, model) serves, what its alias says, what is held, proposed,
    drifting, and where its release walk stands."""
    walk_of = {(w.key.environment, w.key.model): w for w in walks}
    rows = []
    for env in cat.environments:
        for model in cat.models_in(env):
            if subject is not None and (env.name, model.name) != (subject.environment, subject.model):
                continue
            path = isvc.path_of(env.name, model.name)
            text = state.main_files.get(path)
            now = served(text, path) if text is not None else None
            registered = snapshot.models.get(model.registered_model)
            alias = registered.alias(env.alias) if registered else None
            version = registered.versions.get(now.version) if (registered and now and now.version) else None
            branch = state.branches.get(Key(env.name, model.name, "release").branch)
            serving = now.version if now else None
            proposed = branch.version if branch and branch.version != serving else None  # merged: not news
            rows.append(
                {
                    "environment": env.name,
                    "model": model.name,
                    "serving": serving or "-",
                    "alias": f"{env.alias} → {alias or 'unset'}",  # no "@": that would mention a user
                    "held": (now.pinned if now else None) or "-",
                    "blocked": ",".join(sorted(now.blocked)) if now and now.blocked else "-",
                    "proposed": proposed or "-",
                    "drift": (version.drift_tag(env.name, "status") or "-") if version else "-",
                    "walk": walk_text(walk_of[(env.name, model.name)]) if (env.name, model.name) in walk_of else "-",
                }
            )
    return rows
