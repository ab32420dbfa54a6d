"""One decision rule for every chapter's "what holds at this scale" table.

A claim *holds here* when the 95 % interval of its estimate, resampled over the unit that varies
(prompts, words, seeds, pairs), lies entirely on the claimed side of a null value. Each row says its
unit and how many units the interval rests on. A row that cannot fail (true by construction, or with
nothing to test at this scale) is :func:`not_a_test`: it is shown, labelled, and not counted.

Chapters build their rows with :func:`decide` and :func:`not_a_test` inside a ``findings(results)``
function of their own (tested), and the notebook glues :func:`summary`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import pandas as pd

SIDES = ("greater", "less", "two-sided")


@dataclass(frozen=True)
class Finding:
    """One row of a claims table. ``holds`` is True or False for a test, None for a row that is not one."""

    claim: str  # the paper's claim, in words
    paper: str  # what the paper reported
    here: str  # our estimate and interval, formatted
    rule: str  # the decision rule, in words
    unit: str  # what the interval resamples: "prompts", "words", "seeds", "pairs", ...
    n: int  # how many of those units
    holds: bool | None

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "does not hold", None: "not a test here"}[self.holds]


def excludes(low: float, high: float, null: float, side: str = "greater") -> bool:
    """Whether the interval [low, high] lies wholly on ``side`` of ``null`` (two-sided: either side, strictly)."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    for name, value in (("low", low), ("high", high), ("null", null)):
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            raise ValueError(f"{name} must be a number, got {value!r}")
    if low > high:
        raise ValueError(f"the interval is reversed: low {low} > high {high}")
    if side == "greater":
        return low > null
    if side == "less":
        return high < null
    return low > null or high < null


def decide(claim: str, paper: str, estimate: float, low: float, high: float, *, null: float, unit: str, n: int,
           side: str = "greater", fmt: str = "{:.3f}", what: str = "") -> Finding:
    """A row decided by the rule: the interval over ``n`` ``unit``s excludes ``null`` on ``side``."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be the number of resampled units (an int >= 1), got {n!r}")
    if not isinstance(unit, str) or not unit.strip():
        raise ValueError(f"unit must name what the interval resamples (prompts, words, seeds, pairs), got {unit!r}")
    holds = excludes(float(low), float(high), float(null), side)
    relation = {"greater": "above", "less": "below", "two-sided": "away from"}[side]
    here = f"{what + ' ' if what else ''}{fmt.format(estimate)} [{fmt.format(low)}, {fmt.format(high)}]"
    return Finding(claim, paper, here, f"95 % interval over {unit} {relation} {fmt.format(null)}", unit, n, holds)


def not_a_test(claim: str, paper: str, here: str, why: str, *, unit: str = "", n: int = 0) -> Finding:
    """A row shown for completeness that cannot fail here (``why`` says why); it is never counted."""
    if not isinstance(why, str) or not why.strip():
        raise ValueError("not_a_test needs a reason: why can this row not fail here?")
    return Finding(claim, paper, here, f"not a test here: {why}", unit, n, None)


def table(rows: Sequence[Finding]) -> pd.DataFrame:
    """The claims table: one row per finding, with its verdict in words."""
    if not rows or not all(isinstance(r, Finding) for r in rows):
        raise ValueError("table needs a non-empty sequence of Finding rows")
    frame = pd.DataFrame([asdict(r) for r in rows])
    frame["verdict"] = [r.verdict for r in rows]
    return frame[["claim", "paper", "here", "rule", "unit", "n", "verdict"]]


def summary(rows: Sequence[Finding]) -> tuple[int, int]:
    """(held, tested): how many tested rows hold, and how many rows are tests at all."""
    decided = [r for r in rows if r.holds is not None]
    return sum(bool(r.holds) for r in decided), len(decided)
