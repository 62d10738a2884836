"""The IoU and confidence rewards, with hand-computed values."""

import math

import pytest

from visual_rft.data.types import Box, DetectionTarget
from visual_rft.rewards import confidence_reward, iou_reward
from visual_rft.rewards.detection import outcome, truth_boxes

A = [0, 0, 10, 10]
B = [20, 20, 30, 30]


def completion(*objects, think="<think>I see them.</think>"):
    """A well-formed completion answering the given (box, confidence) pairs in the paper's format."""
    answer = str([{"Position": box, "Confidence": c} for box, c in objects])
    return f"{think}<answer>{answer}</answer>"


def solution(*boxes):
    return "<answer>" + str([{"Position": box, "Confidence": 1} for box in boxes]) + "</answer>"


def target(*boxes):
    return DetectionTarget(boxes=tuple(Box(*b) for b in boxes), category="cat")


def both(c, s, **kwargs):
    return iou_reward(c, s, **kwargs), confidence_reward(c, s, **kwargs)


def test_a_perfect_answer():
    c = completion((A, 0.9), (B, 0.8))
    assert both(c, solution(A, B)) == (1.0, pytest.approx(0.85))
    assert both(c, target(A, B)) == (1.0, pytest.approx(0.85))


def test_an_extra_prediction_is_penalised_by_the_denominator_and_its_confidence():
    c = completion((A, 0.9), ([50, 50, 60, 60], 0.4))
    # IoU: 1.0 / max(1 truth, 2 predictions); confidence: (0.9 + (1 - 0.4)) / 2
    assert both(c, solution(A)) == (0.5, pytest.approx(0.75))


def test_a_missed_box_is_penalised_by_the_denominator():
    assert both(completion((A, 0.7)), solution(A, B)) == (0.5, pytest.approx(0.7))


def test_a_loose_box_is_not_matched():
    loose = [5, 0, 15, 10]  # IoU 1/3
    assert both(completion((loose, 0.3)), solution(A)) == (0.0, pytest.approx(0.7))
    assert iou_reward(completion((loose, 0.3)), solution(A), iou_threshold=0.3) == pytest.approx(1 / 3)


def test_a_matched_box_adds_its_iou():
    close = [0, 0, 10, 8]  # IoU 0.8
    assert both(completion((close, 0.6), (B, 1.0)), solution(A, B)) == (
        pytest.approx(0.9),
        pytest.approx(0.8),
    )


def test_iou_of_exactly_the_threshold_is_not_a_match():
    assert iou_reward(completion(([0, 0, 10, 5], 1.0)), solution(A)) == 0.0


def test_the_most_confident_prediction_claims_the_box_first():
    close = [0, 0, 10, 8]  # IoU 0.8
    # the exact box is less confident: the loose one takes A, the exact one is unmatched
    c = completion((A, 0.5), (close, 0.9))
    assert both(c, solution(A)) == (pytest.approx(0.4), pytest.approx((0.9 + 0.5) / 2))


def test_duplicate_boxes_count_once():
    c = completion((A, 0.5), (A, 0.9), (A, 0.1))
    assert both(c, solution(A)) == (1.0, 0.9)


def test_empty_truth_and_empty_answer_scores_one():
    for answer in ("No Objects", "no objects.", "[]"):
        c = f"<think>none</think><answer>{answer}</answer>"
        assert both(c, "<answer>[]</answer>") == (1.0, 1.0)
        assert both(c, "<answer>No Objects</answer>") == (1.0, 1.0)
        assert both(c, target()) == (1.0, 1.0)


def test_empty_truth_and_a_prediction():
    c = completion((A, 0.3))
    assert both(c, target()) == (0.0, pytest.approx(0.7))  # confidence: unmatched, so 1 - c


def test_empty_truth_and_only_invalid_predictions_scores_zero():
    c = completion(([10, 10, 0, 0], 0.1))
    assert both(c, target()) == (0.0, 0.0)


def test_truth_present_and_empty_answer_scores_zero():
    c = "<think>none</think><answer>No Objects</answer>"
    assert both(c, target(A)) == (0.0, 0.0)


def test_nan_in_a_box_is_dropped_not_propagated():
    # The original code returns NaN here (json.loads reads NaN and the IoU turns NaN).
    c = "<think>t</think><answer>[{'Position': [NaN, 0, 10, 10], 'Confidence': 0.9}]</answer>"
    assert both(c, solution(A)) == (0.0, 0.0)
    c = "<think>t</think><answer>[{'Position': [NaN, 0, 10, 10], 'Confidence': 0.9}, {'Position': [0, 0, 10, 10], 'Confidence': 0.8}]</answer>"
    assert both(c, solution(A)) == (1.0, 0.8)
    c = "<think>t</think><answer>[{'Position': [0, 0, 10, 10], 'Confidence': NaN}]</answer>"
    assert both(c, solution(A)) == (0.0, 0.0)


def test_an_answer_spread_over_several_lines():
    # The original code scores 0 for any answer with a line break inside the answer tags.
    c = "<think>t</think>\n<answer>\n[\n  {'Position': [0, 0, 10, 10], 'Confidence': 0.9},\n  {'Position': [20, 20, 30, 30], 'Confidence': 0.8}\n]\n</answer>"
    assert both(c, solution(A, B)) == (1.0, pytest.approx(0.85))


def test_json_and_other_key_spellings():
    c = '<think>t</think><answer>[{"bbox_2d": [0, 0, 10, 10], "label": "cat"}]</answer>'
    assert both(c, solution(A)) == (1.0, 1.0)  # a missing confidence reads as 1.0


@pytest.mark.parametrize(
    "c",
    [
        "<think>t</think><answer>[{'Position': [0, 0, 10, 10], 'Confidence': 0.9}]",  # unclosed tag
        "[{'Position': [0, 0, 10, 10], 'Confidence': 0.9}]",  # no tags
        "<think>t</think><answer>a cat at the top left</answer>",
        "<think>t</think><answer></answer>",
        "",
        None,
        42,
        [{"role": "assistant", "content": "x"}],
    ],
)
def test_no_readable_answer_scores_zero(c):
    assert both(c, solution(A)) == (0.0, 0.0)
    assert both(c, target()) == (0.0, 0.0)  # even when the truth is empty


@pytest.mark.parametrize(
    "s", [None, 3, "<answer>garbage</answer>", "<answer>[1, 2</answer>", Box(0, 0, 1, 1)]
)
def test_an_unreadable_solution_scores_zero(s):
    assert both(completion((A, 1.0)), s) == (0.0, 0.0)


def test_solution_string_without_tags():
    assert iou_reward(completion((A, 1.0)), str([{"Position": A, "Confidence": 1}])) == 1.0


def test_invalid_truth_boxes_are_ignored_and_identical_ones_count_once():
    assert truth_boxes(target(A, [5, 5, 5, 9], A)) == ((0.0, 0.0, 10.0, 10.0),)
    assert truth_boxes(DetectionTarget(boxes=(Box(0, 0, math.nan, 1),))) == ()
    assert truth_boxes(DetectionTarget(boxes=[Box(0, 0, 1, 1), "junk"])) == ((0.0, 0.0, 1.0, 1.0),)
    assert truth_boxes(DetectionTarget(boxes=None)) is None


def test_unhashable_targets_are_scored_without_the_cache():
    s = DetectionTarget(boxes=[Box(*A)])  # a list: the target cannot be hashed
    assert both(completion((A, 0.9)), s) == (1.0, 0.9)


def test_outcome_is_shared_by_both_rewards():
    c, s = completion((A, 0.9)), solution(A)
    assert outcome(c, s) is outcome(c, s)
