"""Answer parsing: tags, detection lists, grounding boxes, class names."""

import pytest

from visual_rft.data.answer import (
    DetectionAnswer,
    Prediction,
    answer_body,
    box_spans,
    class_answer,
    detection_answer,
    extract_answer,
    grounding_answer,
    normalize_class,
    parse_box,
    parse_detection,
    readable,
)
from visual_rft.data.types import Box, DetectionTarget, GroundingTarget

BOX = (10.0, 20.0, 30.0, 40.0)


# ---- the answer tags


def test_extract_answer_takes_the_first_closed_pair_across_lines():
    text = "<think>a</think><answer>\nfirst\nline</answer> <answer>second</answer>"
    assert extract_answer(text) == "\nfirst\nline"


def test_extract_answer_needs_a_closing_tag():
    assert extract_answer("<think>x</think><answer>[1, 2") is None
    assert extract_answer("</answer> before <answer>") is None
    assert extract_answer("no tags at all") is None


@pytest.mark.parametrize("value", [None, 3, b"<answer>x</answer>", ["<answer>x</answer>"]])
def test_extract_answer_of_a_non_string_is_none(value):
    assert extract_answer(value) is None


def test_extract_answer_can_be_empty():
    assert extract_answer("<answer></answer>") == ""


# ---- detection answers


def test_python_literal_and_json_read_the_same():
    single = "[{'Position': [10, 20, 30, 40], 'Confidence': 0.5}]"
    double = '[{"Position": [10, 20, 30, 40], "Confidence": 0.5}]'
    expected = DetectionAnswer(True, (Prediction(BOX, 0.5),), 1)
    assert parse_detection(single) == expected
    assert parse_detection(double) == expected


def test_answer_spread_over_several_lines():
    text = "\n[\n  {'Position': [10, 20,\n 30, 40],\n 'Confidence': 0.5}\n]\n"
    assert parse_detection(text).predictions == (Prediction(BOX, 0.5),)


def test_single_quoted_answer_with_an_apostrophe_falls_back_to_literal_eval():
    text = "[{'Position': [10, 20, 30, 40], 'Confidence': 0.5, 'label': \"men's shoe\"}]"
    assert parse_detection(text).predictions == (Prediction(BOX, 0.5),)


@pytest.mark.parametrize(
    "text",
    [
        "[{'position': [10, 20, 30, 40], 'confidence': 0.5}]",
        "[{'BBOX': [10, 20, 30, 40], 'Score': 0.5}]",
        "[{'box': [10, 20, 30, 40], 'score': 0.5}]",
        '[{"bbox_2d": [10, 20, 30, 40], "label": "cat", "score": 0.5}]',
    ],
)
def test_keys_are_matched_without_regard_to_case(text):
    assert parse_detection(text).predictions == (Prediction(BOX, 0.5),)


@pytest.mark.parametrize("text", ["No Objects", "no objects", " NO OBJECTS. ", "[]", " [ ] "])
def test_empty_answers(text):
    answer = parse_detection(text)
    assert answer == DetectionAnswer(True, (), 0)
    assert answer.empty


def test_a_single_object_without_brackets_is_a_list_of_one():
    assert parse_detection("{'Position': [10, 20, 30, 40], 'Confidence': 0.5}").predictions == (
        Prediction(BOX, 0.5),
    )


def test_a_missing_confidence_reads_as_one():
    assert parse_detection('[{"bbox_2d": [10, 20, 30, 40], "label": "cat"}]').predictions == (
        Prediction(BOX, 1.0),
    )


@pytest.mark.parametrize(
    "obj",
    [
        "{'Position': [NaN, 20, 30, 40], 'Confidence': 0.5}",  # non-finite (JSON's NaN)
        "{'Position': [10, 20, Infinity, 40], 'Confidence': 0.5}",
        "{'Position': [10, 20, 1e999, 40], 'Confidence': 0.5}",  # overflows to inf
        "{'Position': [30, 20, 10, 40], 'Confidence': 0.5}",  # x2 < x1
        "{'Position': [10, 20, 10, 40], 'Confidence': 0.5}",  # x2 == x1
        "{'Position': [10, 40, 30, 40], 'Confidence': 0.5}",  # y2 == y1
        "{'Position': [10, 20, 30], 'Confidence': 0.5}",  # three numbers
        "{'Position': [10, 20, 30, 40, 50], 'Confidence': 0.5}",
        "{'Position': ['10', 20, 30, 40], 'Confidence': 0.5}",  # a string
        "{'Position': [True, 20, 30, 40], 'Confidence': 0.5}",  # a bool is not a number
        "{'Position': [10, 20, 30, 40], 'Confidence': 1.5}",  # confidence outside [0, 1]
        "{'Position': [10, 20, 30, 40], 'Confidence': -0.1}",
        "{'Position': [10, 20, 30, 40], 'Confidence': NaN}",
        "{'Position': [10, 20, 30, 40], 'Confidence': '0.5'}",
        "{'Position': [10, 20, 30, 40], 'bbox': [10, 20, 30, 40]}",  # two box keys
        "{'Position': [10, 20, 30, 40], 'Confidence': 0.5, 'score': 0.5}",  # two confidence keys
        "{'Confidence': 0.5}",  # no box
        "[10, 20, 30, 40]",  # not an object
    ],
)
def test_invalid_predictions_are_dropped_but_the_answer_stays_readable(obj):
    answer = parse_detection(f"[{obj}, {{'Position': [1, 2, 3, 4], 'Confidence': 0.5}}]")
    assert answer.readable
    assert answer.written == 2
    assert answer.predictions == (Prediction((1.0, 2.0, 3.0, 4.0), 0.5),)


