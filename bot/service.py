"""The worker of ``releasebot serve``: what a work item does.

:class:`Service` is the :class:`bot.work.Worker` for production, built from the settings
:mod:`bot.serve` reads (in the worker process: it imports MLflow, git and GitHub clients, and its
construction clones the environments repo). It owns one clone of the environments repo, one
forge per write-back mode (so a GitHub App looks its installation up once), and does the three
kinds of work: reconcile a model, validate a pull request head for the ``releasebot/validate``
check run, answer a comment command from someone with write permission.

Work items run on several threads at once (never two for the same key). Reading the repo,
asking MLflow, planning and talking to GitHub happen in parallel; only what moves the clone's
working tree or refs (fetch, commit, push) takes the repo's lock, one at a time. Writes compare
and swap (a file changed since it was planned, a push rejected or a lease lost is a conflict,
and the pass plans again), so two passes that planned from the same state cannot both land.

It does not decide what to change: that is :mod:`bot.plan` through :mod:`bot.reconcile`.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from bot import checks, commands, settings, status
from bot.catalog import Catalog
from bot.errors import PermanentUpstreamError, ReleasebotError, TransientUpstreamError
from bot.forge import forges
from bot.forge.github import CHECK_NAME, GitHubForge, forge_from_env
from bot.intake import CheckRequest, CommandRequest
from bot.manifests import inferenceservice as isvc
from bot.metrics import KeyState, Metrics, WalkState
from bot.plan import Note, models_to_plan, plan, registry_wants, served, under_way
from bot.plan.rollout import percent_of
from bot.reconcile import Result, look, make_plan, observe, pin_change, reconcile, watch_from, write_back
from bot.redact import redact
from bot.registry import Registry, RegistrySnapshot, registry_cache
from bot.repo import EnvRepo, default_workdir, local_or_url
from bot.validate import validate_repo

log = logging.getLogger("releasebot.service")


class Service:
    """The worker behind the receiver."""

    def __init__(self, config: Mapping[str, str], metrics: Metrics, tracking_uri: str | None = None) -> None:
        remote = local_or_url(settings.REPO.get(config) or ".")
        workdir_setting = settings.WORKDIR.get(config)
        workdir = Path(workdir_setting) if workdir_setting else default_workdir(remote)
        self.repo = EnvRepo(remote, workdir)
        self.metrics = metrics
        self.tracking_uri = tracking_uri or settings.TRACKING_URI.get(config)
        github = None
        if remote.startswith("https://"):
            # With GitHub credentials configured, they also fetch and push the HTTPS remote.
            github = forge_from_env(self.repo, remote, self.repo.branch, dict(config), metrics)
            if github is not None:
                self.repo.token = github.tokens.token
        self.forge_for = forges(self.repo, config, metrics, github)
        self._registry: Registry | None = None
        self._registry_lock = threading.Lock()
        self.done: deque[str] = deque(maxlen=1000)  # what the work did lately, newest last (also logged)
        self._catalog = observe(self.repo, self.registry_for)[0]
        self.watch = watch_from(config)
        self._looks: dict[str, float] = {}  # model -> when its walk asked to be looked at again
        # The status page's rows, per model, as the last pass over it saw them; and the models
        # whose rows changed since the receiver last took them (bot.work.statuses).
        self._status: dict[str, tuple[status.Row, ...]] = {}
        self._status_new: set[str] = set()
        self._status_lock = threading.Lock()

    def registry_for(self, cat: Catalog) -> Registry:
        # One registry for as long as the settings hold: what it learned of immutable facts
        # (artifact locations, run evidence) serves every later pass.
        uri = self.tracking_uri or cat.tracking_uri
        with self._registry_lock:  # keys run on several threads
            if self._registry is None or (self._registry.tracking_uri, self._registry.storage_uri_map) != (
                uri,
                cat.storage_uri_map,
            ):
                self._registry = Registry(uri, cat.storage_uri_map, cache_file=registry_cache(self.repo.cache_dir))
            return self._registry

    def catalog(self) -> Catalog:
        return self._catalog

    def _said(self, line: str) -> None:
        self.done.append(line)
        log.info("%s", line)

    def _github(self) -> GitHubForge | None:
        forge = self.forge_for("pull-request")
        return forge if isinstance(forge, GitHubForge) else None

    # -- the three kinds of work ------------------------------------------------------------

    def reconcile(self, model: str | None) -> list[str]:  # the Worker protocol ignores the lines
        try:
            result = reconcile(self.repo, self.registry_for, self.forge_for, model=model, watch=self.watch)
        except Exception as exc:
            self._record_failure(model, exc)
            raise
        self._catalog = result.catalog
        self._record(result, model)
        self.metrics.record_pass(model, key_states(result, model), time.time())
        if model is not None:
            when = result.plan.next_look
            if when is None:
                self._looks.pop(model, None)
            else:
                self._looks[model] = when.timestamp()
        for line in result.done + result.skipped:
            self._said(line)
        return result.done + result.skipped

    def look_again(self, model: str) -> float | None:
        return self._looks.get(model)

    # -- the status page ----------------------------------------------------------------------

    def _record(self, result: Result, model: str | None) -> None:
        """Keep the rows of the models this pass covered, from what it observed and planned."""
        assert result.state is not None and result.snapshot is not None
        skipped = {c.key.branch for c in result.plan.changes if self.forge_for(c.write_back) is None}
        rows = status.rows(
            result.catalog, result.state, result.snapshot, result.plan, datetime.now(UTC), model, True, skipped
        )
        by_model: dict[str, list[status.Row]] = {}
        for row in rows:
            by_model.setdefault(row.model, []).append(row)
        with self._status_lock:
            for name, found in by_model.items():
                self._status[name] = tuple(found)
            self._status_new |= set(by_model)

    def _record_failure(self, model: str | None, exc: Exception) -> None:
        names = [model] if model is not None else [m.name for m in self._catalog.models]
        message = redact(f"{type(exc).__name__}: {exc}")
        with self._status_lock:
            for name in names:
                self._status[name] = status.failed(
                    self._catalog, name, self._status.get(name, ()), datetime.now(UTC), message
                )
            self._status_new |= set(names)

    def take_status(self) -> dict[str, tuple[status.Row, ...]]:
        """The rows of the models reconciled since the last call (see bot.work.statuses)."""
        with self._status_lock:
            taken = {name: self._status[name] for name in self._status_new}
            self._status_new.clear()
        return taken

    def validate(self, check: CheckRequest) -> None:
        github = self._github()
        if github is None:
            log.warning("a check run was asked for %s, but GitHub is not configured", check.head_sha[:12])
            return
        run = github.start_check(check.head_sha)
        # From here on the check run must reach a conclusion, whatever fails: a check left
        # in_progress blocks the pull request for good.
        try:
            out = self._check(check)
        except Exception as exc:
            out = checks.broken(exc, check.head_sha)
            github.finish_check(run, out.conclusion, out.title, out.summary, [])
            self.metrics.checks.labels(out.conclusion).inc()
            raise
        github.finish_check(run, out.conclusion, out.title, out.summary, list(out.annotations))
        self.metrics.checks.labels(out.conclusion).inc()
        self._said(f"{CHECK_NAME} {out.conclusion} on {check.head_sha[:12]}: {out.title}")

    def _check(self, check: CheckRequest) -> checks.CheckOutcome:
        with tempfile.TemporaryDirectory(prefix="releasebot-check-") as tmp:
            tree = Path(tmp) / "tree"
            try:
                self.repo.export(check.head_sha, check.head_branch, tree, check.pull_number)
            except (PermanentUpstreamError, TransientUpstreamError, subprocess.CalledProcessError) as exc:
                return checks.CheckOutcome("neutral", "Commit not available", f"Not validated: {exc}", ())
            return checks.outcome(validate_repo(tree), check.head_sha)

    def command(self, request: CommandRequest) -> None:
        github = self._github()
        if github is None:
            log.warning("a command on #%s was not answered: GitHub is not configured", request.number)
            return
        permission = github.permission(request.user)
        if permission not in commands.WRITE_PERMISSIONS:
            github.comment(request.number, commands.refusal(request.user, permission, github.full_name))
            self.metrics.commands.labels("any", "refused").inc()
            return
        try:
            command = commands.parse(request.line)
        except commands.CommandError as exc:
            github.comment(request.number, commands.reply(request.user, request.line, [str(exc)]))
            self.metrics.commands.labels("unknown", "invalid").inc()
            return
        head: tuple[str, str, str] | None = None
        if request.on_pull_request:
            head = github.pull_head(request.number)
            subject = commands.subject_of_branch(head[0])
        else:
            subject = commands.subject_of_issue(request.issue_body)
        if command.name in commands.NEEDS_SUBJECT and subject is None:
            lines = [f"`{command.name}` works on releasebot's pull requests and drift alert issues; this is neither."]
            outcome = "invalid"
        else:
            try:
                lines = self._carry_out(command, subject, request, head)
                outcome = "done"
            except ReleasebotError as exc:
                lines, outcome = [f"failed: {exc}"], "failed"
        github.comment(request.number, commands.reply(request.user, request.line, lines))
        self.metrics.commands.labels(command.name, outcome).inc()

    def _carry_out(
        self,
        command: commands.Command,
        subject: commands.Subject | None,
        request: CommandRequest,
        head: tuple[str, str, str] | None,
    ) -> list[str]:
        env, model = (subject.environment, subject.model) if subject else (None, None)
        if command.name == "retry":
            lines = self.reconcile(model)
            if head is not None and head[2] == self.repo.branch:
                self.validate(CheckRequest(head[1], head[0], request.number))
                lines.append(f"validated {head[1][:12]} again ({CHECK_NAME})")
            return lines or ["reconciled; nothing to do"]
        if command.name == "status":
            cat, state, registry = observe(self.repo, self.registry_for, env, model)
            snapshot: RegistrySnapshot = registry.snapshot(registry_wants(cat, state, env, model))
            state, seen = look(self.repo, cat, state, self.watch, env, model)
            walks = plan(cat, snapshot, state, env, model, seen).walks
            rows = commands.status_rows(cat, state, snapshot, subject, walks)
            columns = ["environment", "model", "serving", "alias", "held", "blocked", "proposed", "drift", "walk"]
            return commands.table(rows, columns) or ["no models in the catalog"]
        if command.name == "plan":
            _, p = make_plan(self.repo, self.registry_for, env, model, self.watch)
            rows = commands.plan_rows(p)
            columns = ["environment", "model", "action", "from", "to", "detail"]
            return commands.table(rows, columns) or ["nothing to do: every environment serves what its alias says"]
        assert env is not None and model is not None
        change = pin_change(self.repo, self.registry_for, command.name, env, model, command.version)
        if isinstance(change, Note):
            return [change.message]
        return [write_back(self.repo, change, self.forge_for)]


def key_states(result: Result, model: str | None) -> list[KeyState]:
    """What a pass over ``model`` (None: all) found for each key it covered, for ``/metrics``:
    whether it planned the key without an error, the drift check's verdict on the version main
    serves, and the release walk under way on main. As the pass read main, before its own writes
    (the next pass, which a walk always asks for, shows those)."""
    cat, state, registry = result.catalog, result.state, result.snapshot
    failed = {(n.key.environment, n.key.model) for n in result.plan.errors}
    unread = registry.problems if registry is not None else {}
    out = []
    for env in cat.environments:
        for m in models_to_plan(cat, env, model):
            ok = (env.name, m.name) not in failed and m.registered_model not in unread
            path = isvc.path_of(env.name, m.name)
            text = state.main_files.get(path) if state is not None else None
            if text is None:
                out.append(KeyState(env.name, m.name, ok))
                continue
            now = served(text, path)
            versions = registry.models.get(m.registered_model) if registry is not None else None
            version = versions.versions.get(now.version) if versions is not None and now.version else None
            status = version.drift_tag(env.name, "status") if version is not None else None
            walk = None
            if env.canary is not None and now.step is not None and under_way(env, now):
                landed = state.landed.get(path) if state is not None else None
                walk = WalkState(
                    step=now.step + 1,
                    percent=percent_of(env.canary, now.step),
                    started=landed[1].timestamp() if landed else None,
                    # A step that goes well is synced and Healthy within the deadline (or the walk
                    # rolls it back), then soaks for the interval, then is judged at the next look.
                    deadline=env.canary.deadline + env.canary.interval,
                )
            out.append(KeyState(env.name, m.name, ok, {"drift": True, "ok": False}.get(status or ""), walk))
    return out
