"""GitHub as a forge, through PyGithub: one pull request per bot branch.

* Auth: a plain token, or a GitHub App (a JWT exchanged for an installation token, refreshed five
  minutes before it expires, and once more when GitHub answers 401).
* ``propose``: look the pull request up by head branch first; create it if there is none (GitHub's
  422 "A pull request already exists" counts as success: someone else, perhaps another replica,
  created it a moment ago); otherwise edit title and body when the fingerprint in the body
  changed (a newer alias move), and do nothing when it did not. Labels go on, and the change's
  reviewers are asked, at creation only: a person who removed a reviewer is not overruled.
* ``withdraw``: comment why, close the pull request, delete the branch (by git, like the push).
* ``note``: say something on the pull request once (a hidden marker keeps it from repeating).
* ``alert``: one issue per alert key (a drift alert, or a quality gate's tracking issue: the key's
  kind is in the marker), found again by a hidden marker among the issues labelled
  ``releasebot`` (a label every alert issue gets for that reason): created while the alert holds,
  its body updated when a newer run still raises it, reopened only for a new run (a person's
  close stands for the run they saw), and closed with a comment once it is resolved. Two
  replicas that both found none and both opened one look again: the newer is closed as a
  duplicate of the older.
* ``verdict`` and ``quality``: a walk step's analysis (``releasebot/rollout``) and the quality
  gate's evidence (``releasebot/quality``) as check runs, once each (an ``external_id`` says which).
* ``merge_when_ready`` (:mod:`bot.forge.merging`) and ``deployment``
  (:mod:`bot.forge.deployments`): GitHub auto-merge, and walk steps as GitHub deployments.

Beyond the forge verbs, ``releasebot serve`` uses a few GitHub-only calls: a commenter's
permission, a reply comment, a pull request's head, and the ``releasebot/validate`` check run.
Every operation is counted in :class:`bot.metrics.Metrics` when one is given, with the rate
limit GitHub reported on its last answer.

Reviewers also come from the environments repo's generated CODEOWNERS, which branch protection
can require; asking the catalog's reviewers on the pull request notifies them either way.

Transient failures (5xx, 429, a primary or secondary rate limit, no answer) are retried here, with
``stamina``, not by PyGithub's ``GithubRetry``: one policy for every call, bounded in attempts and
in total wait, that waits what GitHub asked for (``retry-after``, or until ``x-ratelimit-reset``
when ``x-ratelimit-remaining`` is 0) and that tests switch to no-sleep. A wait longer than
:data:`MAX_WAIT` is not slept in a worker thread: the error goes up as a
:class:`TransientUpstreamError` carrying that delay, for ``serve`` to schedule the key again then.
Writes are retried too: every verb looks its object up first (a pull request by head branch, an
issue by marker), so a create whose answer was lost is found again rather than repeated.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import stamina
from github import Auth, Github, GithubException, GithubIntegration
from github.CheckRun import CheckRun
from github.PullRequest import PullRequest
from github.Repository import Repository

from bot import prbody, settings
from bot.errors import PermanentUpstreamError, TransientUpstreamError
from bot.metrics import Metrics
from bot.plan import Alert, Change, Close, Key
from bot.plan import gate as gates
from bot.plan.types import Deployment
from bot.repo import EnvRepo

API = settings.GITHUB_API
CHECK_NAME = "releasebot/validate"
ROLLOUT_CHECK = "releasebot/rollout"
QUALITY_CHECK = "releasebot/quality"
MAX_ANNOTATIONS = 50  # GitHub takes at most 50 annotations per check run request
REFRESH_BEFORE = timedelta(minutes=5)
_NOTE_MARKER = "<!-- releasebot:note={} -->"
ATTEMPTS = 4  # the first try and three retries
MAX_WAIT = 60.0  # the longest single wait in a call; a later rate-limit reset is handed up instead
TOTAL_WAIT = 120.0  # no call retries for longer than this, whatever it is told
log = logging.getLogger("releasebot.github")


def repo_full_name(url: str) -> str:
    """``https://github.com/acme/envs.git`` or ``git@github.com:acme/envs.git`` -> ``acme/envs``."""
    match = re.search(r"github\.com[:/]([^/]+)/([^/]+?)(?:\.git)?/?$", url)
    if not match:
        raise PermanentUpstreamError(f"repository.url {url!r} is not a GitHub repository")
    return f"{match.group(1)}/{match.group(2)}"


