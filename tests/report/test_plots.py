"""Report pictures: the reward curve PNG, answered boxes in pixels, true (green) and predicted (red) boxes."""

import json

import pytest
from PIL import Image

from visual_rft.data.coords import CoordFrame
from visual_rft.data.types import Box, ClassTarget, DetectionTarget, GroundingTarget
from visual_rft.report.plots import draw_prediction, predicted_boxes, reward_curve

GREEN, RED, WHITE = (0, 200, 0), (230, 0, 0), (255, 255, 255)
# matplotlib's first four line colours (C0..C3)
LINE_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]


def _metrics(path):
    rows = [
        {
            "step": s,
            "reward/total": 0.1 * s,
            "reward/iou/mean": 0.05 * s,
            "reward/iou/std": 0.3,
            "reward/format/mean": 1.0 - 0.1 * s,
            "loss": 2.0 - s,
        }
        for s in range(1, 6)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")  # a trailing blank line is skipped
    return path


def _colours(im):
    """Every colour of an image."""
    im = im.convert("RGB")
    return {c for _, c in im.getcolors(im.width * im.height)}


def _colours_present(png):
    pixels = _colours(Image.open(png))
    return [c in pixels for c in LINE_COLOURS]


def test_reward_curve_plots_the_total_and_each_reward_mean(tmp_path):
    out = reward_curve(_metrics(tmp_path / "metrics.jsonl"), tmp_path / "curve.png")
    assert out == tmp_path / "curve.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(out).size == (660, 385)  # 6 x 3.5 inches at 110 dpi
    # reward/total, reward/iou/mean, reward/format/mean: three lines; not the std, not the loss
    assert _colours_present(out) == [True, True, True, False]


def test_reward_curve_with_chosen_keys(tmp_path):
    out = reward_curve(_metrics(tmp_path / "metrics.jsonl"), tmp_path / "curve.png", keys=("reward/total",))
    assert _colours_present(out) == [True, False, False, False]


def _completion(answer):
    return f"<think>looking</think><answer>{answer}</answer>"


def test_detection_boxes_from_resized_pixels_to_image_pixels():
    # the processor resized a 100x50 image to 200x100: model pixels are twice the original ones
    frame = CoordFrame("resized_pixels", (100, 50), (200, 100))
    text = _completion(
        "[{'Position': [10, 20, 50, 60], 'Confidence': 0.4}, "
        "{'Position': [0, 0, 200, 100], 'Confidence': 0.9}]"
    )
    assert predicted_boxes(text, "detection", frame) == [
        (Box(0.0, 0.0, 100.0, 50.0), 0.9),  # most confident first
        (Box(5.0, 10.0, 25.0, 30.0), 0.4),
    ]


def test_detection_boxes_from_thousandths_to_image_pixels():
    frame = CoordFrame("norm1000", (200, 100))
    text = _completion('[{"bbox_2d": [100, 200, 500, 600], "label": "circle"}]')  # no confidence: 1.0
    assert predicted_boxes(text, "detection", frame) == [(Box(20.0, 20.0, 100.0, 60.0), 1.0)]


def test_grounding_box_has_confidence_one():
    frame = CoordFrame("resized_pixels", (100, 50), (200, 100))
    assert predicted_boxes(_completion("(10,20),(50,60)"), "grounding", frame) == [
        (Box(5.0, 10.0, 25.0, 30.0), 1.0)
    ]


@pytest.mark.parametrize(
    "completion, task",
    [
        (None, "detection"),
        (_completion("No Objects"), "detection"),
        ("[{'Position': [1, 2, 3, 4]}]", "detection"),  # no answer tags: no answer
        (_completion("(1,2),(3,4) and (5,6),(7,8)"), "grounding"),
        (_completion("red circle"), "classification"),
    ],
)
def test_no_boxes(completion, task):
    assert predicted_boxes(completion, task, CoordFrame("norm1000", (10, 10))) == []


def test_no_frame_no_boxes():
    assert predicted_boxes(_completion("(10,20),(50,60)"), "grounding", None) == []


def _white(tmp_path, size=(40, 30), mode="RGB"):
    path = tmp_path / "image.png"
    Image.new(mode, size, 255 if mode == "L" else WHITE).save(path)
    return str(path)


def test_true_boxes_green_predicted_red_on_the_enlarged_image(tmp_path):
    target = DetectionTarget((Box(5, 5, 15, 15, "circle"),), "circle")
    out = draw_prediction(_white(tmp_path), target, [(Box(20, 10, 35, 25), 0.5)], tmp_path / "out.png")
    im = Image.open(out).convert("RGB")
    assert im.size == (80, 60)  # scale 2
    # the true box becomes [10, 10, 30, 30]: a 2-px outline drawn inside it
    for xy in [(10, 20), (11, 20), (30, 20), (29, 20), (20, 10), (20, 11), (20, 30), (20, 29)]:
        assert im.getpixel(xy) == GREEN, xy
    for xy in [(9, 20), (12, 20), (20, 20), (31, 20)]:
        assert im.getpixel(xy) == WHITE, xy
    # the predicted box becomes [40, 20, 70, 50] (its confidence is written at its top-left corner)
    for xy in [(40, 40), (41, 40), (70, 40), (69, 40), (55, 50), (55, 49)]:
        assert im.getpixel(xy) == RED, xy
    for xy in [(39, 40), (71, 40), (55, 51), (68, 45)]:
        assert im.getpixel(xy) == WHITE, xy
    text_area = [im.getpixel((x, y)) for x in range(42, 62) for y in range(21, 32)]
    assert RED in text_area  # "0.50"


def test_grounding_target_and_scale(tmp_path):
    target = GroundingTarget(Box(2, 3, 12, 13))
    out = draw_prediction(_white(tmp_path, mode="L"), target, [], tmp_path / "out.png", scale=3)
    im = Image.open(out).convert("RGB")
    assert im.size == (120, 90)
    assert im.getpixel((6, 20)) == GREEN and im.getpixel((36, 20)) == GREEN  # x1 * 3, x2 * 3
    assert im.getpixel((20, 9)) == GREEN and im.getpixel((20, 39)) == GREEN  # y1 * 3, y2 * 3
    assert RED not in _colours(im)


def test_class_target_draws_nothing(tmp_path):
    out = draw_prediction(_white(tmp_path), ClassTarget("red"), [], tmp_path / "out.png")
    assert _colours(Image.open(out)) == {WHITE}
