"""The one decision rule: an interval over the varying unit must exclude the null; by-construction rows never count."""

import pytest

from rewardscope.findings import decide, excludes, not_a_test, summary, table


def test_a_claim_holds_only_when_the_interval_excludes_the_null():
    assert excludes(0.1, 0.4, 0.0) and not excludes(-0.1, 0.4, 0.0)
    assert excludes(-0.5, -0.2, 0.0, "less") and not excludes(-0.5, 0.2, 0.0, "less")
    assert excludes(0.1, 0.2, 0.0, "two-sided") and excludes(-0.2, -0.1, 0.0, "two-sided")
    assert not excludes(-0.1, 0.1, 0.0, "two-sided")


def test_rows_say_their_unit_and_n_and_by_construction_rows_are_not_counted():
    rows = [decide("AUROC above chance", "0.80", 0.7, 0.6, 0.8, null=0.5, unit="pairs", n=100),
            decide("spread over restarts", "sd 0.10", 0.02, -0.01, 0.05, null=0.0, unit="seeds", n=3),
            not_a_test("target imprints", "yes", "+0.4", "the labellers threshold the gold's own signal")]
    frame = table(rows)
    assert list(frame["verdict"]) == ["holds", "does not hold", "not a test here"]
    assert frame.loc[0, "unit"] == "pairs" and frame.loc[0, "n"] == 100 and "0.700 [0.600, 0.800]" in frame.loc[0, "here"]
    assert summary(rows) == (1, 2)


@pytest.mark.parametrize("call, match", [
    (lambda: excludes(0.3, 0.1, 0.0), "reversed"),
    (lambda: excludes(0.1, 0.3, 0.0, "up"), "side must be one of"),
    (lambda: excludes(float("nan"), 0.3, 0.0), "low must be a number"),
    (lambda: decide("c", "p", 1.0, 0.5, 1.5, null=0.0, unit="pairs", n=0), "n must be the number"),
    (lambda: decide("c", "p", 1.0, 0.5, 1.5, null=0.0, unit="", n=3), "unit must name"),
    (lambda: not_a_test("c", "p", "x", ""), "needs a reason"),
    (lambda: table([]), "non-empty"),
])
def test_bad_rows_fail_with_one_line(call, match):
    with pytest.raises(ValueError, match=match):
        call()
