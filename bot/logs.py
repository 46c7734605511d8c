"""Where releasebot's log lines go, and how they look: one handler on the root logger, on stderr,
with credentials redacted (:class:`bot.redact.RedactingFilter`) from every record it writes.

``serve`` writes JSON lines — ``time``, ``level``, ``logger``, ``message``, and the fields a record
was given as ``extra`` (``key``, ``duration_ms``, ``source``, ``event``, ``outcome`` …) — so a log
pipeline can count and search them; the CLI writes plain text. :func:`configure` may be called
again (tests do): it replaces the handler it installed, never anyone else's. It decides nothing
about what is logged.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from bot.redact import RedactingFilter, redact

LEVELS = ("debug", "info", "warning", "error")
# LogRecord's own attributes; anything else on a record came in as ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return redact(json.dumps(line, default=str))


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(level: str = "warning", json_lines: bool = False) -> logging.Handler:
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_releasebot", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler._releasebot = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonLines() if json_lines else _Text("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    return handler
