"""Container image references, by the OCI distribution reference grammar
(github.com/distribution/reference, ``regexp.go``)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] path-component ["/" path-component]*
    domain     := host [":" port]          host: DNS labels, or an IPv6 address in brackets
    path-component := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex{32,}   algorithm: [A-Za-z][A-Za-z0-9]* joined by [-_+.]

and a name of at most 255 characters. Only whether a string *is* a reference: it does not
normalise (``docker.io/library/``) or resolve anything.
"""

from __future__ import annotations

import re

NAME_MAX = 255
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_NAME = rf"(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")


def problem(reference: str) -> str | None:
    """Why ``reference`` is not an image reference, or None when it is one."""
    if len(reference) > NAME_MAX + 1 + 128 + 1 + 200:  # bounds the regular expression's work too
        return "is too long to be an image reference"
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        return "is not an image reference (registry/repository[:tag][@digest], lower-case repository path)"
    if len(match["name"]) > NAME_MAX:
        return f"has a repository name longer than {NAME_MAX} characters"
    return None
