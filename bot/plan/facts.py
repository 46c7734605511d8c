"""Facts read off manifests on main, parsed once per text. Pure.

Every policy asks the same questions of an InferenceService (which version it serves, what Git
pins or blocks, whether a canary runs); a full pass asks them of every manifest, an event of a
few. :func:`served` answers from one parse per distinct text with the fast plain reader
(:mod:`bot.yamlplain`, under the same guard as every load), remembered in a bounded table keyed
by the text itself (the content, as a git blob id is: a text that did not change is not parsed
again, in this pass or, in ``serve``, the next). What it returns is frozen, so a remembered
answer cannot be edited by a caller; documents to *edit* are always loaded afresh, round trip.
"""

from __future__ import annotations

from typing import Any

from bot import yamlplain
from bot.manifests import inferenceservice as isvc
from bot.manifests import rollout
from bot.plan.types import Served

_MEMO_LIMIT = 50_000  # manifests; a 5,000-model fleet in three environments fits with room
_memo: dict[str, Served] = {}


_plain: dict[str, Any] = {}


def plain(text: str, path: str) -> Any:
    """The manifest as plain data, parsed once per text. Shared: read it, never change it."""
    found = _plain.get(text)
    if found is None:
        found = yamlplain.load(text, path)
        if len(_plain) >= _MEMO_LIMIT:
            _plain.clear()
        _plain[text] = found
    return found


def served(text: str, path: str) -> Served:
    """What the manifest ``text`` (found at ``path``) serves, pins, blocks and canaries."""
    found = _memo.get(text)
    if found is None:
        found = _parse(text, path)
        if len(_memo) >= _MEMO_LIMIT:
            _memo.clear()  # crude but bounded; a pass refills what it needs
        _memo[text] = found
    return found


def _parse(text: str, path: str) -> Served:
    # Facts need plain data, not round trip: the fast reader, under the same guard.
    doc = plain(text, path)
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    blocked = isvc.blocked_in(annotations)
    version = annotations.get(isvc.VERSION_ANNOTATION)
    pinned = annotations.get(isvc.PINNED_ANNOTATION)
    step, stable = rollout.walk_of(doc)
    return Served(
        version=str(version) if version is not None else None,
        storage_uri=isvc.storage_uri_in(doc),
        pinned=str(pinned) if pinned else None,
        blocked=frozenset(blocked),
        canary=rollout.canary_in(doc),
        step=step,
        stable=stable,
    )
