"""The reward benchmark runs, and its re-implementation of the paper's code shows the failures we fix."""

import json
import math

import pytest

from visual_rft import rewards


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("reward_speed")


@pytest.fixture(scope="module")
def reference(load_bench):
    return load_bench("reward_reference")


def original(reference, which, content, solution):
    func = (
        reference.original_accuracy_reward_iou
        if which == "iou"
        else reference.original_accuracy_reward_confidence
    )
    return func([[{"role": "assistant", "content": content}]], [solution])[0]


SOLUTION = "<answer>[{'Position': [0, 0, 10, 10], 'Confidence': 1}]</answer>"


def test_the_original_turns_nan_into_a_nan_reward(reference):
    c = "<think>t</think><answer>[{'Position': [0, 0, 10, 10], 'Confidence': NaN}]</answer>"
    assert math.isnan(original(reference, "confidence", c, SOLUTION))
    assert rewards.confidence_reward(c, SOLUTION) == 0.0  # the prediction is invalid, so there is none


def test_the_original_rewards_confidences_outside_0_1(reference):
    miss = "<think>t</think><answer>[{'Position': [50, 50, 60, 60], 'Confidence': -3}]</answer>"
    assert original(reference, "confidence", miss, SOLUTION) == 1.0  # 1 - (-3) = 4, clipped to 1
    assert rewards.confidence_reward(miss, SOLUTION) == 0.0


def test_the_original_gives_zero_to_a_right_empty_answer(reference):
    for answer in ("[]", "No Objects"):
        c = f"<think>t</think><answer>{answer}</answer>"
        assert original(reference, "iou", c, "<answer>[]</answer>") == 0.0
        assert rewards.iou_reward(c, "<answer>[]</answer>") == 1.0


def test_the_original_scores_zero_for_a_multi_line_answer(reference):
    c = "<think>t</think><answer>\n[{'Position': [0, 0, 10, 10], 'Confidence': 0.9}]\n</answer>"
    assert original(reference, "iou", c, SOLUTION) == 0.0
    assert original(reference, "iou", c.replace("\n", ""), SOLUTION) == 1.0
    assert rewards.iou_reward(c, SOLUTION) == 1.0


def test_ours_agrees_with_the_original_on_well_formed_single_line_answers(bench, reference):
    completions, solutions = bench.make_workload(30, 4, seed=1)
    for c, s in zip(completions, solutions):
        if "\n" in c.split("<answer>", 1)[1]:
            continue
        assert rewards.iou_reward(c, s) == pytest.approx(original(reference, "iou", c, s), abs=1e-12)
        assert rewards.confidence_reward(c, s) == pytest.approx(
            original(reference, "confidence", c, s), abs=1e-12
        )


def test_the_benchmark_writes_its_json(bench, tmp_path):
    out = tmp_path / "speed.json"
    result = bench.main(["--prompts", "5", "--group", "2", "--repeats", "1", "--no-pin", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written["rows"] == result["rows"]
    names = [row["name"] for row in written["rows"]]
    assert names[0] == "ours: iou + confidence + format"
    assert "original: iou + confidence + format" in names
    assert all(row["completions_per_s"] > 0 for row in written["rows"])
