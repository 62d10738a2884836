"""The format reward: one thinking block, then one answer block, nothing else."""

import pytest

from visual_rft.rewards import format_reward


@pytest.mark.parametrize(
    "c",
    [
        "<think>reasoning</think><answer>rose</answer>",
        "<think>reasoning</think>\n\n<answer>rose</answer>",
        "  \n<think>line one\nline two</think> <answer>\n[1, 2]\n</answer>\n ",
        "<think></think><answer></answer>",
    ],
)
def test_good_format(c):
    assert format_reward(c) == 1.0
    assert format_reward(c, "any solution") == 1.0


@pytest.mark.parametrize(
    "c",
    [
        "<answer>rose</answer>",  # no thinking
        "<think>reasoning</think>",  # no answer
        "<think>reasoning</think><answer>rose",  # unclosed
        "Sure! <think>reasoning</think><answer>rose</answer>",  # text before
        "<think>reasoning</think><answer>rose</answer> Hope this helps",  # text after
        "<think>reasoning</think> so <answer>rose</answer>",  # text between
        "<think>a</think><answer>rose</answer><answer>lily</answer>",  # two answers
        "<think>a</think><answer>1</answer><think>b</think><answer>2</answer>",
        "<think>a <answer>x</answer></think><answer>rose</answer>",  # a tag inside the thinking
        "<think>a</think><think>b</think><answer>rose</answer>",
        "<Think>a</Think><Answer>rose</Answer>",  # tags are lower case
        "",
        None,
        ["<think>a</think><answer>b</answer>"],
    ],
)
def test_bad_format(c):
    assert format_reward(c) == 0.0
