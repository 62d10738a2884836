"""Box validity, IoU, GIoU and the greedy matching, with hand-computed values."""

import math
from fractions import Fraction

import numpy as np
import pytest

from visual_rft.data.boxes import as_box, giou, iou, is_number, match

A = (0.0, 0.0, 10.0, 10.0)


@pytest.mark.parametrize("value", [0, 1.5, -3, np.float64(2.0), np.int64(3), Fraction(1, 2)])
def test_numbers(value):
    assert is_number(value)


@pytest.mark.parametrize("value", [True, False, None, "1", [1], 1j])
def test_not_numbers(value):
    assert not is_number(value)


def test_as_box():
    assert as_box([0, 0, 10, 10]) == A
    assert as_box((np.int64(0), 0, 10.0, Fraction(10))) == A
    for bad in ([0, 0, 10], [10, 0, 0, 10], [0, 0, 10, 0], [0, 0, math.nan, 10], [-math.inf, 0, 10, 10]):
        assert as_box(bad) is None
    assert as_box([0, 0, 10**400, 10]) is None  # too large for a float
    assert as_box("0, 0, 10, 10") is None
    assert as_box({"x1": 0}) is None


@pytest.mark.parametrize(
    "b, expected",
    [
        (A, 1.0),
        ((5.0, 0.0, 15.0, 10.0), 50 / 150),  # half overlap
        ((0.0, 0.0, 5.0, 5.0), 25 / 100),  # contained
        ((10.0, 0.0, 20.0, 10.0), 0.0),  # touching edges
        ((20.0, 20.0, 30.0, 30.0), 0.0),  # disjoint
        ((5.0, 5.0, 15.0, 15.0), 25 / 175),
    ],
)
def test_iou(b, expected):
    assert iou(A, b) == pytest.approx(expected)
    assert iou(b, A) == pytest.approx(expected)


def test_iou_of_extreme_boxes_stays_finite():
    huge = (-1e300, -1e300, 1e300, 1e300)
    assert iou(huge, huge) == 1.0
    assert iou(huge, A) == 0.0  # areas overflow: counted as no overlap
    tiny = (0.0, 0.0, 1e-200, 1e-200)
    assert iou(tiny, tiny) == 1.0
    assert iou(tiny, (0.0, 0.0, 2e-200, 1e-200)) == 0.0  # areas underflow


@pytest.mark.parametrize(
    "b, expected",
    [
        (A, 1.0),
        ((0.0, 0.0, 5.0, 5.0), 0.25),  # contained: GIoU = IoU
        ((20.0, 0.0, 30.0, 10.0), 0.0 - (300 - 200) / 300),  # disjoint, a gap of one width
        ((5.0, 0.0, 15.0, 10.0), 50 / 150),  # the hull is the union
    ],
)
def test_giou(b, expected):
    assert giou(A, b) == pytest.approx(expected)


def test_giou_of_extreme_boxes():
    assert giou((-1e300, -1e300, 1e300, 1e300), A) == -1.0
    assert -1.0 <= giou((0.0, 0.0, 1.0, 1.0), (1e6, 1e6, 1e6 + 1, 1e6 + 1)) < -0.99


def test_match_gives_each_truth_to_the_first_prediction_that_claims_it():
    truths = (A, (20.0, 20.0, 30.0, 30.0))
    predictions = ((0.0, 0.0, 10.0, 9.0), (0.0, 0.0, 10.0, 10.0), (20.0, 20.0, 30.0, 30.0))
    # the first prediction takes A (IoU 0.9); the second, identical to A, finds it taken
    assert match(predictions, truths) == [pytest.approx(0.9), 0.0, 1.0]


def test_match_threshold_is_strict():
    half = (0.0, 0.0, 10.0, 5.0)  # IoU with A is exactly 0.5
    assert match((half,), (A,)) == [0.0]
    assert match((half,), (A,), threshold=0.49) == [0.5]


def test_a_prediction_below_the_threshold_does_not_use_up_the_truth():
    loose = (5.0, 0.0, 15.0, 10.0)  # IoU 1/3
    assert match((loose, A), (A,)) == [0.0, 1.0]


def test_match_takes_the_best_remaining_truth():
    truths = ((0.0, 0.0, 10.0, 8.0), A)
    assert match((A,), truths) == [1.0]
    assert match((A, A), truths) == [1.0, pytest.approx(0.8)]


def test_match_with_nothing():
    assert match((), (A,)) == []
    assert match((A,), ()) == [0.0]
