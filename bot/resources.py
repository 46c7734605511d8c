"""Where releasebot's own data lives: the JSON Schemas in ``schemas/`` and the built-in blueprints.

In a source checkout (and an editable install) they sit beside the package; in a wheel they are
shipped inside it under ``bot/_data/``. Nothing here reads the files, it only finds them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def _root(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"releasebot's {name}/ folder is missing from this installation")


def schemas_dir() -> Path:
    return _root("schemas")


def blueprints_dir() -> Path:
    return _root("blueprints")
