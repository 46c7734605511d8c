"""How the command line speaks: exit codes, results on stdout, failures on stderr, progress on a
terminal. Every verb goes through :class:`Output`, and every failure through :func:`failure`.

Exit codes (:data:`EXIT_CODES`; ``releasebot --help`` prints them, the README's table is checked
against them)::

    0   nothing to do, or done
    1   the command ran and found something: drift (drift run --fail-on-drift), differences
        (render --check), problems (validate), keys it could not plan (plan, reconcile)
    2   usage or configuration: the command line (argparse; an unknown --env or --model), a
        catalog, manifest or data file, or a request an upstream refused (4xx, a rejected push, a
        version MLflow does not have): the same command will fail the same way until that is fixed
    3   unavailable: MLflow, GitHub, the git remote, Kubernetes, Prometheus or KFP did not answer,
        answered 5xx or 429, or another releasebot holds the workdir: the same command may succeed
        later (it is the errors' retry bit, :attr:`ReleasebotError.retryable`)
    70  releasebot itself failed (a bug): the traceback is on stderr (EX_SOFTWARE of sysexits.h)

An upstream's refusal is 2, not 3, because nothing a retry does changes it; the retrain CronJob's
``podFailurePolicy`` relies on that split (1 and 2 fail the Job at once, 3 is left to backoff).

Streams: stdout carries the result and nothing else — text for people, or with ``--output json``
exactly one JSON document (:mod:`bot.documents`). Failures, notices and logs go to stderr; with
``--output json`` as JSON lines (``{"error": {...}}``, ``{"notice": {...}}``, log records), and on
a failure stdout stays empty, so ``releasebot plan --output json | jq`` never reads an error as
a plan. Everything printed is redacted of credentials in URLs.

Progress is drawn with ``rich`` on stderr, only when stdout and stderr are both terminals and the
output is text: piped or captured, a command prints exactly what it printed without it.

This module decides nothing about what a verb does, and builds no document.
"""

from __future__ import annotations

import json
import sys
import textwrap
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import IO, Any

from bot.errors import InvalidInput, Problem, ReleasebotError, UpstreamError, UsageError
from bot.progress import Progress, silent
from bot.redact import redact


class Exit(IntEnum):
    OK = 0
    FOUND = 1
    USAGE = 2
    UNAVAILABLE = 3
    INTERNAL = 70


# (code, meaning): the --help epilog and the README's table say exactly this.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (Exit.OK, "nothing to do, or done"),
    (
        Exit.FOUND,
        "the command ran and found something: drift (drift run --fail-on-drift), differences "
        "(render --check), problems (validate), keys it could not plan (plan, reconcile)",
    ),
    (
        Exit.USAGE,
        "usage or configuration: the command line (an unknown --env or --model), a catalog, manifest "
        "or data file, or a request an upstream refused (4xx, a rejected push): fix it, then run again",
    ),
    (
        Exit.UNAVAILABLE,
        "MLflow, GitHub, the git remote, Kubernetes, Prometheus or KFP did not answer or answered "
        "5xx/429, or another releasebot holds the workdir: the same command may succeed later",
    ),
    (Exit.INTERNAL, "releasebot itself failed (a bug): the traceback is on stderr"),
)


def epilog() -> str:
    """The exit codes, as ``releasebot --help`` ends."""
    lines = ["exit codes:"]
    for code, meaning in EXIT_CODES:
        lines.append(textwrap.fill(meaning, 78, initial_indent=f"  {code:<4}", subsequent_indent=" " * 6))
    return "\n".join(lines)


@dataclass(frozen=True)
class Failure:
    """An exception as the command line reports it. ``kind`` is ``usage``, ``config``,
    ``refused`` (an upstream said no), ``unavailable`` or ``internal``."""

    code: int
    kind: str
    message: str
    problems: tuple[Problem, ...] = ()
    written: tuple[str, ...] = ()
    trace: str | None = None


def failure(exc: BaseException) -> Failure:
    """The one mapping from an exception to an exit code."""
    if not isinstance(exc, ReleasebotError):
        trace = "".join(traceback.format_exception(exc))
        return Failure(Exit.INTERNAL, "internal", f"{type(exc).__name__}: {exc}", trace=trace)
    written = tuple(exc.written)
    if exc.retryable:
        return Failure(Exit.UNAVAILABLE, "unavailable", str(exc), written=written)
    problems = tuple(exc.problems) if isinstance(exc, InvalidInput) else ()
    if isinstance(exc, UsageError):
        kind = "usage"
    elif isinstance(exc, UpstreamError):
        kind = "refused"
    else:
        kind = "config"
    return Failure(Exit.USAGE, kind, str(exc), problems, written)


