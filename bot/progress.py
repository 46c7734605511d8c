"""How long work says how far it got: a callback the work calls, and nothing else.

``progress(done, total, what)`` — ``done`` units of ``total`` finished (``total`` None while it
is not known yet), ``what`` the unit under way (a file, a branch, a phase). Validate, render,
init, reconcile and the drift job take one; the CLI draws it on a terminal (:mod:`bot.output`),
everyone else passes nothing and :func:`silent` is called.

Deliberately no drawing, no clock and no terminal here: the core stays free of ``rich`` (an
import contract in tests/test_layers.py), and progress never changes what the work does.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, "int | None", str], None]


def silent(done: int, total: int | None, what: str = "") -> None:
    """Progress nobody watches."""
