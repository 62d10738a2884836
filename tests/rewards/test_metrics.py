"""Per-reward metrics for the log."""

import pytest

from visual_rft import rewards
from visual_rft.rewards.metrics import parse_fail_share

DETECTIONS = [
    "<think>t</think><answer>[{'Position': [0, 0, 10, 10], 'Confidence': 1}]</answer>",
    "<think>t</think><answer>No Objects</answer>",
    "<think>t</think><answer>[{'Position': [10, 0, 0, 10], 'Confidence': 1}]</answer>",  # readable, invalid box
    "<think>t</think><answer>a cat</answer>",
]
SOLUTION = "<answer>[{'Position': [0, 0, 10, 10], 'Confidence': 1}]</answer>"


def test_reward_metrics():
    totals, values = rewards.score(DETECTIONS, [SOLUTION] * 4, rewards.task_defaults("detection"))
    metrics = rewards.reward_metrics(DETECTIONS, values)
    assert metrics == {
        "reward/iou/mean": 0.25,
        "reward/iou/parse_fail": 0.25,
        "reward/confidence/mean": 0.25,
        "reward/confidence/parse_fail": 0.25,
        "reward/format/mean": 1.0,
    }


def test_prefix_and_user_rewards():
    metrics = rewards.reward_metrics(["x", "y"], {"mine": [1.0, 0.0]}, prefix="train/reward")
    assert metrics == {"train/reward/mine/mean": 0.5}


def test_parse_fail_by_kind():
    completions = ["<answer>rose</answer>", "<answer> </answer>", "rose", "<answer>[0, 0, 1, 1]</answer>"]
    assert parse_fail_share(completions, "classification") == pytest.approx(2 / 4)
    assert parse_fail_share(completions, "grounding") == pytest.approx(3 / 4)
    # only "[0, 0, 1, 1]" reads as a detection list (of four invalid objects)
    assert parse_fail_share(completions, "detection") == pytest.approx(3 / 4)
    assert parse_fail_share([], "detection") == 0.0


def test_empty_batch():
    assert rewards.reward_metrics([], {"iou": []}) == {"reward/iou/mean": 0.0, "reward/iou/parse_fail": 0.0}
