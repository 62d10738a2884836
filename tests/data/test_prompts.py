import pytest

from visual_rft.data.answer import answer_text, region_words
from visual_rft.data.coords import CoordFrame
from visual_rft.data.prompts import build_prompt, messages
from visual_rft.data.types import Box, ClassTarget, DetectionTarget, GroundingTarget, Sample

DET = Sample(
    "d",
    ["a.png"],
    "detection",
    "Detect all objects belonging to the category 'dog'.",
    DetectionTarget((Box(10, 20, 50, 60),), "dog"),
    200,
    100,
)


def test_detection_prompt_uses_the_models_convention():
    p1000 = build_prompt(DET, CoordFrame("norm1000", (200, 100)))
    ppix = build_prompt(DET, CoordFrame("resized_pixels", (200, 100), (196, 112)))
    assert "between 0 and 1000, integer" in p1000
    assert "in pixels of the 196x112 image" in ppix
    for p in (p1000, ppix):
        assert p.startswith(DET.problem) and "'No Objects'" in p and "<think>" in p and "<answer>" in p


def test_answers_render_in_the_models_convention():
    frame = CoordFrame("norm1000", (200, 100))
    assert answer_text(DET, frame) == "<answer>[{'Position': [50, 200, 250, 600], 'Confidence': 1}]</answer>"
    empty = Sample("e", ["a.png"], "detection", "q", DetectionTarget((), "cat"))
    assert answer_text(empty, frame, think="none") == "<think>none</think><answer>No Objects</answer>"
    g = Sample("g", ["a.png"], "grounding", "q", GroundingTarget(Box(10, 20, 50, 60)))
    assert answer_text(g, frame) == "<answer>(50,200),(250,600)</answer>"
    c = Sample("c", ["a.png"], "classification", "q", ClassTarget("rose"))
    assert answer_text(c, None) == "<answer>rose</answer>"
    assert "class name" in build_prompt(c, None)


def test_a_think_text_can_restate_the_question():
    frame = CoordFrame("resized_pixels", (200, 100), (200, 100))
    g = Sample(
        "g",
        ["a.png"],
        "grounding",
        " Find the red square in the image. ",
        GroundingTarget(Box(10, 20, 50, 60)),
    )
    assert (
        answer_text(g, frame, think="Asked: {problem}")
        == "<think>Asked: Find the red square in the image.</think><answer>(10,20),(50,60)</answer>"
    )
    braces = answer_text(g, frame, think="{x} {problem")  # other braces are text, not a template
    assert braces.startswith("<think>{x} {problem</think>")


def test_messages_put_one_image_entry_per_image():
    s = Sample("m", ["a.png", "b.png"], "classification", "q", ClassTarget("x"))
    content = messages(s, None)[0]["content"]
    assert [c["type"] for c in content] == ["image", "image", "text"]


def test_a_think_text_can_name_the_boxs_region():
    """`{region}`: the third of the image, down and across, that the box's centre is in (original pixels)."""
    g = Sample("g", ["a.png"], "grounding", "q", GroundingTarget(Box(120, 10, 180, 30)), 200, 90)
    frame = CoordFrame("norm1000", (200, 90))  # the region does not depend on the model's convention
    assert answer_text(g, frame, "It is at the {region}.") == (
        "<think>It is at the top right.</think><answer>(600,111),(900,333)</answer>"
    )
    assert region_words((0, 0, 10, 10), (90, 90)) == "top left"
    assert region_words((30, 40, 60, 50), (90, 90)) == "middle center"  # centre (45, 45)
    assert region_words((20, 50, 40, 70), (90, 90)) == "bottom center"  # centre (30, 60): on both boundaries
    assert region_words((80, 80, 90, 90), (90, 90)) == "bottom right"
    no_frame = answer_text(g, None, "{region}")  # the sample's own size
    assert no_frame.startswith("<think>top right</think>")


def test_a_detection_think_names_each_boxs_region_in_the_answers_order():
    """`{region}` of a detection target: its boxes' places, joined in the order the answer writes the boxes;
    "nowhere" for an absent category."""
    two = Sample(
        "t",
        ["a.png"],
        "detection",
        "q",
        DetectionTarget((Box(150, 0, 200, 20), Box(0, 80, 20, 100)), "c"),
        200,
        100,
    )
    assert answer_text(two, CoordFrame("norm1000", (200, 100)), "At: {region}.").startswith(
        "<think>At: top right, bottom left.</think><answer>[{'Position': [750, 0, 1000, 200]"
    )
    assert answer_text(DET, None, "{region}").startswith("<think>middle left</think>")  # centre (30, 40)
    absent = Sample("n", ["a.png"], "detection", "q", DetectionTarget((), "c"), 200, 100)
    assert (
        answer_text(absent, None, "At: {region}.") == "<think>At: nowhere.</think><answer>No Objects</answer>"
    )


def test_a_region_think_needs_boxes_and_an_image_size():
    c = Sample("c", ["a.png"], "classification", "q", ClassTarget("rose"), 200, 100)
    with pytest.raises(
        ValueError, match=r"sample c: a think with \{region\} needs a grounding or detection target"
    ):
        answer_text(c, None, "It is at the {region}.")
    unsized = Sample("u", ["a.png"], "grounding", "q", GroundingTarget(Box(1, 2, 3, 4)))
    with pytest.raises(ValueError, match=r"sample u: .* needs the image size"):
        answer_text(unsized, None, "{region}")


def test_a_short_prompt_is_the_question_alone_for_every_task():
    """`short` drops the coordinate and format instructions (and needs no frame); the full prompt keeps them."""
    c = Sample("c", ["a.png"], "classification", " What is it? ", ClassTarget("rose"))
    g = Sample("g", ["a.png"], "grounding", "Find the red square.", GroundingTarget(Box(10, 20, 50, 60)))
    for s in (DET, c, g):
        assert build_prompt(s, None, short=True) == s.problem.strip()
        assert messages(s, None, short=True)[0]["content"][-1]["text"] == s.problem.strip()
    full = build_prompt(g, CoordFrame("resized_pixels", (200, 100), (200, 100)))
    assert full.startswith(g.problem) and "<answer>(x1,y1),(x2,y2)</answer>" in full
