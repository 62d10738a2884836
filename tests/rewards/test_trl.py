"""The TRL adapter, called exactly as trl.GRPOTrainer._calculate_rewards calls reward functions (trl 1.16)."""

import pickle

import pytest

from visual_rft import rewards
from visual_rft.rewards.trl import completion_text

trl_utils = pytest.importorskip("trl.trainer.utils")

GOOD = "<think>two cats</think><answer>[{'Position': [0, 0, 10, 10], 'Confidence': 0.9}]</answer>"
LOOSE = "<think>one</think><answer>[{'Position': [5, 0, 15, 10], 'Confidence': 0.2}]</answer>"
BAD = "there is a cat"
SOLUTION = "<answer>[{'Position': [0, 0, 10, 10], 'Confidence': 1}]</answer>"


class FakeTrainer:
    """The parts of GRPOTrainer that take part in calling a reward function."""

    def __init__(self):
        self.metrics = {}
        self.extra = {}

    def log_metric(self, name, value):
        self.metrics.setdefault(name, []).append(value)

    def log_extra(self, column, values):
        self.extra.setdefault(column, []).extend(values)

    def call(self, reward_func, inputs, prompts, completions):
        """Mirror of GRPOTrainer._calculate_rewards for one synchronous reward function."""
        keys = [key for key in inputs[0] if key not in ["prompt", "completion", "completion_ids"]]
        reward_kwargs = {key: [example[key] for example in inputs] for key in keys}
        reward_kwargs["trainer_state"] = object()
        reward_kwargs["log_extra"] = self.log_extra
        reward_kwargs["log_metric"] = self.log_metric
        completion_ids = [[1, 2, 3] for _ in completions]
        output = reward_func(
            prompts=prompts, completions=completions, completion_ids=completion_ids, **reward_kwargs
        )
        output = [r if r is not None else float("nan") for r in output]
        assert len(output) == len(prompts)
        return output


def inputs_for(prompts):
    return [{"prompt": p, "solution": SOLUTION, "image": None, "problem": "Find the cats."} for p in prompts]


def test_plain_text_completions():
    prompts = ["Find the cats."] * 3
    trainer = FakeTrainer()
    iou = rewards.to_trl("iou")
    assert trainer.call(iou, inputs_for(prompts), prompts, [GOOD, LOOSE, BAD]) == [1.0, 0.0, 0.0]
    assert trainer.metrics == {"rewards/iou/parse_fail": [pytest.approx(1 / 3)]}


def test_conversational_completions():
    prompts = [
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Find the cats."}]}]
    ] * 3
    completions = [[{"role": "assistant", "content": c}] for c in (GOOD, LOOSE, BAD)]
    trainer = FakeTrainer()
    funcs, weights = rewards.trl_rewards(rewards.task_defaults("detection"))
    assert weights == [1.0, 1.0, 1.0]
    values = {f.__name__: trainer.call(f, inputs_for(prompts), prompts, completions) for f in funcs}
    assert values == {
        "iou": [1.0, 0.0, 0.0],
        "confidence": [0.9, pytest.approx(0.8), 0.0],
        "format": [1.0, 1.0, 0.0],
    }
    assert set(trainer.metrics) == {"rewards/iou/parse_fail", "rewards/confidence/parse_fail"}


def test_trl_sees_the_registry_name():
    for name in rewards.names():
        func = rewards.to_trl(name)
        assert trl_utils.get_callable_name(func) == name  # TRL logs rewards/<name>/mean
        assert not trl_utils.is_async_callable(func)
    assert trl_utils.get_callable_name(rewards.to_trl("iou", name="box_iou")) == "box_iou"
    assert trl_utils.get_callable_name(rewards.to_trl(rewards.cls_reward)) == "cls_reward"


def test_the_adapter_pickles():
    func = pickle.loads(pickle.dumps(rewards.to_trl("confidence")))
    assert func.__name__ == "confidence"
    assert func(prompts=["p"], completions=[GOOD], solution=[SOLUTION]) == [0.9]


def test_a_missing_solution_column_is_an_error_for_accuracy_rewards_only():
    with pytest.raises(ValueError, match="needs the ground truth in a dataset column 'solution'"):
        rewards.to_trl("iou")(prompts=["p"], completions=[GOOD], problem=["q"])
    assert rewards.to_trl("format")(prompts=["p"], completions=[GOOD]) == [1.0]


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 completions but 1 values in 'solution'"):
        rewards.to_trl("iou")(prompts=["p", "p"], completions=[GOOD, GOOD], solution=[SOLUTION])


def test_user_function_and_string():
    func = rewards.to_trl("visual_rft.rewards.format:format_reward")
    assert func.__name__ == "visual_rft.rewards.format:format_reward"
    assert func(prompts=["p"], completions=[GOOD]) == [1.0]
    assert rewards.trl_rewards(["cls", "format"])[1] == [1.0, 1.0]


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("plain", "plain"),
        ([{"role": "assistant", "content": "text"}], "text"),
        ({"role": "assistant", "content": "text"}, "text"),
        (
            [
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "a"},
                        {"type": "image"},
                        {"type": "text", "text": "b"},
                    ],
                }
            ],
            "ab",
        ),
        (
            [
                {"role": "assistant", "content": "first"},
                {"role": "tool", "content": "x"},
                {"role": "assistant", "content": "last"},
            ],
            "last",
        ),
        ([{"content": "no role"}], "no role"),
        ([], []),
        ([1, 2], None),
        (None, None),
    ],
)
def test_completion_text(completion, expected):
    assert completion_text(completion) == expected
