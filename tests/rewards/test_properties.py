"""Properties over arbitrary input: every reward is total, finite and in range; perfect answers score the
maximum; the order predictions are written in does not matter."""

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from visual_rft import rewards
from visual_rft.data.types import Box, ClassTarget, DetectionTarget, GroundingTarget

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ALL_REWARDS = [rewards.get(name) for name in rewards.names()]

# ---- strategies

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.integers(-10, 2000),
    st.sampled_from([0, 1, 0.5, -0.0, 1e308, -1e308, 5e-324, 10**400]),
)
tokens = st.sampled_from(
    "<think> </think> <answer> </answer> [ ] { } ( ) , : 'Position' \"bbox_2d\" 'Confidence' 'score' 0 10 1.5 -3"
    " 1e999 NaN nan Infinity No Objects rose None True ' \" \\".split()
    + [" ", "\n"]
)
structured_text = st.lists(tokens, max_size=40).map("".join)
any_text = st.one_of(st.text(), structured_text)
python_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def any_box():
    return st.builds(Box, numbers, numbers, numbers, numbers)


targets = st.one_of(
    st.builds(DetectionTarget, st.lists(any_box(), max_size=5).map(tuple)),
    st.builds(ClassTarget, st.one_of(st.text(), st.none())),
    st.builds(GroundingTarget, any_box()),
)


def detection_text(objects, style):
    """A detection answer with arbitrary values, as JSON (NaN allowed) or as a Python literal."""
    return json.dumps(objects) if style == "json" else repr(objects)


detection_objects = st.lists(
    st.fixed_dictionaries(
        {"Position": st.lists(numbers, min_size=3, max_size=5)},
        optional={"Confidence": numbers, "score": numbers, "label": st.text(max_size=5)},
    ),
    max_size=6,
)


def assert_in_range(value):
    assert type(value) is float
    assert math.isfinite(value)
    assert 0.0 <= value <= 1.0


# ---- total, finite, in range


@SETTINGS
@given(completion=any_text, solution=st.one_of(any_text, targets))
def test_arbitrary_text(completion, solution):
    for reward in ALL_REWARDS:
        assert_in_range(reward(completion, solution))
        assert_in_range(reward(f"<think>x</think><answer>{completion}</answer>", solution))


@SETTINGS
@given(completion=python_values, solution=st.one_of(python_values, targets))
def test_arbitrary_objects(completion, solution):
    for reward in ALL_REWARDS:
        assert_in_range(reward(completion, solution))


@SETTINGS
@given(
    objects=detection_objects,
    truth=st.lists(st.lists(numbers, min_size=4, max_size=4), max_size=4),
    style=st.sampled_from(["json", "python"]),
    threshold=st.floats(0, 1),
)
def test_arbitrary_numbers_in_well_formed_answers(objects, truth, style, threshold):
    completion = f"<think>t</think><answer>{detection_text(objects, style)}</answer>"
    solution = "<answer>" + json.dumps([{"Position": b, "Confidence": 1} for b in truth]) + "</answer>"
    target = DetectionTarget(tuple(Box(*b) for b in truth))
    for s in (solution, target):
        assert_in_range(rewards.iou_reward(completion, s, iou_threshold=threshold))
        assert_in_range(rewards.confidence_reward(completion, s, iou_threshold=threshold))
    for reward in ALL_REWARDS:
        assert_in_range(reward(completion, solution))


# ---- perfect answers score the maximum

coordinate = st.integers(-1000, 5000)
size = st.integers(1, 2000)
valid_boxes = st.builds(lambda x, y, w, h: [x, y, x + w, y + h], coordinate, coordinate, size, size)
float_boxes = st.builds(
    lambda x, y, w, h: [x, y, x + w, y + h],
    st.floats(-1e6, 1e6),
    st.floats(-1e6, 1e6),
    st.floats(1e-3, 1e6),
    st.floats(1e-3, 1e6),
).filter(lambda b: b[2] > b[0] and b[3] > b[1])


@SETTINGS
@given(truth=st.lists(st.one_of(valid_boxes, float_boxes), max_size=10), multi_line=st.booleans())
def test_a_perfect_detection_answer_scores_one(truth, multi_line):
    objects = [{"Position": b, "Confidence": 1} for b in truth]
    answer = (json.dumps(objects, indent=2) if multi_line else str(objects)) if truth else "No Objects"
    completion = f"<think>I see {len(truth)}.</think>\n<answer>{answer}</answer>"
    solution = "<answer>" + str(objects) + "</answer>"
    target = DetectionTarget(tuple(Box(*b) for b in truth))
    for s in (solution, target):
        assert rewards.iou_reward(completion, s) == 1.0
        assert rewards.confidence_reward(completion, s) == 1.0
    assert rewards.format_reward(completion) == 1.0


@SETTINGS
@given(box=st.one_of(valid_boxes, float_boxes), form=st.sampled_from(["points", "list", "object"]))
def test_a_perfect_grounding_answer_scores_one(box, form):
    x1, y1, x2, y2 = box
    answer = {"points": f"({x1},{y1}),({x2},{y2})", "list": str(box), "object": str([{"bbox_2d": box}])}[form]
    completion = f"<think>there</think><answer>{answer}</answer>"
    for s in (GroundingTarget(Box(*box)), f"<answer> ({x1},{y1}),({x2},{y2}) </answer>"):
        assert rewards.grounding_reward(completion, s) == 1.0
        assert rewards.grounding_giou_reward(completion, s) == 1.0


class_names = st.text(alphabet="abcxyzABCXYZ019 _-.'", min_size=1, max_size=30).filter(
    lambda s: any(ch.isalnum() for ch in s)
)


@SETTINGS
@given(label=class_names)
def test_a_perfect_class_answer_scores_one(label):
    completion = f"<think>it is</think><answer>{label}</answer>"
    for s in (ClassTarget(label), f"<answer>{label}</answer>"):
        assert rewards.cls_reward(completion, s) == 1.0
        assert rewards.cls_lenient_reward(completion, s) == 1.0


@SETTINGS
@given(
    think=st.text().filter(lambda t: "<" not in t),
    answer=st.text().filter(lambda t: "<" not in t),
    space=st.sampled_from(["", " ", "\n", "\n\n  "]),
)
def test_the_right_format_scores_one(think, answer, space):
    assert (
        rewards.format_reward(f"{space}<think>{think}</think>{space}<answer>{answer}</answer>{space}") == 1.0
    )


# ---- the written order of predictions does not matter


@SETTINGS
@given(data=st.data())
def test_permuting_predictions_changes_nothing_when_confidences_differ(data):
    truth = data.draw(st.lists(valid_boxes, max_size=6))
    box_choices = st.one_of(valid_boxes, st.sampled_from(truth)) if truth else valid_boxes
    predictions = data.draw(
        st.lists(
            st.tuples(box_choices, st.floats(0, 1)),
            max_size=8,
            unique_by=lambda p: p[1],
        )
    )
    permuted = data.draw(st.permutations(predictions))

    def completion(preds):
        return (
            "<think>t</think><answer>"
            + str([{"Position": b, "Confidence": c} for b, c in preds])
            + "</answer>"
        )

    solution = DetectionTarget(tuple(Box(*b) for b in truth))
    assert rewards.iou_reward(completion(predictions), solution) == rewards.iou_reward(
        completion(permuted), solution
    )
    assert rewards.confidence_reward(completion(predictions), solution) == rewards.confidence_reward(
        completion(permuted), solution
    )
