"""Fill patterns (visual_rft/world/patterns.py): where an object's second tone goes, fixed to the image grid."""

from itertools import combinations

import numpy as np
import pytest

from visual_rft import world as W


def test_the_digits_patterns_by_hand():
    # which pixels of a 6 x 6 box at (0, 0) take the second tone
    falling = W.fill_pattern("falling", (0, 0, 6, 6)).astype(int)
    assert falling[0].tolist() == [0, 0, 0, 1, 1, 1] and falling[1].tolist() == [
        0,
        0,
        1,
        1,
        1,
        0,
    ]  # (x + y) // 3
    rising = W.fill_pattern("rising", (0, 0, 6, 6)).astype(int)
    assert rising[0].tolist() == [0, 0, 0, 1, 1, 1] and rising[1].tolist() == [
        1,
        0,
        0,
        0,
        1,
        1,
    ]  # (x - y) // 3
    grid = W.fill_pattern("grid", (0, 0, 6, 6)).astype(int)
    assert grid[0].tolist() == [1] * 6 and grid[1].tolist() == [1, 0, 0, 0, 1, 0]  # lines at 0 and 4
    bars = W.fill_pattern("bars", (0, 0, 6, 6)).astype(int)
    assert bars[:, 0].tolist() == [1, 0, 0, 1, 0, 0] and (bars == bars[:, :1]).all()  # rows 0 and 3
    rings = W.fill_pattern("rings", (0, 0, 12, 12))
    assert (
        not rings[6, 6] and rings[6, 3] and rings[3, 6] and not rings[6, 0]
    )  # Chebyshev distance 3-5 from (6, 6)


def test_the_ten_digit_patterns_differ_and_an_unknown_name_is_refused():
    assert len(W.DIGIT_FILLS) == 10 == len(set(W.DIGIT_FILLS))
    masks = {f: W.fill_pattern(f, (0, 0, 14, 14)) for f in W.DIGIT_FILLS}  # one patch
    for a, b in combinations(W.DIGIT_FILLS, 2):
        assert (masks[a] != masks[b]).sum() >= 14, (a, b)  # every pair tells apart within a 14-px patch
    with pytest.raises(ValueError, match="unknown fill 'stripes'"):
        W.fill_pattern("stripes", (0, 0, 6, 6))
    assert not np.any(masks["solid"])