def test_predictions_are_ordered_most_confident_first_ties_keep_written_order():
    text = "[{'box': [0, 0, 1, 1], 'score': 0.2}, {'box': [0, 0, 2, 2], 'score': 0.9}, {'box': [0, 0, 3, 3], 'score': 0.2}]"
    boxes = [p.box for p in parse_detection(text).predictions]
    assert boxes == [(0, 0, 2, 2), (0, 0, 1, 1), (0, 0, 3, 3)]


def test_identical_boxes_count_once_keeping_the_most_confident():
    text = "[{'box': [0, 0, 1, 1], 'score': 0.2}, {'box': [0.0, 0, 1, 1.0], 'score': 0.7}]"
    answer = parse_detection(text)
    assert answer.predictions == (Prediction((0.0, 0.0, 1.0, 1.0), 0.7),)
    assert answer.written == 2


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "I see two cats",
        "[{'Position': [1, 2, 3, 4], 'Confidence': 0.5}",  # unclosed
        "[{'Position': [nan, 2, 3, 4]}]",  # a Python name, not a literal
        "[{'Position': [float('nan'), 2, 3, 4]}]",
        "__import__('os').system('echo owned')",  # never eval
        "42",
        "'a string'",
        "None",
        "[" * 5000 + "]" * 5000,  # absurd nesting
    ],
)
def test_unreadable_detection_answers(text):
    answer = parse_detection(text)
    assert not answer.readable
    assert answer.predictions == ()


def test_detection_answer_of_a_completion():
    completion = "<think>two</think><answer>[{'Position': [10, 20, 30, 40], 'Confidence': 0.5}]</answer>"
    assert detection_answer(completion).predictions == (Prediction(BOX, 0.5),)
    assert not detection_answer("[{'Position': [10, 20, 30, 40], 'Confidence': 0.5}]").readable  # no tags
    assert not detection_answer(None).readable


# ---- grounding answers


@pytest.mark.parametrize(
    "text",
    [
        "(10,20),(30,40)",
        " (10, 20), (30, 40) ",
        "((10,20),(30,40))",
        "[10, 20, 30, 40]",
        "[[10, 20, 30, 40]]",
        "[{'Position': [10, 20, 30, 40], 'Confidence': 0.9}]",
        '{"bbox_2d": [10, 20, 30, 40]}',
        "(10.0,20.0),\n(30.0,40.0)",
    ],
)
def test_grounding_answer_forms(text):
    assert parse_box(text) == BOX


@pytest.mark.parametrize(
    "text",
    [
        "(30,20),(10,40)",  # x2 < x1
        "[10, 20, 30]",
        "[[10, 20, 30, 40], [50, 60, 70, 80]]",  # two boxes are not one
        "[{'Position': [10, 20, 30, 40]}, {'Position': [50, 60, 70, 80]}]",
        "[{'Position': [10, 20, 30, 40], 'Confidence': 2}]",
        "(10,20)",
        "the box is at the top",
        "",
        "[" * 3000 + "1, 2, 3, 4" + "]" * 3000,
    ],
)
def test_grounding_answers_that_are_not_one_valid_box(text):
    assert parse_box(text) is None


def test_grounding_answer_of_a_completion():
    assert grounding_answer("<think>t</think><answer> (10,20),(30,40) </answer>") == BOX
    assert grounding_answer("<think>t</think> (10,20),(30,40)") is None
    assert grounding_answer(12) is None


# ---- class names


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rose", "rose"),
        ("  Rose.  ", "rose"),
        ('"Rose"', "rose"),
        ("'rose'.", "rose"),
        ('"rose."', "rose"),
        ("Bird_of-Paradise", "bird of paradise"),
        ("bird  __ of\n paradise", "bird of paradise"),
        ("Ford F-150 Regular Cab 2012", "ford f 150 regular cab 2012"),
        ("", ""),
        ("  ''  ", ""),
    ],
)
def test_normalize_class(text, expected):
    assert normalize_class(text) == expected


def test_class_answer():
    assert class_answer("<think>t</think><answer>\n Rose \n</answer>") == "rose"
    assert class_answer("<think>t</think><answer>  </answer>") is None
    assert class_answer("<think>t</think>rose") is None


def test_readable_by_kind():
    detection = "<answer>[{'Position': [1, 2, 3, 4], 'Confidence': 1}]</answer>"
    assert readable(detection, "detection")
    assert readable(detection, "grounding")
    assert readable(detection, "classification")  # any non-empty text names a class
    assert not readable("<answer>No Objects</answer>", "grounding")
    assert readable("<answer>No Objects</answer>", "detection")
    assert not readable("<answer></answer>", "classification")
    with pytest.raises(ValueError, match="unknown answer kind"):
        readable("x", "segmentation")


def test_text_the_compiler_warns_about_is_unreadable_without_a_warning():
    import warnings

    from visual_rft.data.answer import load_literal

    # "1st" is an invalid decimal literal: Python warns (SyntaxWarning) before it raises
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_literal("[(1st, 2)]") is load_literal("not a literal")


def test_box_spans_are_where_answer_body_wrote_each_box():
    det = answer_body(DetectionTarget(boxes=(Box(1, 2, 30, 40), Box(5, 6, 7, 8)), category="c"))
    assert [det[a:b] for a, b in box_spans(det)] == ["[1, 2, 30, 40]", "[5, 6, 7, 8]"]
    g = answer_body(GroundingTarget(box=Box(3, 4, 50, 60)))
    assert [g[a:b] for a, b in box_spans(g)] == ["(3,4),(50,60)"]
    assert box_spans(answer_body(DetectionTarget(boxes=(), category="c"))) == []
