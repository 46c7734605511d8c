"""Credentials out of anything releasebot shows: :func:`redact` replaces the userinfo of every URL
in a text (``https://x-access-token:ghs_...@github.com/...`` becomes ``https://***@github.com/...``).

It is applied where output leaves releasebot — the CLI's error lines, log records
(:class:`RedactingFilter`), adapters' error messages that quote a remote or tracking URI, pull
request bodies and commit messages — because the libraries underneath (git, MLflow's client) echo
the URL they were given, credentials and all. Pure; it knows nothing of where the text goes, and
does not find secrets that are not in a URL (releasebot never holds those in text it prints).
"""

from __future__ import annotations

import logging
import re

# scheme://userinfo@ — the userinfo runs to the last "@" before the path, so a password that
# itself holds an unescaped "@" is hidden whole.
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{0,30}://)[^/\s?#@'\"<>]*(?:@[^/\s?#@'\"<>]*)*@")


def redact(text: str) -> str:
    return _USERINFO.sub(r"\1***@", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with its arguments merged in and redacted, and its exception
    text; attached to a handler it covers every record the handler writes, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