def _written(done: Sequence[str]) -> str:
    if not done:
        return "nothing was written"
    return f"{len(done)} change(s) were written ({'; '.join(done)})"


class Output:
    """Where one run of one verb writes. ``fmt`` is the verb's ``--output`` (``json``, or a
    text form: ``text``, ``table``)."""

    def __init__(self, fmt: str = "text", stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self.fmt = fmt
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr

    @classmethod
    def of(cls, args: Any) -> Output:
        return cls(getattr(args, "output", None) or "text")

    @property
    def json(self) -> bool:
        return self.fmt == "json"

    # --- results, on stdout ----------------------------------------------------------------

    def document(self, doc: Any) -> None:
        """The one JSON document of a run."""
        self.stdout.write(redact(json.dumps(doc, indent=2)) + "\n")

    def line(self, doc: Any) -> None:
        """One compact JSON line, for a verb that keeps running (``serve``)."""
        self.stdout.write(redact(json.dumps(doc, separators=(",", ":"))) + "\n")
        self.stdout.flush()

    def text(self, *lines: str) -> None:
        for line in lines:
            self.stdout.write(redact(line) + "\n")

    def table(self, rows: list[dict[str, str]], columns: list[str]) -> None:
        self.text(*text_table(rows, columns))

    # --- everything else, on stderr -------------------------------------------------------------

    def notice(self, message: str) -> None:
        """Something people should know that is neither the result nor a failure."""
        if self.json:
            self._json_err({"notice": {"message": message}})
        else:
            self.stderr.write(redact(f"releasebot: {message}") + "\n")

    def say(self, message: str) -> None:
        """A plain line on stderr in text mode (notes beside a result); nothing in JSON mode,
        where the document carries the same."""
        if not self.json:
            self.stderr.write(redact(message) + "\n")

    def fail(self, f: Failure) -> int:
        if self.json:
            error: dict[str, Any] = {"kind": f.kind, "exit_code": int(f.code), "message": f.message}
            if f.problems:
                error["problems"] = [p.as_dict() for p in f.problems]
            error["written"] = list(f.written)
            if f.trace:
                error["traceback"] = f.trace
            self._json_err({"error": error})
            return f.code
        if f.trace:
            self.stderr.write(redact(f.trace))
            self.stderr.write("releasebot: this is a bug (exit 70); please report it with the traceback above\n")
        elif f.problems:
            for p in f.problems:
                self.stderr.write(redact(str(p)) + "\n")
            self.notice(f"{len(f.problems)} problem(s); {_written(f.written)}")
        elif f.written:
            self.notice(f"{_written(f.written)}; then it failed: {f.message}; nothing else was written")
        else:
            self.notice(f"{f.message}; nothing was written")
        return f.code

    def _json_err(self, doc: Any) -> None:
        self.stderr.write(redact(json.dumps(doc, separators=(",", ":"))) + "\n")

    # --- progress ---------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """Whether progress is drawn: text output, stdout and stderr both terminals."""
        if self.json or not _isatty(self.stdout) or not _isatty(self.stderr):
            return False
        from rich.console import Console

        return Console(file=self.stderr).is_interactive  # not TERM=dumb

    @contextmanager
    def progress(self, label: str) -> Iterator[Progress]:
        """A callback for the work to report through; drawn only when :attr:`live`."""
        if not self.live:
            yield silent
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        bar = Bar(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[what]}", markup=False),
            console=Console(file=self.stderr),
            transient=True,  # the bar goes; the result stays
            # Nothing else is captured: stdout must be what it is without a terminal.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        with bar:
            task = bar.add_task(label, total=None, what="")

            def step(done: int, total: int | None, what: str = "") -> None:
                bar.update(task, completed=done, total=total, what=what)

            yield step


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False


def text_table(rows: list[dict[str, str]], columns: list[str]) -> list[str]:
    """Rows aligned for a terminal, headers in capitals (the CLI and the demo)."""
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in columns}
    out = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    out += ["  ".join(r[c].ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return out
