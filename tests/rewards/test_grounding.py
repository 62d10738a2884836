"""The grounding reward: IoU of the one box, or (GIoU + 1) / 2."""

import pytest

from visual_rft.data.types import Box, GroundingTarget
from visual_rft.rewards import grounding_giou_reward, grounding_reward

TRUTH = GroundingTarget(Box(0, 0, 10, 10))
TRUTH_TEXT = "<answer> (0,0),(10,10) </answer>"


def answer(text):
    return f"<think>The cup on the left.</think><answer>{text}</answer>"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("(0,0),(10,10)", 1.0),
        ("[0, 0, 10, 10]", 1.0),
        ("[{'Position': [0, 0, 10, 10], 'Confidence': 0.8}]", 1.0),
        ("(5,0),(15,10)", 50 / 150),
        ("[0, 0, 5, 5]", 0.25),
        ("\n(0, 0),\n(10, 10)\n", 1.0),
        ("(20,0),(30,10)", 0.0),
    ],
)
def test_iou(text, expected):
    assert grounding_reward(answer(text), TRUTH) == pytest.approx(expected)
    assert grounding_reward(answer(text), TRUTH_TEXT) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("(0,0),(10,10)", 1.0),
        ("(0,0),(5,5)", (0.25 + 1) / 2),  # contained: GIoU = IoU
        ("(20,0),(30,10)", (-1 / 3 + 1) / 2),  # disjoint: IoU 0, hull 300, union 200
    ],
)
def test_giou(text, expected):
    assert grounding_reward(answer(text), TRUTH, giou=True) == pytest.approx(expected)
    assert grounding_giou_reward(answer(text), TRUTH) == pytest.approx(expected)


@pytest.mark.parametrize(
    "c",
    [
        answer("(10,0),(0,10)"),  # x2 < x1
        answer("[[0, 0, 10, 10], [0, 0, 5, 5]]"),  # two boxes
        answer("[NaN, 0, 10, 10]"),
        answer("the cup"),
        answer(""),
        "<think>t</think> (0,0),(10,10)",
        None,
    ],
)
def test_no_valid_box_scores_zero(c):
    assert grounding_reward(c, TRUTH) == 0.0
    assert grounding_giou_reward(c, TRUTH) == 0.0


@pytest.mark.parametrize(
    "s", [None, "<answer>nowhere</answer>", GroundingTarget(Box(5, 5, 5, 9)), GroundingTarget((0, 0, 1, 1))]
)
def test_unreadable_solutions_score_zero(s):
    assert grounding_reward(answer("(0,0),(10,10)"), s) == 0.0


def test_solution_string_forms():
    assert grounding_reward(answer("(0,0),(10,10)"), "[0, 0, 10, 10]") == 1.0
    assert grounding_reward(answer("(0,0),(10,10)"), "<answer>[{'Position': [0, 0, 10, 10]}]</answer>") == 1.0
