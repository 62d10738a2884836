from visual_rft.data.answer import answer_text
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
