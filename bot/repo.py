"""Git, through GitPython: the environments repository, local or remote.

:func:`init_repository` makes a new one. :class:`EnvRepo` is the release loop's view of an
existing one: a private clone kept fresh by ``fetch``, files read from ``origin/<main>``, bot
branches (``releasebot/...``) with what their head commits propose, and two ways to write:

* :meth:`EnvRepo.commit_to_main`: one commit on top of the remote main, pushed without force;
  a rejected push (someone else moved main) is a :class:`ConflictError`: re-plan and try again.
* :meth:`EnvRepo.push_branch`: the bot branch rebuilt from the latest main, pushed with
  ``--force-with-lease`` against the head we planned from, so a concurrent writer is never
  overwritten silently.

Bot commits are authored as releasebot; a commit on a bot branch by anyone else is a person's,
and the planner then leaves that branch alone. Nothing here decides *what* to write.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import os
import re
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import git

from bot.errors import ConflictError, PermanentUpstreamError, TransientUpstreamError
from bot.plan import BotBranch, Change, FileEdit

BOT_NAME = "releasebot"
BOT_EMAIL = "releasebot@users.noreply.github.com"
BOT_PREFIX = "releasebot/"
_TRAILER = re.compile(r"^(Releasebot-[A-Za-z]+):\s*(.+)$", re.M)
_BOT_ENV = {
    "GIT_AUTHOR_NAME": BOT_NAME,
    "GIT_AUTHOR_EMAIL": BOT_EMAIL,
    "GIT_COMMITTER_NAME": BOT_NAME,
    "GIT_COMMITTER_EMAIL": BOT_EMAIL,
}


def _identity_env(repo: git.Repo) -> dict[str, str]:
    reader = repo.config_reader()
    env = {}
    if not (os.environ.get("GIT_AUTHOR_NAME") or reader.has_option("user", "name")):
        env.update(GIT_AUTHOR_NAME=BOT_NAME, GIT_COMMITTER_NAME=BOT_NAME)
    if not (os.environ.get("GIT_AUTHOR_EMAIL") or reader.has_option("user", "email")):
        env.update(GIT_AUTHOR_EMAIL=BOT_EMAIL, GIT_COMMITTER_EMAIL=BOT_EMAIL)
    return env


def init_repository(path: Path, branch: str, message: str) -> str:
    """``git init`` ``path`` on ``branch``, commit everything in it, return the commit sha."""
    try:
        repo = git.Repo.init(path, initial_branch=branch)
        # A local environments repo can then be the bot's remote: a push to its checked-out
        # branch updates the working tree when it is clean, instead of being refused.
        with repo.config_writer() as cfg:
            cfg.set_value("receive", "denyCurrentBranch", "updateInstead")
        repo.git.add("--all")
        # The CLI commit is ~20x faster than index.commit in large trees.
        with repo.git.custom_environment(**_identity_env(repo)):
            repo.git.commit("--quiet", "--no-verify", "-m", message)
        return repo.head.commit.hexsha
    except git.GitCommandError as exc:
        raise PermanentUpstreamError(f"git failed: {exc.stderr.strip() or exc}") from exc


def trailers(message: str) -> dict[str, str]:
    return {k: v.strip() for k, v in _TRAILER.findall(message)}


@dataclass(frozen=True)
class Release:
    """One release read back from main's history."""

    sha: str
    date: str
    environment: str
    model: str
    version: str
    run: str
    subject: str


def local_or_url(remote: str) -> str:
    """A URL (``https://``, ``ssh://``, ``git@host:``) as given; a local path made absolute."""
    if "://" not in remote and not remote.startswith("git@"):
        return str(Path(remote).resolve())
    return remote


