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

Everything that moves the clone's refs, index or working tree holds the workdir's lock: a thread
lock within a process and :class:`WorkdirLock` between processes (two commands given one
``--workdir``, or a command beside ``serve``), waited for a bounded time.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import hashlib
import io
import os
import re
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import git

from bot import settings
from bot.errors import Busy, ConflictError, PermanentUpstreamError, SecurityError, TransientUpstreamError
from bot.plan import BotBranch, Change
from bot.redact import redact

BOT_NAME = "releasebot"
BOT_EMAIL = "releasebot@users.noreply.github.com"
BOT_PREFIX = "releasebot/"
_TRAILER = re.compile(r"^(Releasebot-[A-Za-z]+):\s*(.+)$", re.M)
# What git says when a ref moved under a push or a lease: the remote's main advanced (``fetch
# first``, ``non-fast-forward``), a lease no longer holds (``stale info``), or another writer
# updated the ref between the remote's advertisement and its update (``cannot lock ref ... but
# expected``, reported as ``[remote rejected] (failed to update ref)``). A push refused for any
# other reason (a protected branch, a declining hook) is not a race, and retrying will not help.
_MOVED = ("stale info", "fetch first", "non-fast-forward", "failed to update ref", "cannot lock ref")
# Seconds a command waits for another releasebot using the same workdir, unless the setting says.
WORKDIR_WAIT = settings.WORKDIR_WAIT.seconds({})
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
        raise PermanentUpstreamError(redact(f"git failed: {exc.stderr.strip() or exc}")) from exc


def _blob_id(text: str) -> str:
    """The id git gives a file with this text (``git hash-object``), computed here."""
    data = text.encode("utf-8")
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


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
    base = Path(settings.CACHE_HOME.get(os.environ) or Path.home() / ".cache") / "releasebot"
    return base / hashlib.sha256(remote.encode()).hexdigest()[:16]


