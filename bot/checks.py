"""The ``releasebot/validate`` check run's content, from a validation report. Pure.

:func:`bot.validate.validate_repo` runs on the pull request's head commit (exported by
:meth:`bot.repo.EnvRepo.export`); this module words the result the way GitHub shows it: a
conclusion, a title, a Markdown summary, and one annotation per problem on its file and line
(line 1 when a problem has none: GitHub needs a line to show an annotation). When validation
itself could not run to the end, :func:`broken` words that as a failure naming the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot import prbody
from bot.errors import ReleasebotError, SecurityError
from bot.validate import Report

SUMMARY_PROBLEMS = 20


@dataclass(frozen=True)
class CheckOutcome:
    conclusion: str  # success | failure | neutral (the commit could not be fetched)
    title: str
    summary: str
    annotations: tuple[dict[str, Any], ...]


def outcome(report: Report, head_sha: str) -> CheckOutcome:
    if report.ok:
        title = f"{report.files_checked} file(s) valid"
        summary = f"`releasebot validate` found no problems in {report.files_checked} file(s) at {head_sha[:12]}."
        return CheckOutcome("success", title, summary, ())
    files = sorted({p.file for p in report.problems})
    title = f"{len(report.problems)} problem(s) in {len(files)} file(s)"
    lines = [f"`releasebot validate` at {head_sha[:12]}: {title}.", ""]
    lines += [f"- {prbody.clean(str(p))[:300]}" for p in report.problems[:SUMMARY_PROBLEMS]]
    if len(report.problems) > SUMMARY_PROBLEMS:
        lines.append(f"- … and {len(report.problems) - SUMMARY_PROBLEMS} more (see the annotations)")
    annotations = tuple(
        {
            "path": p.file,
            "start_line": p.line or 1,
            "end_line": p.line or 1,
            "annotation_level": "failure",
            "title": f"{p.rule}: {p.path}"[:255] if p.path else p.rule,
            "message": p.message[:4000],  # GitHub's limit is 64 KB; a message this long says enough
        }
        for p in report.problems
    )
    return CheckOutcome("failure", title, "\n".join(lines), annotations)


def broken(exc: BaseException, head_sha: str) -> CheckOutcome:
    """The check's end when validating ``head_sha`` failed part way: a failure (a head that cannot
    be validated must not pass) whose summary names what went wrong."""
    if isinstance(exc, SecurityError):
        title = "Refused: the commit is unsafe to read"
    elif isinstance(exc, ReleasebotError):
        title = "Could not validate this commit"
    else:
        title = "releasebot failed while validating this commit"
    what = str(exc) if isinstance(exc, ReleasebotError) else f"{type(exc).__name__}: {exc}"
    summary = f"`releasebot validate` did not finish at {head_sha[:12]}: {prbody.clean(what)[:1000]}"
    return CheckOutcome("failure", title, summary, ())
