"""The shared input checks: TypeError for a wrong type, ValueError for a wrong value, one line naming the argument."""

import numpy as np
import pytest

from rewardscope import _checks
from rewardscope._checks import ArgumentTypeError


def test_count_refuses_bools_and_floats_as_types_and_small_ints_as_values():
    assert _checks.count("k", 2, 2) == 2 and _checks.count("seed", np.int64(0), 0) == 0  # numpy ints are counts
    assert _checks.count("n", None, optional=True) is None
    for bad in (True, 2.0, "3"):
        with pytest.raises(TypeError, match=r"k must be an int >= 2") as err:
            _checks.count("k", bad, 2)
        assert isinstance(err.value, ValueError)  # callers that caught ValueError still catch it
    with pytest.raises(ValueError, match=r"k must be an int >= 2 \(pairs need two\), got 1") as err:
        _checks.count("k", 1, 2, why="pairs need two")
    assert not isinstance(err.value, TypeError)
    with pytest.raises(ValueError, match="n must be an int >= 1, got None"):
        _checks.count("n", None)


def test_texts_refuses_one_string_an_empty_list_non_strings_and_blanks():
    assert _checks.texts("prompts", ("a", "b")) == ["a", "b"]
    with pytest.raises(ArgumentTypeError, match="prompts must be a non-empty sequence of strings, got str"):
        _checks.texts("prompts", "a question")
    with pytest.raises(ValueError, match="got an empty one"):
        _checks.texts("prompts", [])
    with pytest.raises(TypeError, match=r"prompts\[1\] is NoneType, expected str"):
        _checks.texts("prompts", ["fine", None])
    assert _checks.texts("prompts", ["fine", " "]) == ["fine", " "]
    with pytest.raises(ValueError, match=r"prompts\[1\] is blank"):
        _checks.texts("prompts", ["fine", " "], nonblank=True)