class TokenSource:
    """Hands out a token; for a GitHub App, fresh installation tokens."""

    def __init__(
        self,
        token: str | None = None,
        app_id: str | None = None,
        private_key: str | None = None,
        installation_id: int | None = None,
        base_url: str = API,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not token and not (app_id and private_key):
            raise PermanentUpstreamError("GitHub needs a token or a GitHub App id and private key")
        self._static = token
        self._clock = clock
        self._installation_id = installation_id
        self._integration = (
            GithubIntegration(auth=Auth.AppAuth(app_id, private_key), base_url=base_url) if not token else None
        )
        self._token: str | None = None
        self._expires: datetime | None = None
        self.refreshes = 0

    def token(self, force: bool = False) -> str:
        if self._static:
            return self._static
        assert self._integration is not None
        if self._installation_id is None:
            raise PermanentUpstreamError("a GitHub App needs its installation id (or a repository to look it up)")
        stale = self._expires is None or self._clock() >= self._expires - REFRESH_BEFORE
        if force or self._token is None or stale:
            grant = self._integration.get_access_token(self._installation_id)
            self._token, self._expires = grant.token, grant.expires_at
            self.refreshes += 1
        assert self._token is not None
        return self._token

    @property
    def is_app(self) -> bool:
        return self._static is None

    def find_installation(self, full_name: str) -> None:
        """Look the App's installation on ``full_name`` up, when it was not given."""
        if self._integration is not None and self._installation_id is None:
            owner, name = full_name.split("/")
            try:
                self._installation_id = self._integration.get_repo_installation(owner, name).id
            except GithubException as exc:
                raise _error(f"find the GitHub App installation on {full_name}", exc) from exc


def forge_from_env(
    repo: EnvRepo, repo_url: str, base: str, env: dict[str, str], metrics: Metrics | None = None
) -> GitHubForge | None:
    """The GitHub forge configured by RELEASEBOT_GITHUB_* variables, or None when there are none."""
    token = settings.GITHUB_TOKEN.get(env)
    app_id = settings.GITHUB_APP_ID.get(env)
    if not token and not app_id:
        return None
    key = None
    if app_id:
        key_file = settings.GITHUB_PRIVATE_KEY_FILE.get(env)
        if not key_file:
            raise PermanentUpstreamError(f"{settings.GITHUB_APP_ID.name} needs {settings.GITHUB_PRIVATE_KEY_FILE.name}")
        key = Path(key_file).read_text()
    installation = settings.GITHUB_INSTALLATION_ID.integer(env)
    base_url = settings.GITHUB_API_URL.get(env) or API
    tokens = TokenSource(token, app_id, key, installation, base_url)
    full_name = repo_full_name(repo_url)
    tokens.find_installation(full_name)
    return GitHubForge(repo, full_name, tokens, base=base, base_url=base_url, metrics=metrics)


class _LiveToken(Auth.Auth):
    """PyGithub asks its Auth for the header on every request: hand out the current token, so
    objects fetched before a refresh keep working after it."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        return self.source.token()

    @property
    def _masked_token(self) -> str:
        return "token (removed)"


class GitHubForge:
    def __init__(
        self,
        repo: EnvRepo,
        full_name: str,
        tokens: TokenSource,
        base: str = "main",
        base_url: str = API,
        throttle: bool = True,
        retries: int = ATTEMPTS - 1,
        metrics: Metrics | None = None,
    ) -> None:
        self.repo = repo
        self.metrics = metrics
        self.full_name = full_name
        self.tokens = tokens
        self.base = base
        self.base_url = base_url
        # PyGithub's own pacing between requests keeps us clear of secondary rate limits.
        pacing: dict[str, Any] = {} if throttle else {"seconds_between_requests": None, "seconds_between_writes": None}
        # retry=None: the retries are ours (see the module docstring); ``retries`` is the count.
        self.attempts = retries + 1
        self.gh = Github(auth=_LiveToken(tokens), base_url=base_url, retry=None, lazy=True, **pacing)
        self._repo: Repository = self.gh.get_repo(full_name)  # lazy: no request until used

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one GitHub operation, retrying transient failures with bounded backoff (the wait
        GitHub asked for when it said one; see :func:`_backoff`)."""
        tried = 0
        try:
            for attempt in stamina.retry_context(
                on=lambda exc: _backoff(exc), attempts=self.attempts, timeout=TOTAL_WAIT, wait_max=MAX_WAIT
            ):
                with attempt:
                    tried = attempt.num
                    return self._once(what, fn)
        except TransientUpstreamError as exc:
            if tried < 2:
                raise
            raise TransientUpstreamError(f"{exc} (still failing after {tried} attempts)", exc.delay) from exc
        raise AssertionError("unreachable")

    def _once(self, what: str, fn: Callable[[], Any]) -> Any:
        """One try; on a 401 with an App token, mint a new token once and try again (a token can
        expire or be revoked mid-run; a second 401 means the App's credentials are wrong)."""
        for refreshed in (False, True):
            try:
                result = fn()
                self._count("ok")
                return result
            except GithubException as exc:
                self._count("error")
                if exc.status == 401 and not refreshed and self.tokens.is_app:
                    log.info("GitHub answered 401 to %s; minting a new installation token once", what)
                    self.tokens.token(force=True)
                    continue
                raise _error(what, exc) from exc
            except requests.exceptions.RequestException as exc:
                self._count("error")
                raise TransientUpstreamError(f"GitHub: {what}: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")

    def _count(self, outcome: str) -> None:
        if self.metrics is None:
            return
        self.metrics.github_calls.labels(outcome).inc()
        remaining = self.gh.requester.rate_limiting[0]  # from the last answer's headers; -1 before any
        if remaining >= 0:
            self.metrics.github_rate_remaining.set(remaining)

    def _counted_pr(self, action: str) -> None:
        if self.metrics is not None:
            self.metrics.pull_requests.labels(action).inc()

    def _open_pr(self, branch: str) -> PullRequest | None:
        owner = self.full_name.split("/")[0]
        pulls = self._call(
            f"look up the pull request for {branch}",
            lambda: list(self._repo.get_pulls(state="open", head=f"{owner}:{branch}", base=self.base)),
        )
        return pulls[0] if pulls else None

    # -- the forge verbs ----------------------------------------------------------------------

    def propose(self, change: Change, head: str) -> str:
        branch = change.key.branch
        title, body = prbody.title(change.title), change.body
        pr = self._open_pr(branch)
        if pr is None:
            try:
                pr = self._call(
                    f"open a pull request for {branch}",
                    lambda: self._repo.create_pull(base=self.base, head=branch, title=title, body=body),
                )
            except PermanentUpstreamError as exc:
                if "already exists" not in str(exc):
                    raise
                pr = self._open_pr(branch)  # created concurrently: carry on with that one
                if pr is None:
                    raise
            else:
                self._counted_pr("opened")
                created = pr
                if change.labels:
                    self._call(f"label #{pr.number}", lambda: created.add_to_labels(*change.labels))
                from bot.forge.merging import ask_reviewers  # it builds on this module

                return f"opened pull request #{pr.number} ({pr.html_url})" + ask_reviewers(self, created, change)
        if prbody.fingerprint_in(pr.body) == change.fingerprint and pr.title == title:
            return f"pull request #{pr.number} is up to date"
        found = pr
        self._call(f"update #{pr.number}", lambda: found.edit(title=title, body=body))
        self._counted_pr("updated")
        return f"updated pull request #{pr.number} ({pr.html_url})"

    def withdraw(self, close: Close) -> str:
        pr = self._open_pr(close.branch.name)
        if pr is not None:
            found = pr
            reason = f"Closing: {prbody.clean(close.reason)}."
            self._call(f"comment on #{pr.number}", lambda: found.create_issue_comment(reason))
            self._call(f"close #{pr.number}", lambda: found.edit(state="closed"))
            self._counted_pr("closed")
        self.repo.delete_branch(close.branch)
        return f"closed pull request #{pr.number} ({close.reason})" if pr else f"deleted {close.branch.name}"

    def note(self, key: Key, message: str) -> str | None:
        """Say ``message`` on the key's open pull request, once."""
        pr = self._open_pr(key.branch)
        if pr is None:
            return None
        found = pr
        marker = _NOTE_MARKER.format(hashlib.sha256(message.encode()).hexdigest()[:12])
        comments = self._call(f"read comments of #{pr.number}", lambda: list(found.get_issue_comments()))
        if any(marker in (c.body or "") for c in comments):
            return None
        text = f"{prbody.clean(message)}\n\n{marker}"
        self._call(f"comment on #{pr.number}", lambda: found.create_issue_comment(text))
        return f"commented on pull request #{pr.number}"

    def _alert_issues(self, alert: Alert) -> list[Any]:
        """The issues carrying ``alert``'s marker, newest first, open or closed."""
        return self._call(
            f"look up {_issue_kind(alert)}s",
            lambda: [
                i
                for i in self._repo.get_issues(state="all", labels=["releasebot"], sort="created", direction="desc")
                # Pull requests are issues too; asking PyGithub for .pull_request would cost a request
                # per issue that lacks it, so tell them apart by their web address.
                if "/pull/" not in i.html_url and alert.marker in (i.body or "")
            ],
        )

    def _one_alert(self, alert: Alert, created: Any) -> str:
        """After opening ``created``: two replicas that looked before either created both open
        one. Look again; the oldest open issue with the marker (the lowest number) is the one
        kept, and ours, when newer, is closed as its duplicate. Each replica closes only its
        own, so they never both close the same one, and whichever looks last sees both."""
        said = f"opened {_issue_kind(alert)} #{created.number} ({created.html_url})"
        numbers = {i.number for i in self._alert_issues(alert) if i.state == "open"} | {created.number}
        kept = min(numbers)
        if kept == created.number:
            return said
        ours = created
        self._call(
            f"comment on #{created.number}",
            lambda: ours.create_comment(f"Duplicate of #{kept}: another releasebot replica opened it first."),
        )
        self._call(f"close #{created.number}", lambda: ours.edit(state="closed", state_reason="duplicate"))
        return f"{said}, then closed it as a duplicate of #{kept}, which another replica opened first"

    def alert(self, alert: Alert) -> str | None:
        found = self._alert_issues(alert)
        issue = next((i for i in found if i.state == "open"), found[0] if found else None)
        body = f"{alert.body}\n\n{alert.marker}"
        title = prbody.title(alert.title)
        if not alert.raised:
            if issue is None or issue.state != "open":
                return None
            open_issue = issue
            self._call(
                f"comment on #{issue.number}",
                lambda: open_issue.create_comment(f"Resolved: {prbody.clean(alert.body)}"),
            )
            self._call(f"close #{issue.number}", lambda: open_issue.edit(state="closed", state_reason="completed"))
            return f"closed {_issue_kind(alert)} #{issue.number}: {alert.title}"
        if issue is None:
            created = self._call(
                f"open a {_issue_kind(alert)}",
                # Found again by this label: an alert whose labels lack it would be opened anew every pass.
                lambda: self._repo.create_issue(
                    title=title, body=body, labels=list(dict.fromkeys(("releasebot", *alert.labels)))
                ),
            )
            return self._one_alert(alert, created)
        same_run = prbody.fingerprint_in(issue.body) == alert.fingerprint
        if issue.state != "open":
            if same_run:
                return None  # a person closed it having seen this run; a new run reopens it
            reopened = issue
            self._call(f"reopen #{issue.number}", lambda: reopened.edit(state="open", title=title, body=body))
            return f"reopened {_issue_kind(alert)} #{issue.number} ({issue.html_url})"
        if same_run and issue.title == title:
            return None
        current = issue
        self._call(f"update #{issue.number}", lambda: current.edit(title=title, body=body))
        return f"updated {_issue_kind(alert)} #{issue.number} ({issue.html_url})"

    # -- GitHub-only calls for the webhook receiver -------------------------------------------

    def verdict(self, change: Change) -> str | None:
        """Report the analysis a walk step rests on as the ``releasebot/rollout`` check on the
        main commit it judged: once per commit and window (a check already there is left be)."""
        verdict, sha = change.verdict, change.verdict_sha
        if verdict is None or sha is None:
            return None
        title = prbody.title(
            f"{change.key.environment}/{change.key.model}: " + ("passed" if verdict.passed else "failed")
        )
        window = f"{verdict.start:%Y-%m-%dT%H:%M:%SZ}/{verdict.end:%Y-%m-%dT%H:%M:%SZ}"
        external_id = f"{change.key.environment}/{change.key.model}/{window}"[:200]
        commit = self._call(f"read commit {sha[:12]}", lambda: self._repo.get_commit(sha))
        runs = self._call(
            f"list {ROLLOUT_CHECK} on {sha[:12]}", lambda: list(commit.get_check_runs(check_name=ROLLOUT_CHECK))
        )
        if any(r.external_id == external_id for r in runs):
            return None
        summary = "\n".join([prbody.clean(change.title), "", prbody.analysis_table(verdict)])
        self._call(
            f"report {ROLLOUT_CHECK} on {sha[:12]}",
            lambda: self._repo.create_check_run(
                name=ROLLOUT_CHECK,
                head_sha=sha,
                status="completed",
                conclusion="success" if verdict.passed else "failure",
                external_id=external_id,
                output={"title": title, "summary": prbody.truncate(summary, 65_000)},
            ),
        )
        return f"reported {ROLLOUT_CHECK} ({'success' if verdict.passed else 'failure'}) on {sha[:12]}"

    def quality(self, change: Change, head: str) -> str | None:
        """Report the quality gate's verdict on the proposed head as the ``releasebot/quality``
        check run, with its evidence as a table: once per head and version (an ``external_id``
        says which), so a pass that finds it there writes nothing."""
        gate = change.gate
        if gate is None:
            return None
        key = change.key
        external_id = f"{key.environment}/{key.model}/v{gate.version}/{'passed' if gate.passed else 'failed'}"[:200]
        commit = self._repo.get_commit(head)  # lazy: no request of its own
        runs = self._call(
            f"list {QUALITY_CHECK} on {head[:12]}", lambda: list(commit.get_check_runs(check_name=QUALITY_CHECK))
        )
        if any(r.external_id == external_id for r in runs):
            return None
        conclusion = "success" if gate.passed else "failure"
        title = prbody.title(f"{key.environment}/{key.model} v{gate.version}: {gate.summary}")
        self._call(
            f"report {QUALITY_CHECK} on {head[:12]}",
            lambda: self._repo.create_check_run(
                name=QUALITY_CHECK,
                head_sha=head,
                status="completed",
                conclusion=conclusion,
                external_id=external_id,
                output={
                    "title": title,
                    "summary": prbody.truncate(f"{prbody.clean(gate.summary)}\n\n{gates.table(gate)}", 65_000),
                },
            ),
        )
        return f"reported {QUALITY_CHECK} ({conclusion}) on {head[:12]}"

    # Auto-merge and deployments live in modules of their own, which build on this one.

    def merge_when_ready(self, change: Change, head: str) -> str | None:
        from bot.forge.merging import merge_when_ready

        return merge_when_ready(self, change, head)

    def deployment(self, d: Deployment) -> str | None:
        from bot.forge.deployments import deployment

        return deployment(self, d)

    def permission(self, user: str) -> str:
        """``admin``, ``write``, ``read`` or ``none``: the user's permission on the repository."""
        try:
            return self._call(f"read {user}'s permission", lambda: self._repo.get_collaborator_permission(user))
        except PermanentUpstreamError as exc:
            if "GitHub 404" in str(exc):  # not a collaborator at all
                return "none"
            raise

    def comment(self, number: int, text: str) -> None:
        issue = self._repo.get_issue(number)  # lazy: no request for the issue itself
        # Replies quote errors, and errors quote what the libraries underneath were given (a
        # tracking URI with its password, a token): redacted here, where the text leaves.
        said = prbody.redact(text)
        self._call(f"comment on #{number}", lambda: issue.create_comment(said))

    def pull_head(self, number: int) -> tuple[str, str, str]:
        """The head branch, head commit and base branch of pull request ``number``."""

        def read() -> tuple[str, str, str]:
            pr = self._repo.get_pull(number)  # lazy: the request happens on first attribute
            return pr.head.ref, pr.head.sha, pr.base.ref

        return self._call(f"read pull request #{number}", read)

    def start_check(self, head_sha: str) -> CheckRun:
        """The check run to report on: one left unfinished on this commit (a worker that died
        between starting and finishing it; the check is run again) is taken up, so a commit ends
        with one check, concluded; else a new one."""
        commit = self._repo.get_commit(head_sha)  # lazy: no request of its own
        runs = self._call(
            f"list {CHECK_NAME} on {head_sha[:12]}", lambda: list(commit.get_check_runs(check_name=CHECK_NAME))
        )
        unfinished = [r for r in runs if r.status != "completed"]
        if unfinished:
            return min(unfinished, key=lambda r: r.id)
        return self._call(
            f"start {CHECK_NAME} on {head_sha[:12]}",
            lambda: self._repo.create_check_run(name=CHECK_NAME, head_sha=head_sha, status="in_progress"),
        )

    def finish_check(
        self, run: CheckRun, conclusion: str, title: str, summary: str, annotations: list[dict[str, Any]]
    ) -> None:
        """Complete the check run; annotations beyond the first 50 go in further updates, which
        GitHub appends."""
        batches = [annotations[i : i + MAX_ANNOTATIONS] for i in range(0, len(annotations), MAX_ANNOTATIONS)] or [[]]
        for i, batch in enumerate(batches):
            output = {"title": title, "summary": summary, "annotations": batch}
            if i == len(batches) - 1:
                self._call(
                    f"finish {CHECK_NAME}",
                    lambda o=output: run.edit(status="completed", conclusion=conclusion, output=o),
                )
            else:
                self._call(f"annotate {CHECK_NAME}", lambda o=output: run.edit(output=o))


def _issue_kind(alert: Alert) -> str:
    return "drift alert issue" if alert.key.kind == "alert" else f"{alert.key.kind} gate issue"


def _backoff(exc: Exception) -> bool | float:
    """stamina's hook: whether to retry ``exc``, and after how long when GitHub said so."""
    if not isinstance(exc, TransientUpstreamError):
        return False
    if exc.delay is None:
        return True  # stamina's exponential backoff with jitter
    if exc.delay > MAX_WAIT:
        return False  # not slept here: the caller schedules the work again after exc.delay
    log.warning("GitHub asked to wait %.0f s: %s", exc.delay, exc)
    return exc.delay


def _asked_wait(headers: Mapping[str, str] | None) -> float | None:
    """The wait GitHub asks for: ``retry-after`` seconds, or until the primary rate limit resets."""
    h = {k.lower(): v for k, v in (headers or {}).items()}
    after = h.get("retry-after", "")
    if after.isdigit():
        return float(after)
    reset = h.get("x-ratelimit-reset", "")
    if h.get("x-ratelimit-remaining") == "0" and reset.isdigit():
        return max(0.0, int(reset) - time.time()) + 1  # the reset falls somewhere in that second
    return None


def detail(exc: GithubException) -> str:
    """What GitHub said, in one line: the REST ``message`` and each error's, or GraphQL's errors."""
    data = exc.data if isinstance(exc.data, dict) else {}
    errors = data.get("errors") if isinstance(data.get("errors"), list) else []
    messages = [str(e.get("message", e) if isinstance(e, dict) else e) for e in errors if e]
    said = "; ".join([str(data.get("message", "")), *messages]).strip("; ")
    return prbody.redact(said)[:300]


def _error(what: str, exc: GithubException) -> Exception:
    said = detail(exc)
    text = f"GitHub {exc.status}: {what}: {said or 'no detail'}"
    wait = _asked_wait(exc.headers)
    # GitHub says "rate limited" with 429, or with 403 and either the headers or the message.
    limited = exc.status == 403 and (wait is not None or "rate limit" in said.lower())
    if exc.status in (429, 500, 502, 503, 504) or limited:
        return TransientUpstreamError(text, delay=wait)
    return PermanentUpstreamError(text)
