"""The error tree every releasebot module raises from, and the retry bit callers act on.

::

    ReleasebotError
    ├── ConfigError              permanent: bad catalog, blueprint or manifest; shown with file/line/path
    │   ├── YamlError            the YAML itself is refused (syntax, hostile shape, duplicate keys)
    │   ├── InvalidInput         a list of located Problems found together
    │   └── UsageError           the command line asks for something that is not there (an unknown --env)
    ├── UpstreamError            an external system failed
    │   ├── TransientUpstreamError   5xx, 429, timeouts: retry with backoff
    │   └── PermanentUpstreamError   4xx and refusals: retrying will not help
    ├── ConflictError            the base moved under us: re-plan and try again
    ├── InvalidRequest           a webhook body that is JSON but not the shape its event needs (400)
    ├── Busy                     another process holds what we need (a workdir): try again later
    └── SecurityError            bad signature, path escape, forbidden input

Adapters chain the library's own exception (``raise ... from exc``) so nothing is lost, and keep
secrets out of messages. This module deliberately holds no formatting for any one output channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file, a 1-based line when known, and a JSON path such as ``$.spec.x``."""

    file: str
    line: int | None = None
    path: str = "$"

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return where if self.path == "$" else f"{where}: {self.path}"


@dataclass(frozen=True, order=True)
class Problem:
    """One located finding. ``rule`` is a stable short code for machines (``--output json``)."""

    file: str
    line: int | None
    path: str
    message: str
    rule: str = "schema"

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "path": self.path, "message": self.message, "rule": self.rule}


class ReleasebotError(Exception):
    """Base of everything releasebot raises on purpose.

    ``written`` says what the failed operation had already written (commits pushed, branches,
    pull requests), newest last, so that a message never claims "nothing was written" after
    something landed. Whoever carries out several writes fills it in on the way up.
    """

    retryable: bool = False
    written: tuple[str, ...] = ()


class ConfigError(ReleasebotError):
    """Input a person wrote is wrong. Never retryable; the message says where and what was expected."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class YamlError(ConfigError):
    """A YAML document is refused before any of it is used."""


class InvalidInput(ConfigError):
    """Several located problems at once (a catalog, a blueprint), reported together."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UsageError(ConfigError):
    """A command line that names something the catalog does not have, or asks for what cannot be
    done as asked. A configuration error in all but name: the name tells people which to fix."""


class UpstreamError(ReleasebotError):
    """An external system (MLflow, GitHub, git, Kubernetes) did not do what we asked."""


class TransientUpstreamError(UpstreamError):
    retryable = True

    def __init__(self, message: str, delay: float | None = None) -> None:
        self.delay = delay
        super().__init__(message)


class PermanentUpstreamError(UpstreamError):
    """Retrying the same request will fail the same way."""


class ConflictError(ReleasebotError):
    """Someone else changed what we were about to change; re-plan from fresh state."""

    retryable = True


class InvalidRequest(ReleasebotError):
    """A delivery that is signed and parses, but not the shape its event needs. The message names
    the JSON path; the sender gets 400 and nothing is queued."""


class Busy(ReleasebotError):
    """Another process holds something this one needs (a workdir's lock) longer than we wait."""

    retryable = True


class SecurityError(ReleasebotError):
    """Refused for safety: a bad signature, a path that escapes its root, a forbidden construct."""