class _BlobReader:
    """One ``git cat-file --batch-command`` process answering "what is at COMMIT:PATH".

    Texts are remembered by blob id (a blob never changes), so a file that did not change since
    the last pass is neither read nor decoded again, and the very same string comes back — which
    is what lets the planner's parse memo answer without parsing. Bounded; thread-safe.
    """

    LIMIT = 50_000

    def __init__(self, workdir: Path) -> None:
        self._proc = subprocess.Popen(
            ["git", "cat-file", "--batch-command", "--buffer"],
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._lock = threading.Lock()
        self._texts: dict[str, str] = {}

    def alive(self) -> bool:
        return self._proc.poll() is None

    def _ask(self, command: str) -> tuple[str, int] | None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(command.encode() + b"\nflush\n")
        self._proc.stdin.flush()
        header = self._proc.stdout.readline().decode().split()
        if len(header) != 3:  # "<object> missing", "<object> ambiguous"
            return None
        return header[0], int(header[2]) if header[1] == "blob" else -1

    def text(self, commit: str, path: str) -> str | None:
        if "\n" in path or not path or path.startswith("/"):
            return None
        with self._lock:
            found = self._ask(f"info {commit}:{path}")
            if found is None or found[1] < 0:
                return None
            blob, size = found
            if blob in self._texts:
                return self._texts[blob]
            assert self._proc.stdout is not None
            self._proc.stdin.write(f"contents {blob}\nflush\n".encode())  # type: ignore[union-attr]
            self._proc.stdin.flush()  # type: ignore[union-attr]
            self._proc.stdout.readline()  # the header again
            raw = self._proc.stdout.read(size + 1)[:-1]  # content, then a newline
        text = raw.decode("utf-8", errors="replace")
        if len(self._texts) >= self.LIMIT:
            self._texts.clear()
        self._texts[blob] = text
        return text

    def close(self) -> None:
        if self.alive():
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait(timeout=10)


class Tree(Mapping[str, str]):
    """The files of one commit as a read-only mapping, each read when first asked for.

    Observation hands this to the planner as ``RepoState.main_files``: a pass then reads exactly
    the files its keys need, through one git process, and never a file it does not ask for.
    """

    def __init__(self, commit: str, blobs: _BlobReader) -> None:
        self.commit = commit
        self._blobs = blobs
        self._read: dict[str, str | None] = {}

    def get(self, path: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if path not in self._read:
            self._read[path] = self._blobs.text(self.commit, path)
        found = self._read[path]
        return default if found is None else found

    def __getitem__(self, path: str) -> str:
        found = self.get(path)
        if found is None:
            raise KeyError(path)
        return found

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.get(path) is not None

    def __iter__(self) -> Iterator[str]:
        # Only what was read: a full listing is what this view exists to avoid.
        return iter([p for p, t in self._read.items() if t is not None])

    def __len__(self) -> int:
        return sum(1 for t in self._read.values() if t is not None)


class WorkdirLock:
    """An exclusive lock on one workdir between processes, waited for at most ``wait`` seconds.

    It is an ``flock`` on the workdir folder itself rather than on a file inside its ``.git``: the
    first clone needs the lock too, before there is a ``.git``. The kernel drops it when its
    holder exits, however it exits, so a crashed command never leaves a stale lock behind.
    Not reentrant: :class:`EnvRepo` counts its own nesting.
    """

    def __init__(self, workdir: Path, wait: float = WORKDIR_WAIT) -> None:
        self.workdir = workdir
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)  # git clones into an empty folder
        fd = os.open(self.workdir, os.O_RDONLY)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise Busy(
                        f"another releasebot process is using the workdir {self.workdir} "
                        f"(waited {self.wait:g} s); try again, or give each process its own --workdir"
                    ) from None
                time.sleep(0.05)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


_F = TypeVar("_F", bound=Callable[..., Any])


def _writes(method: _F) -> _F:
    """The method moves the working tree, the index, HEAD or refs: one such method at a time,
    in this process (``lock``) and among processes sharing the workdir (:class:`WorkdirLock`)."""

    @functools.wraps(method)
    def locked(self: EnvRepo, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            outermost = self._lock_depth == 0
            if outermost:
                self._workdir_lock.acquire()
            self._lock_depth += 1
            try:
                return method(self, *args, **kwargs)
            finally:
                self._lock_depth -= 1
                if outermost:
                    self._workdir_lock.release()

    return locked  # type: ignore[return-value]


class EnvRepo:
    """``token``, when given, is asked for a fresh token before each fetch or push over HTTPS
    (a GitHub App's installation token): it goes to git as an HTTP header through the
    environment, never on a command line, so it cannot show up in an error message.

    Threads may share one: reads name a commit or ref and change nothing, while whatever moves
    the working tree, the index, HEAD or refs (fetch, checkout, commit, push) holds ``lock``."""

    def __init__(
        self,
        remote: str,
        workdir: Path,
        branch: str = "main",
        token: Callable[[], str] | None = None,
        workdir_wait: float = WORKDIR_WAIT,
    ) -> None:
        self.remote = remote
        self.workdir = workdir
        self.branch = branch
        self.token = token
        self._repo: git.Repo | None = None
        self._blobs: _BlobReader | None = None
        self.lock = threading.RLock()
        self._workdir_lock = WorkdirLock(workdir, workdir_wait)
        self._lock_depth = 0

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
            said = f"{exc.stdout or ''}\n{stderr}"  # a --porcelain push reports each ref on stdout
            if args[0] == "push" and any(reason in said for reason in _MOVED):
                raise ConflictError(redact(f"the environments repo moved while we worked: {stderr}")) from exc
            if "Could not read from remote" in stderr or "unable to access" in stderr:
                raise TransientUpstreamError(redact(f"git remote {self.remote} unreachable: {stderr}")) from exc
            raise PermanentUpstreamError(redact(f"git {args[0]} failed: {stderr or exc}")) from exc

    def _git_input(self, args: list[str], stdin: str, env: dict[str, str] | None = None) -> str:
        """A local git command fed on standard input (lists too long for a command line, texts)."""
        done = subprocess.run(
            ["git", *args],
            cwd=self.workdir,
            input=stdin.encode("utf-8"),
            capture_output=True,
            check=False,
            env={**os.environ, **(env or {})},
        )
        if done.returncode:
            raise PermanentUpstreamError(f"git {args[0]} failed: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout.decode("utf-8", errors="replace")

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
                redact(f"cannot reach the environments repo {self.remote}: {(exc.stderr or '').strip()}")
            ) from exc
        self._git("fetch", "--prune", "--quiet", "origin", "+refs/heads/*:refs/remotes/origin/*")
        # The working tree shows the fetched main, so that paths the catalog names (its own
        # blueprints folder) exist where it is parsed.
        self._git("checkout", "--quiet", "--force", "-B", self.branch, self.main_ref)

    @property
    def cache_dir(self) -> Path:
        """Where what releasebot learned from this clone is remembered (a validated catalog,
        immutable registry facts): inside its git folder, the bot's own and never committed."""
        return self.workdir / ".git" / "releasebot"

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

    def tree(self, ref: str | None = None) -> Tree:
        """A read-only view of one commit's files (main by default), read as they are asked for."""
        commit = self._git("rev-parse", f"{ref or self.main_ref}^{{commit}}")
        if self._blobs is None or not self._blobs.alive():
            self._blobs = _BlobReader(self.workdir)
        return Tree(commit, self._blobs)

    def list_files(self, ref: str | None = None) -> list[str]:
        out = self._git("ls-tree", "-r", "--name-only", ref or self.main_ref)
        return [line for line in out.splitlines() if line]

    def bot_branches(self, patterns: Iterable[str] = ()) -> dict[str, BotBranch]:
        """Open bot branches (those under ``releasebot/`` matching any of ``patterns``, e.g.
        ``releasebot/*/fraud/*``; all when none is given), in two git calls however many."""
        wanted = [f"refs/remotes/origin/{p}" for p in patterns] or [f"refs/remotes/origin/{BOT_PREFIX}"]
        fmt = "--format=%(refname)%1f%(objectname)%1f%(contents)%1e"
        out = self._git("for-each-ref", fmt, *wanted)
        heads: dict[str, tuple[str, dict[str, str]]] = {}
        for record in out.split("\x1e"):
            if not record.strip():
                continue
            ref, head, message = record.lstrip("\n").split("\x1f", 2)
            name = ref.removeprefix("refs/remotes/origin/")
            if name.startswith(BOT_PREFIX):
                heads[name] = (head, trailers(message))
        humans = self._human_commits({head for head, _ in heads.values()})
        return {
            name: BotBranch(
                name,
                head,
                found.get("Releasebot-Version"),
                found.get("Releasebot-Fingerprint"),
                humans[head],
                # Only a pin has no desired state to compare with: it is moot once main has it.
                applied=name.endswith("/pin") and self._same_tree(head),
            )
            for name, (head, found) in heads.items()
        }

    def _same_tree(self, head: str) -> bool:
        done = subprocess.run(
            ["git", "diff", "--quiet", self.main_ref, head], cwd=self.workdir, capture_output=True, check=False
        )
        return done.returncode == 0

    def bot_branch(self, name: str) -> BotBranch | None:
        return self.bot_branches([name]).get(name)

    def _human_commits(self, heads: set[str]) -> dict[str, tuple[str, ...]]:
        """For each head, the commits between main and it that releasebot did not author.

        One ``git log`` lists every commit reachable from some head and not from main; each
        head's own commits are then found by walking parents inside that set (a commit reached
        through a commit of main would be on main too, so the walk never needs to leave it).
        """
        if not heads:
            return {}
        out = self._git_input(
            ["log", "--format=%H %P%x1f%ae", "--stdin"],
            "".join(f"{h}\n" for h in sorted(heads)) + f"^{self.main_ref}\n",
        )
        commits: dict[str, tuple[list[str], str]] = {}
        for line in out.splitlines():
            if "\x1f" in line:
                shas, email = line.split("\x1f", 1)
                sha, *parents = shas.split()
                commits[sha] = (parents, email)
        order = {sha: i for i, sha in enumerate(commits)}  # git log's order: newest first
        found = {}
        for head in heads:
            seen, todo, humans = set(), [head], []
            while todo:
                sha = todo.pop()
                if sha in seen or sha not in commits:
                    continue
                seen.add(sha)
                parents, email = commits[sha]
                if email != BOT_EMAIL:
                    humans.append(sha)
                todo.extend(parents)
            found[head] = tuple(sorted(humans, key=order.__getitem__))
        return found

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
            raise PermanentUpstreamError(redact(f"commit {sha[:12]} is not in {self.remote} (force-pushed away?)"))
        archive = subprocess.run(
            ["git", "-C", str(self.workdir), "archive", "--format=tar", sha], capture_output=True, check=True
        ).stdout
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            try:
                tar.extractall(dest, filter="data")  # refuses links and paths that leave dest
            except tarfile.FilterError as exc:
                raise SecurityError(f"commit {sha[:12]}: {exc}") from exc

    def landed(self, path: str, ref: str | None = None) -> tuple[str, datetime] | None:
        """The first-parent commit of main that last changed ``path``, and when: a merge is
        the time a pull request landed, a direct commit its own time."""
        out = self._git("log", "-1", "--first-parent", "--format=%H %ct", ref or self.main_ref, "--", path).strip()
        if not out:
            return None
        sha, stamp = out.split()
        return sha, datetime.fromtimestamp(int(stamp), UTC)

    def step_of(self, path: str) -> str | None:
        """The Releasebot-Step trailer of the last commit that changed ``path`` on main, looked
        up in full history: a pull request's merge commit says nothing, the bot's commit does."""
        out = self._git("log", "-1", "--format=%B", self.main_ref, "--", path)
        return trailers(out).get("Releasebot-Step")

    def reached(self, path: str, model: str, environment: str, version: str) -> bool:
        """Whether ``version`` of ``model`` was ever served at 100% in ``environment`` on main: a
        release commit for it (no step), or a walk's promotion (step N of N)."""
        out = self._git(
            "log",
            "--format=%B%x1e",
            "--fixed-strings",
            f"--grep=Releasebot-Version: {version}",
            self.main_ref,
            "--",
            path,
        )
        for body in out.split("\x1e"):
            t = trailers(body)
            if (t.get("Releasebot-Model"), t.get("Releasebot-Environment"), t.get("Releasebot-Version")) != (
                model,
                environment,
                version,
            ):
                continue
            step = t.get("Releasebot-Step")
            if step is None or (step.partition("/")[0] == step.partition("/")[2] != ""):
                return True
        return False

    def contains(self, commit: str, revision: str) -> bool:
        """Whether ``revision`` (a commit Argo CD deployed) has ``commit`` in its history. A
        revision this clone does not know (not fetched yet, or force-pushed away) does not."""
        done = subprocess.run(
            ["git", "merge-base", "--is-ancestor", commit, revision],
            cwd=self.workdir,
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def _has_commit(self, sha: str) -> bool:
        try:
            self._git("cat-file", "-e", f"{sha}^{{commit}}")
        except PermanentUpstreamError:
            return False
        return True

    # -- writing ------------------------------------------------------------------------------

    def _commit_on(self, base: str, change: Change) -> str:
        """A commit with ``change``'s edits on top of ``base``, made without a working tree.

        Only the trees on the paths of the edited files are rewritten (``git mktree``, one folder
        at a time), so writes never touch the clone's working tree or each other (two keys can be
        written at once), and a write costs about the same in a repository of ten files or fifty
        thousand. A file that is no longer what the change was planned from is a ConflictError:
        re-plan.
        """
        files: dict[str, tuple[str, str]] = {}
        for edit in change.edits:
            listed = self._git("ls-tree", base, "--", edit.path)
            mode, current = (listed.split()[0], listed.split()[2]) if listed else ("100644", None)
            if current != _blob_id(edit.old):
                raise ConflictError(f"{edit.path} changed on {self.branch} since it was planned")
            files[edit.path] = (mode, self._git_input(["hash-object", "-w", "--stdin"], edit.new).strip())
        tree = self._tree_with(f"{base}^{{tree}}", files)
        message = change.commit_message.rstrip("\n") + f"\nReleasebot-Fingerprint: {change.fingerprint}\n"
        return self._git_input(["commit-tree", tree, "-p", base, "-F", "-"], message, env=_BOT_ENV).strip()

    def _tree_with(self, tree: str | None, files: dict[str, tuple[str, str]]) -> str:
        """``tree`` (None: an empty one) with ``files`` (path below it -> mode, blob) in place."""
        entries: dict[str, str] = {}
        if tree is not None:
            for line in self._git("ls-tree", "-z", tree).split("\0"):
                if line:
                    meta, name = line.split("\t", 1)
                    entries[name] = meta
        below: dict[str, dict[str, tuple[str, str]]] = {}
        for path, (mode, blob) in files.items():
            name, _, rest = path.partition("/")
            if rest:
                below.setdefault(name, {})[rest] = (mode, blob)
            else:
                entries[name] = f"{mode} blob {blob}"
        for name, inner in below.items():
            meta = entries.get(name, "")
            subtree = meta.split()[2] if meta.split()[1:2] == ["tree"] else None
            entries[name] = f"040000 tree {self._tree_with(subtree, inner)}"
        listing = "".join(f"{meta}\t{name}\0" for name, meta in entries.items())
        return self._git_input(["mktree", "-z", "--missing"], listing).strip()  # entries already exist

    @_writes
    def commit_to_main(self, change: Change) -> str:
        """Commit straight onto the remote main; a moved main is a ConflictError."""
        return self.commit_all_to_main([change])[0]

    @_writes
    def commit_all_to_main(self, changes: list[Change]) -> list[str]:
        """One commit per change, chained on the remote main, and one push for them all.

        A push costs more than a commit, so a pass that releases a thousand models pushes once.
        When a change no longer applies (an earlier one in the chain edited its file), the
        commits before it are pushed and the ConflictError goes up: the caller re-plans the
        rest from the new main. A moved main is a ConflictError before anything lands.
        """
        shas: list[str] = []
        head = self.main_sha()
        try:
            for change in changes:
                head = self._commit_on(head, change)
                shas.append(head)
        except ConflictError:
            if shas:
                self._push_main(shas[-1])
            raise
        if shas:
            self._push_main(shas[-1])
        return shas

    def _push_main(self, sha: str) -> None:
        self._git("push", "--quiet", "--porcelain", "origin", f"{sha}:refs/heads/{self.branch}")
        self._git("update-ref", self.main_ref, sha)

    @_writes
    def push_branch(self, change: Change, expected: str | None) -> str:
        """Rebuild the change's branch from the latest main and push it with a lease on ``expected``."""
        branch = change.key.branch
        sha = self._commit_on(self.main_sha(), change)
        lease = f"--force-with-lease=refs/heads/{branch}:{expected or ''}"
        self._git("push", "--quiet", "--porcelain", lease, "origin", f"{sha}:refs/heads/{branch}")
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