def default_workdir(remote: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "releasebot"
    return base / hashlib.sha256(remote.encode()).hexdigest()[:16]


_F = TypeVar("_F", bound=Callable[..., Any])


def _writes(method: _F) -> _F:
    """The method moves the working tree, the index, HEAD or refs: one such method at a time."""

    @functools.wraps(method)
    def locked(self: EnvRepo, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


class EnvRepo:
    """``token``, when given, is asked for a fresh token before each fetch or push over HTTPS
    (a GitHub App's installation token): it goes to git as an HTTP header through the
    environment, never on a command line, so it cannot show up in an error message.

    Threads may share one: reads name a commit or ref and change nothing, while whatever moves
    the working tree, the index, HEAD or refs (fetch, checkout, commit, push) holds ``lock``."""

    def __init__(
        self, remote: str, workdir: Path, branch: str = "main", token: Callable[[], str] | None = None
    ) -> None:
        self.remote = remote
        self.workdir = workdir
        self.branch = branch
        self.token = token
        self._repo: git.Repo | None = None
        self.lock = threading.RLock()

    def auth_env(self) -> dict[str, str]:
        if self.token is None or not self.remote.startswith("https://"):
            return {}
        basic = base64.b64encode(f"x-access-token:{self.token()}".encode()).decode()
        return {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }

    # -- reading ------------------------------------------------------------------------------

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self.sync()
        assert self._repo is not None
        return self._repo

    def _git(self, *args: str, env: dict[str, str] | None = None) -> str:
        if args[0] in ("fetch", "push"):
            env = {**(env or {}), **self.auth_env()}
        try:
            # Per call, not custom_environment: that changes the Git object every thread shares.
            return self.repo.git.execute(["git", *args], env=env)
        except git.GitCommandError as exc:
            stderr = (exc.stderr or "").strip()
            if "stale info" in stderr or "rejected" in stderr or "fetch first" in stderr:
                raise ConflictError(f"the environments repo moved while we worked: {stderr}") from exc
            if "Could not read from remote" in stderr or "unable to access" in stderr:
                raise TransientUpstreamError(f"git remote {self.remote} unreachable: {stderr}") from exc
            raise PermanentUpstreamError(f"git {args[0]} failed: {stderr or exc}") from exc

    @_writes
    def sync(self) -> None:
        """Clone on first use, fetch (pruning deleted branches) after that."""
        try:
            if (self.workdir / ".git").is_dir():
                self._repo = git.Repo(self.workdir)
                self._repo.remotes.origin.set_url(self.remote)
            else:
                self.workdir.parent.mkdir(parents=True, exist_ok=True)
                self._repo = git.Repo.clone_from(self.remote, self.workdir, no_checkout=True, env=self.auth_env())
        except git.GitCommandError as exc:
            raise TransientUpstreamError(
                f"cannot reach the environments repo {self.remote}: {(exc.stderr or '').strip()}"
            ) from exc
        self._git("fetch", "--prune", "--quiet", "origin", "+refs/heads/*:refs/remotes/origin/*")
        # The working tree shows the fetched main, so that paths the catalog names (its own
        # blueprints folder) exist where it is parsed.
        self._git("checkout", "--quiet", "--force", "-B", self.branch, self.main_ref)

    @property
    def main_ref(self) -> str:
        return f"refs/remotes/origin/{self.branch}"

    def main_sha(self) -> str:
        return self._git("rev-parse", self.main_ref)

    def read(self, path: str, ref: str | None = None) -> str | None:
        try:
            return self.repo.git.execute(
                ["git", "show", f"{ref or self.main_ref}:{path}"], strip_newline_in_stdout=False
            )
        except git.GitCommandError:
            return None

    def list_files(self, ref: str | None = None) -> list[str]:
        out = self._git("ls-tree", "-r", "--name-only", ref or self.main_ref)
        return [line for line in out.splitlines() if line]

    def bot_branches(self) -> dict[str, BotBranch]:
        out = self._git("for-each-ref", "--format=%(refname)", f"refs/remotes/origin/{BOT_PREFIX}")
        branches = {}
        for ref in out.splitlines():
            name = ref.removeprefix("refs/remotes/origin/")
            head = self._git("rev-parse", ref)
            found = trailers(self._git("log", "-1", "--format=%B", ref))
            authors = self._git("log", "--format=%H %ae", f"{self.main_ref}..{ref}")
            humans = tuple(line.split()[0] for line in authors.splitlines() if line.split()[1:] != [BOT_EMAIL])
            branches[name] = BotBranch(
                name, head, found.get("Releasebot-Version"), found.get("Releasebot-Fingerprint"), humans
            )
        return branches

    @_writes
    def export(self, sha: str, branch: str, dest: Path, pull_number: int | None = None) -> None:
        """Write the tree of commit ``sha`` into ``dest``, fetching it first if need be: from the
        pull request's ref (which also covers forks) or else from ``branch``."""
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            raise PermanentUpstreamError(f"{sha!r} is not a commit id")
        refspecs = [f"+refs/heads/{branch}:refs/remotes/origin/{branch}"] if branch and branch[0] != "-" else []
        if pull_number is not None:  # a fork's branch is not in this repo; GitHub keeps its head here
            refspecs.append(f"+refs/pull/{pull_number}/head:refs/releasebot/pull/{pull_number}")
        for refspec in refspecs:
            if self._has_commit(sha):
                break
            try:
                self._git("fetch", "--quiet", "origin", refspec)
            except PermanentUpstreamError:
                continue
        if not self._has_commit(sha):
            raise PermanentUpstreamError(f"commit {sha[:12]} is not in {self.remote} (force-pushed away?)")
        archive = subprocess.run(
            ["git", "-C", str(self.workdir), "archive", "--format=tar", sha], capture_output=True, check=True
        ).stdout
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")  # refuses links and paths that leave dest

    def _has_commit(self, sha: str) -> bool:
        try:
            self._git("cat-file", "-e", f"{sha}^{{commit}}")
        except PermanentUpstreamError:
            return False
        return True

    # -- writing ------------------------------------------------------------------------------

    def _write(self, edits: Iterable[FileEdit]) -> None:
        for edit in edits:
            path = self.workdir / edit.path
            current = path.read_text(encoding="utf-8") if path.exists() else None
            if current != edit.old:
                raise ConflictError(f"{edit.path} changed on {self.branch} since it was planned")
            path.write_text(edit.new, encoding="utf-8")
            self._git("add", "--", edit.path)

    def _commit(self, change: Change) -> str:
        message = change.commit_message.rstrip("\n") + f"\nReleasebot-Fingerprint: {change.fingerprint}\n"
        self._git("commit", "--quiet", "--no-verify", "-m", message, env=_BOT_ENV)
        return self._git("rev-parse", "HEAD")

    @_writes
    def commit_to_main(self, change: Change) -> str:
        """Commit straight onto the remote main; a moved main is a ConflictError."""
        self._git("checkout", "--quiet", "--force", "-B", self.branch, self.main_ref)
        self._write(change.edits)
        sha = self._commit(change)
        self._git("push", "--quiet", "--porcelain", "origin", f"HEAD:refs/heads/{self.branch}")
        self._git("update-ref", self.main_ref, sha)
        return sha

    @_writes
    def push_branch(self, change: Change, expected: str | None) -> str:
        """Rebuild the change's branch from the latest main and push it with a lease on ``expected``."""
        branch = change.key.branch
        self._git("checkout", "--quiet", "--force", "-B", branch, self.main_ref)
        self._write(change.edits)
        sha = self._commit(change)
        lease = f"--force-with-lease=refs/heads/{branch}:{expected or ''}"
        self._git("push", "--quiet", "--porcelain", lease, "origin", f"HEAD:refs/heads/{branch}")
        self._git("update-ref", f"refs/remotes/origin/{branch}", sha)
        return sha

    @_writes
    def delete_branch(self, branch: BotBranch) -> None:
        self._git(
            "push",
            "--quiet",
            f"--force-with-lease=refs/heads/{branch.name}:{branch.head}",
            "origin",
            f":refs/heads/{branch.name}",
        )

    def history(self, model: str, environment: str | None = None) -> list[Release]:
        out = self._git("log", "--format=%H%x1f%aI%x1f%B%x1e", self.main_ref)
        releases = []
        for record in out.split("\x1e"):
            if not record.strip():
                continue
            sha, date, body = record.strip("\n").split("\x1f", 2)
            t = trailers(body)
            if t.get("Releasebot-Model") != model or "Releasebot-Version" not in t:
                continue  # another model, or a commit that served no new version (unblock)
            if environment and t.get("Releasebot-Environment") != environment:
                continue
            releases.append(
                Release(
                    sha,
                    date,
                    t.get("Releasebot-Environment", "?"),
                    model,
                    t.get("Releasebot-Version", "?"),
                    t.get("Releasebot-Run", "none"),
                    body.splitlines()[0] if body else "",
                )
            )
        return releases
