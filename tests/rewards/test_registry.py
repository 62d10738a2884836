"""The registry: names, task defaults, user rewards from strings, batch scoring."""

import pickle
import subprocess
import sys

import pytest

from visual_rft import rewards
from visual_rft.data.types import ClassTarget

GOOD = "<think>t</think><answer>rose</answer>"


def test_public_surface():
    for name in (
        "format_reward",
        "iou_reward",
        "confidence_reward",
        "cls_reward",
        "grounding_reward",
        "get",
        "names",
    ):
        assert callable(getattr(rewards, name))


def test_names_and_get():
    assert rewards.names() == [
        "format",
        "iou",
        "confidence",
        "cls",
        "cls_lenient",
        "cls_words",
        "grounding",
        "grounding_giou",
    ]
    assert rewards.get("iou") is rewards.iou_reward
    assert rewards.get("cls_lenient") is rewards.cls_lenient_reward
    assert rewards.get("grounding_giou") is rewards.grounding_giou_reward
    for name in rewards.names():
        reward = rewards.get(name)
        assert reward.__name__.startswith(name)  # the name trainers log
        assert pickle.loads(pickle.dumps(reward)) is reward
        assert reward(GOOD, "<answer>rose</answer>") in (0.0, 1.0)


def test_every_reward_takes_completion_and_solution():
    assert rewards.get("format")(GOOD, None) == 1.0
    assert rewards.get("cls")(GOOD, ClassTarget("rose")) == 1.0


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown reward 'accuracy'.*registered rewards: format, iou"):
        rewards.get("accuracy")
    with pytest.raises(ValueError, match="must be a string"):
        rewards.get(None)


def test_user_reward_from_a_string():
    assert rewards.get("visual_rft.rewards.format:format_reward") is rewards.format_reward
    assert rewards.get("json:dumps") is __import__("json").dumps


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "no_such_package.rewards:mine",
            "reward 'no_such_package.rewards:mine': cannot import module 'no_such_package.rewards'",
        ),
        (
            "visual_rft.rewards.format:nothing",
            "reward 'visual_rft.rewards.format:nothing': module 'visual_rft.rewards.format' has no attribute 'nothing'",
        ),
        (
            "visual_rft.data.answer:ANSWER_OPEN",
            "reward 'visual_rft.data.answer:ANSWER_OPEN': 'ANSWER_OPEN' is not callable",
        ),
        ("visual_rft.rewards.format:", "expected the form 'package.module:function'"),
        (":format_reward", "expected the form 'package.module:function'"),
        ("a:b:c", "expected the form 'package.module:function'"),
    ],
)
def test_user_reward_errors_name_the_string(spec, message):
    with pytest.raises(ValueError) as error:
        rewards.get(spec)
    assert message in str(error.value)


def test_task_defaults_follow_the_paper():
    assert rewards.task_defaults("detection") == {"iou": 1.0, "confidence": 1.0, "format": 1.0}
    assert rewards.task_defaults("classification") == {"cls": 1.0, "format": 1.0}
    assert rewards.task_defaults("grounding") == {"grounding": 1.0, "format": 1.0}
    weights = rewards.task_defaults("grounding")
    weights["format"] = 0.5
    assert rewards.task_defaults("grounding")["format"] == 1.0  # a fresh dict each time
    with pytest.raises(ValueError, match="unknown task 'segmentation'"):
        rewards.task_defaults("segmentation")


def test_score_a_batch():
    completions = [GOOD, "<think>t</think><answer>lily</answer>", "rose"]
    solutions = ["<answer>rose</answer>", ClassTarget("rose"), ClassTarget("rose")]
    totals, per_reward = rewards.score(completions, solutions, {"cls": 2.0, "format": 0.5})
    assert per_reward == {"cls": [1.0, 0.0, 0.0], "format": [1.0, 1.0, 0.0]}
    assert totals == [2.5, 0.5, 0.0]


def test_score_with_a_user_reward_string():
    totals, per_reward = rewards.score([GOOD], [None], {"visual_rft.rewards.format:format_reward": 1.0})
    assert totals == [1.0]
    assert list(per_reward) == ["visual_rft.rewards.format:format_reward"]


def test_score_checks_lengths():
    with pytest.raises(ValueError, match="2 completions but 1 solutions"):
        rewards.score([GOOD, GOOD], [None], {"format": 1.0})


def test_the_rewards_import_no_torch_and_no_training_code():
    code = (
        "import sys, visual_rft.rewards; "
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'trl', 'transformers')) "
        "or m.split('.')[:2] in (['visual_rft', 'models'], ['visual_rft', 'rl'], ['visual_rft', 'sft'], "
        "['visual_rft', 'eval'])]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
