"""``releasebot serve`` put together: configuration, the worker, and the HTTP server.

* :func:`load_config`: the ``RELEASEBOT_*`` settings from the environment, over an optional file
  with the same keys (flags over both). No webhook secret has a default: without both the
  service refuses to start.
* :class:`Service`: the :class:`bot.server.Worker` for production. It owns one clone of the
  environments repo (one lock: work is serialized), one forge per write-back mode (so a GitHub
  App looks its installation up once), and does the three kinds of work: reconcile a model,
  validate a pull request head for the ``releasebot/validate`` check run, answer a comment
  command from someone with write permission.

It does not decide what to change: that is :mod:`bot.plan` through :mod:`bot.reconcile`.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from bot import checks, commands, yamlio
from bot.catalog import Catalog
from bot.errors import ConfigError, InvalidInput, Problem, ReleasebotError
from bot.forge import forges
from bot.forge.github import CHECK_NAME, GitHubForge, forge_from_env
from bot.intake import CheckRequest, CommandRequest
from bot.metrics import Metrics
from bot.plan import Note, registry_wants
from bot.reconcile import make_plan, observe, pin_change, reconcile, write_back
from bot.registry import Registry, RegistrySnapshot, registry_cache
from bot.repo import EnvRepo, default_workdir, local_or_url
from bot.server import Receiver, Settings
from bot.validate import validate_repo

KEYS = (
    "RELEASEBOT_REPO",
    "RELEASEBOT_WORKDIR",
    "MLFLOW_TRACKING_URI",
    "RELEASEBOT_GITHUB_WEBHOOK_SECRET",
    "RELEASEBOT_MLFLOW_WEBHOOK_SECRET",
    "RELEASEBOT_GITHUB_TOKEN",
    "RELEASEBOT_GITHUB_APP_ID",
    "RELEASEBOT_GITHUB_PRIVATE_KEY_FILE",
    "RELEASEBOT_GITHUB_INSTALLATION_ID",
    "RELEASEBOT_GITHUB_API_URL",
    "RELEASEBOT_RESYNC_SECONDS",
)
log = logging.getLogger("releasebot.service")


def load_config(env: Mapping[str, str], file: Path | None = None) -> dict[str, str]:
    """Settings from ``file`` (a YAML mapping of the same keys), overridden by the environment."""
    config: dict[str, str] = {}
    if file is not None:
        name = str(file)
        doc = yamlio.load(yamlio.read_text(file, name), name)
        raw = yamlio.to_plain(doc)
        if not isinstance(raw, dict):
            raise InvalidInput([Problem(name, 1, "$", "expected a mapping of RELEASEBOT_* settings", "config")])
        problems = []
        for key, value in raw.items():
            where = yamlio.line_of(doc, (key,))
            if key not in KEYS:
                message = f"unknown setting; expected one of {', '.join(KEYS)}"
                problems.append(Problem(name, where, f"$.{key}", message, "config"))
            elif not isinstance(value, str | int) or isinstance(value, bool):
                problems.append(Problem(name, where, f"$.{key}", "expected a string", "config"))
            else:
                config[key] = str(value)
        if problems:
            raise InvalidInput(problems)
    config.update({k: v for k, v in env.items() if k in KEYS and v})
    return config


class Service:
    """The worker behind the receiver. One lock: one piece of work at a time on one clone."""

    def __init__(self, config: Mapping[str, str], metrics: Metrics, tracking_uri: str | None = None) -> None:
        remote = local_or_url(config.get("RELEASEBOT_REPO") or ".")
        workdir = Path(config["RELEASEBOT_WORKDIR"]) if config.get("RELEASEBOT_WORKDIR") else default_workdir(remote)
        self.repo = EnvRepo(remote, workdir)
        self.metrics = metrics
        self.tracking_uri = tracking_uri or config.get("MLFLOW_TRACKING_URI")
        github = None
        if remote.startswith("https://"):
            # With GitHub credentials configured, they also fetch and push the HTTPS remote.
            github = forge_from_env(self.repo, remote, self.repo.branch, dict(config), metrics)
            if github is not None:
                self.repo.token = github.tokens.token
        self.forge_for = forges(self.repo, config, metrics, github)
        self.lock = threading.Lock()
        self._registry: Registry | None = None
        self.done: deque[str] = deque(maxlen=1000)  # what the work did lately, newest last (also logged)
        with self.lock:
            self._catalog = observe(self.repo, self.registry_for)[0]

    def registry_for(self, cat: Catalog) -> Registry:
        # One registry for as long as the settings hold: what it learned of immutable facts
        # (artifact locations, run evidence) serves every later pass.
        uri = self.tracking_uri or cat.tracking_uri
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
        with self.lock:
            result = reconcile(self.repo, self.registry_for, self.forge_for, model=model)
            self._catalog = result.catalog
        for line in result.done + result.skipped:
            self._said(line)
        return result.done + result.skipped

    def validate(self, check: CheckRequest) -> None:
        github = self._github()
        if github is None:
            log.warning("a check run was asked for %s, but GitHub is not configured", check.head_sha[:12])
            return
        run = github.start_check(check.head_sha)
        with tempfile.TemporaryDirectory(prefix="releasebot-check-") as tmp:
            tree = Path(tmp) / "tree"
            try:
                with self.lock:
                    self.repo.export(check.head_sha, check.head_branch, tree, check.pull_number)
            except (ReleasebotError, subprocess.CalledProcessError) as exc:
                github.finish_check(run, "neutral", "Commit not available", f"Not validated: {exc}", [])
                self.metrics.checks.labels("neutral").inc()
                return
            out = checks.outcome(validate_repo(tree), check.head_sha)
        github.finish_check(run, out.conclusion, out.title, out.summary, list(out.annotations))
        self.metrics.checks.labels(out.conclusion).inc()
        self._said(f"{CHECK_NAME} {out.conclusion} on {check.head_sha[:12]}: {out.title}")

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
        with self.lock:
            if command.name == "status":
                cat, state, registry = observe(self.repo, self.registry_for)
                snapshot: RegistrySnapshot = registry.snapshot(registry_wants(cat, state))
                rows = commands.status_rows(cat, state, snapshot, subject)
                columns = ["environment", "model", "serving", "alias", "held", "blocked", "proposed", "drift"]
                return commands.table(rows, columns) or ["no models in the catalog"]
            if command.name == "plan":
                _, p = make_plan(self.repo, self.registry_for, env, model)
                rows = commands.plan_rows(p)
                columns = ["environment", "model", "action", "from", "to", "detail"]
                return commands.table(rows, columns) or ["nothing to do: every environment serves what its alias says"]
            assert env is not None and model is not None
            change = pin_change(self.repo, self.registry_for, command.name, env, model, command.version)
            if isinstance(change, Note):
                return [change.message]
            return [write_back(self.repo, change, self.forge_for)]


def build_receiver(
    config: Mapping[str, str], metrics: Metrics | None = None, tracking_uri: str | None = None
) -> tuple[Receiver, Service]:
    """The receiver and its worker, from settings; refuses to build without both webhook secrets."""
    github_secret = config.get("RELEASEBOT_GITHUB_WEBHOOK_SECRET")
    mlflow_secret = config.get("RELEASEBOT_MLFLOW_WEBHOOK_SECRET")
    if not github_secret or not mlflow_secret:
        # No default secret: an unauthenticated receiver would let anyone trigger work.
        raise ConfigError("set RELEASEBOT_GITHUB_WEBHOOK_SECRET and RELEASEBOT_MLFLOW_WEBHOOK_SECRET; not starting")
    metrics = metrics or Metrics()
    service = Service(config, metrics, tracking_uri)
    resync = float(config.get("RELEASEBOT_RESYNC_SECONDS", "300"))
    receiver = Receiver(Settings(github_secret, mlflow_secret, resync), service.catalog, service, metrics)
    return receiver, service
