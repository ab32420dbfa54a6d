"""Input checks that several modules share: one line naming the argument, TypeError for a wrong type and
ValueError for a wrong value.

A wrong type raises :class:`ArgumentTypeError`, a TypeError that is also a ValueError (as numpy's AxisError is
both a ValueError and an IndexError), so code that caught ValueError for any bad input still catches it.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type."""


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)  # numpy ints count, bools do not


def count(name: str, value: Any, low: int = 1, *, optional: bool = False, why: str = "") -> int | None:
    """``value`` as an int >= ``low`` (or None when ``optional``); bools are not counts. ``why`` is said after
    the rule (``"pairs need two responses per prompt"``).

    >>> count("k", 3, low=2)
    3
    >>> count("n", None, optional=True) is None
    True
    """
    if optional and value is None:
        return None
    what = f"{name} must be {'None or ' if optional else ''}an int >= {low}{f' ({why})' if why else ''}, got {value!r}"
    if not _is_int(value):
        raise ArgumentTypeError(what)
    if value < low:
        raise ValueError(what)
    return value


def texts(name: str, value: Any, *, nonblank: bool = False) -> list[str]:
    """``value`` as a non-empty list of strings (a single string is refused: it is a sequence of characters);
    with ``nonblank``, none may be empty or whitespace.

    >>> texts("prompts", ("Hi", "Hello"))
    ['Hi', 'Hello']
    """
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ArgumentTypeError(f"{name} must be a non-empty sequence of strings, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must be a non-empty sequence of strings, got an empty one")
    bad = next((i for i, item in enumerate(value) if not isinstance(item, str)), None)
    if bad is not None:
        raise ArgumentTypeError(f"{name}[{bad}] is {type(value[bad]).__name__}, expected str")
    if nonblank:
        blank = next((i for i, item in enumerate(value) if not item.strip()), None)
        if blank is not None:
            raise ValueError(f"{name}[{blank}] is blank; every item must be a non-empty string")
    return list(value)
