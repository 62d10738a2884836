"""The classification reward: exact by default, the paper's lenient rule on request."""

import pytest

from visual_rft.data.types import ClassTarget
from visual_rft.rewards import cls_lenient_reward, cls_reward, cls_words_reward


def answer(text):
    return f"<think>It has five petals.</think><answer>{text}</answer>"


@pytest.mark.parametrize(
    "text",
    ["rose", "Rose", "  ROSE  ", "rose.", '"rose"', "'Rose.'", "\nrose\n", "`rose`"],
)
def test_exact_match_after_normalisation(text):
    assert cls_reward(answer(text), "<answer>rose</answer>") == 1.0
    assert cls_reward(answer(text), ClassTarget("Rose")) == 1.0


def test_separators_are_equivalent():
    assert cls_reward(answer("bird of paradise"), ClassTarget("bird_of_paradise")) == 1.0
    assert cls_reward(answer("Bird-of  Paradise"), ClassTarget("bird of paradise")) == 1.0
    ford = ClassTarget("Ford F-150 Regular Cab 2012")
    assert cls_reward(answer("Ford F 150 Regular Cab 2012"), ford) == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "",  # the original code gives 1.0 to an empty answer
        "   ",
        "rose or lily or tulip",  # ... and to a list of guesses containing the class
        "rose, lily",
        "a rose",
        "It is a rose.",
        "roses",
        "ros",
        "lily",
    ],
)
def test_everything_else_scores_zero(text):
    assert cls_reward(answer(text), "<answer>rose</answer>") == 0.0


def test_no_closed_answer_tag_scores_zero():
    assert cls_reward("<think>t</think>rose", ClassTarget("rose")) == 0.0
    assert cls_reward("<think>t</think><answer>rose", ClassTarget("rose")) == 0.0
    assert cls_reward("rose", ClassTarget("rose")) == 0.0


@pytest.mark.parametrize("s", [None, 7, ClassTarget(None), ["rose"]])
def test_unreadable_solutions_score_zero(s):
    assert cls_reward(answer("rose"), s) == 0.0


def test_an_empty_ground_truth_is_never_matched():
    assert cls_reward(answer(""), ClassTarget("")) == 0.0


def test_solution_string_without_tags():
    assert cls_reward(answer("rose"), "rose") == 1.0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rose", 1.0),
        ("Rose", 1.0),
        ("rose or lily or tulip", 1.0),  # the paper's substring rule, reproduced
        ("", 1.0),  # the empty string is inside every class name
        ("ros", 1.0),  # ... and so is any part of it
        ("it is a rose", 1.0),
        ("lily", 0.0),
    ],
)
def test_lenient_reproduces_the_paper(text, expected):
    assert cls_reward(answer(text), "<answer>rose</answer>", match="lenient") == expected
    assert cls_lenient_reward(answer(text), "<answer>rose</answer>") == expected


def test_lenient_removes_spaces_and_underscores():
    assert cls_lenient_reward(answer("Bird of Paradise"), ClassTarget("bird_of_paradise")) == 1.0
    # the paper's rule keeps hyphens
    assert cls_lenient_reward(answer("bird-of-paradise"), ClassTarget("bird_of_paradise")) == 0.0


def test_lenient_still_needs_a_closed_answer_tag():
    assert cls_lenient_reward("<think>t</think> rose", ClassTarget("rose")) == 0.0


def test_unknown_match_mode_is_an_error():
    with pytest.raises(ValueError, match="match must be one of"):
        cls_reward(answer("rose"), ClassTarget("rose"), match="fuzzy")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("dark red circle", 1.0),
        ("Dark-Red  circle.", 1.0),  # the same normalisation as the exact reward
        ("light red circle", 2 / 3),  # right colour and shape, wrong shade
        ("dark blue square", 1 / 3),
        ("red dark circle", 1 / 3),  # word by word, not a bag of words
        ("light blue square", 0.0),
        ("red circle", 0.0),  # fewer words than the name
        ("dark red circle or light red circle", 0.0),  # a list of classes
        ("light dark red green blue circle square", 0.0),  # every attribute word at once
        ("", 0.0),
    ],
)
def test_words_gives_partial_credit_word_by_word(text, expected):
    assert cls_words_reward(answer(text), ClassTarget("dark_red_circle")) == pytest.approx(expected)
    assert cls_words_reward(answer(text), "<answer>dark red circle</answer>") == pytest.approx(expected)


def test_words_needs_a_closed_answer_tag():
    assert cls_words_reward("<think>t</think> dark red circle", ClassTarget("dark red circle")) == 0.0
    assert cls_words_reward(answer("dark red circle"), None) == 0.0
