"""The capacity policy: NodePool limits that follow the fleet and its canaries. Pure.

The arithmetic is :mod:`bot.capacity`; this module decides when limits change and in which
change they ride: a change that starts or ends a canary carries the limits it needs, and limits
that drifted on their own become a change keyed ``(environment, "karpenter", "capacity")``.

Which canaries run in an environment is an environment-wide fact: :class:`Canaries` works it out
once per environment per pass, from the manifests on main, and only when a change asks.
"""

from __future__ import annotations

from dataclasses import replace

from bot import capacity, yamlio, yamlplain
from bot.catalog import Catalog, Environment
from bot.manifests import inferenceservice as isvc
from bot.manifests import karpenter
from bot.manifests.ownership import Owned, apply_owned, differs
from bot.plan.facts import plain, served
from bot.plan.lifecycle import Outcome, _held, _moot, _wanted
from bot.plan.types import CAPACITY_KEY_MODEL, Change, FileEdit, Key, RepoState, fingerprint


def canary_edit(path: str, text: str, percent: int | None) -> FileEdit | None:
    """Start (or step) a canary at ``percent``, or end it with None: the rollout-owned field."""
    doc = yamlio.load(text, path)
    desired = {"spec": {"predictor": {"canaryTrafficPercent": percent}}} if percent is not None else {}
    changed = apply_owned(doc, desired, [Owned(isvc.CANARY)])
    if not changed:
        return None
    return FileEdit(path, text, yamlio.dump(doc, yamlio.guess_style(text)), tuple(changed))


class Canaries:
    """Which models run a canary in each environment: read off main once per environment, and
    only for an environment where some change starts or ends one."""

    def __init__(self, cat: Catalog, repo: RepoState) -> None:
        self._cat, self._repo = cat, repo
        self._on_main: dict[str, frozenset[str]] = {}

    def on_main(self, env: Environment) -> frozenset[str]:
        if env.name not in self._on_main:
            found = set()
            for m in self._cat.models_in(env):
                path = isvc.path_of(env.name, m.name)
                text = self._repo.main_files.get(path)
                if text is not None and served(text, path).canary is not None:
                    found.add(m.name)
            self._on_main[env.name] = frozenset(found)
        return self._on_main[env.name]

    def after(self, env: Environment, edits: tuple[FileEdit, ...]) -> frozenset[str] | None:
        """The environment's canaries once ``edits`` are applied, or None when the edits start
        and end no canary (then nothing environment-wide needs reading)."""
        started, ended = set(), set()
        for edit in edits:
            model = self._model_of(env, edit.path)
            if model is None:
                continue
            was = self._repo.main_files.get(edit.path)
            running_before = was is not None and served(was, edit.path).canary is not None
            running_after = served(edit.new, edit.path).canary is not None
            if running_after and not running_before:
                started.add(model)
            elif running_before and not running_after:
                ended.add(model)
        if not started and not ended:
            return None
        return (self.on_main(env) | started) - ended

    def _model_of(self, env: Environment, path: str) -> str | None:
        """The model whose InferenceService in ``env`` lives at ``path``, if it is one of env's."""
        parts = path.split("/")
        if len(parts) != 3 or parts[0] != env.name or path != isvc.path_of(env.name, parts[1]):
            return None
        try:
            model = self._cat.model(parts[1])
        except KeyError:
            return None
        return model.name if model.environments is None or env.name in model.environments else None


def _pool_edits(cat: Catalog, env: Environment, repo: RepoState, canaries: frozenset[str]) -> tuple[FileEdit, ...]:
    wanted = capacity.limits(cat, env, canaries)
    edits = []
    for pool, limits in wanted.items():
        path = karpenter.pool_path(env.name, pool == "gpu")
        text = repo.main_files.get(path)
        if text is None:
            continue  # a missing pool is render's business (a catalog change)
        desired = yamlio.quote_ambiguous({"spec": {"limits": limits}})
        if not differs(plain(text, path), desired, karpenter.CAPACITY_OWNED):
            continue
        doc = yamlio.load(text, path)
        changed = apply_owned(doc, desired, karpenter.CAPACITY_OWNED)
        if changed:
            edits.append(FileEdit(path, text, yamlio.dump(doc, yamlio.guess_style(text)), tuple(changed)))
    return tuple(edits)


def _describe_limits(edits: tuple[FileEdit, ...]) -> str:
    lines = []
    for e in edits:
        old = (yamlplain.load(e.old, e.path).get("spec") or {}).get("limits") or {}
        new = yamlplain.load(e.new, e.path)["spec"]["limits"]
        parts = [f"{k} {old.get(k, '-')} -> {v}" for k, v in new.items() if old.get(k) != v]
        lines.append(f"- `{e.path}`: {', '.join(parts)}")
    return "\n".join(lines)


def attach_capacity(cat: Catalog, change: Change, repo: RepoState, canaries: Canaries | None = None) -> Change:
    """Let a change that starts or ends a canary carry the NodePool limits it needs."""
    env = cat.environment(change.key.environment)
    canaries = canaries or Canaries(cat, repo)
    after = canaries.after(env, change.edits)
    if after is None:
        return change
    before = canaries.on_main(env)
    if before == after:
        return change
    pools = _pool_edits(cat, env, repo, after)
    if not pools:
        return change
    why = "a canary starts" if len(after) > len(before) else "a canary ends"
    text = f"Capacity ({why}: KServe keeps two predictor revisions while it runs):\n{_describe_limits(pools)}"
    lines = change.commit_message.rstrip("\n").split("\n")
    first_trailer = next(i for i, line in enumerate(lines) if line.startswith("Releasebot-"))
    message = "\n".join([*lines[:first_trailer], text, "", *lines[first_trailer:]]) + "\n"
    body = change.body.replace("\n### Rolling back", f"\n### Capacity\n{_describe_limits(pools)}\n\n### Rolling back")
    edits = change.edits + pools
    return replace(
        change,
        edits=edits,
        commit_message=message,
        body=body,
        fingerprint=fingerprint(change.fingerprint, *(e.new for e in pools)),
    )


def _plan_capacity(cat: Catalog, env: Environment, repo: RepoState, canaries: Canaries) -> Outcome:
    """Limits on main that the catalog and running canaries no longer justify: a change of its own."""
    key = Key(env.name, CAPACITY_KEY_MODEL, "capacity")
    branch = repo.branches.get(key.branch)
    pools = _pool_edits(cat, env, repo, canaries.on_main(env))
    if not pools:
        return _moot(key, branch, f"the {env.name} NodePool limits on main already fit the catalog")
    fp = fingerprint(key.branch, *(e.new for e in pools))
    held, notes = _held(key, branch, fp)
    if notes:  # a person's branch now: said, and left alone
        return [], [], notes
    summary = _describe_limits(pools)
    title = f"Resize the {env.name} NodePool limits"
    message = (
        f"{title}\n\nThe catalog (models, resources, replicas, headroom) asks for different limits:\n"
        f"{summary}\n\nReleasebot-Environment: {env.name}\nReleasebot-Capacity: {env.name}\n"
    )
    body = (
        f"The {env.name} NodePool limits no longer match what the catalog and the running canaries need "
        f"(headroom x{cat.karpenter.headroom}).\n\n{summary}\n\n<!-- releasebot:fingerprint={fp} -->"
    )
    change = Change(
        key=key,
        write_back=env.write_back,
        edits=pools,
        version="-",
        previous=None,
        commit_message=message,
        title=title,
        body=body,
        fingerprint=fp,
        labels=("releasebot", "capacity", *env.labels),
    )
    return _wanted(change, branch, held)
