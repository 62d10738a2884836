"""Objects, masks, placement and drawing (visual_rft/world/scene.py): exact boxes, objects apart."""

from dataclasses import replace
from itertools import combinations

import numpy as np
import pytest

from visual_rft import world as W
from visual_rft.data.boxes import iou


def bbox_of(changed: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(changed)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def scenes(n: int):
    """Detection and grounding scenes without noise (clutter kept), with digits and rotated polygons."""
    cfg = W.WorldConfig(noise=0.0)
    for i in range(n):
        rng = np.random.Generator(np.random.PCG64([99, i]))
        yield W.detection_scene(rng, cfg, W.DETECTION_ALL)[1]
        yield W.grounding_scene(rng, cfg)


def test_box_is_the_bound_of_the_pixels_the_object_changed():
    kinds = set()
    for scene in scenes(12):
        full = np.asarray(W.draw(scene))
        for j, obj in enumerate(scene.objects):
            without = replace(scene, objects=scene.objects[:j] + scene.objects[j + 1 :])
            changed = (np.asarray(W.draw(without)) != full).any(-1)
            assert bbox_of(changed) == obj.box, obj
            assert changed.sum() == obj.area  # nothing of it hidden by another object
            kinds.add(obj.shape)
    assert kinds >= {"digit", "triangle", "square", "circle"}


def test_rotated_polygon_box_comes_from_the_rasterised_mask():
    rng = np.random.Generator(np.random.PCG64(0))
    cfg = W.WorldConfig()
    diamond = replace(W.make_object(rng, cfg, "square", "red", size=40), angle=45.0)
    square = replace(diamond, angle=0.0)
    assert W.mask_of(diamond).shape != W.mask_of(square).shape
    image, scene = W.render_scene(
        rng,
        replace(cfg, noise=0.0, clutter=0),
        [W.make_object(rng, cfg, "square", "blue", size=40)],
        (112, 112),
    )
    obj = scene.objects[0]
    changed = (np.asarray(image) != np.array(scene.background, np.uint8)).any(-1)
    assert bbox_of(changed) == obj.box
    assert (obj.w, obj.h) == W.mask_of(obj).shape[::-1]


def test_objects_inside_image_and_barely_overlapping():
    cfg = W.WorldConfig()
    for scene in scenes(12):
        for o in scene.objects:
            x1, y1, x2, y2 = o.box
            assert 0 <= x1 < x2 <= scene.width and 0 <= y1 < y2 <= scene.height
        for a, b in combinations(scene.objects, 2):
            assert iou(a.box, b.box) <= cfg.max_iou


def test_every_polygon_has_its_corners_on_its_outline_and_star_and_cross_are_concave():
    rng = np.random.default_rng(3)
    for shape, k in W.SHAPES.items():
        o = replace(W.make_object(rng, W.WorldConfig(), shape, "red", size=48), x=10, y=10)
        corners = W.scene.corners_of(o)
        assert len(corners) == k, shape
        ys, xs = np.nonzero(W.mask_of(o))  # the object's pixels, in the mask's frame
        pixels = np.stack([xs + o.x + 0.5, ys + o.y + 0.5], -1)  # [P, 2] image coordinates of pixel centres
        for x, y in corners:  # a corner is a pixel of the object, give or take a pixel
            assert np.hypot(*(pixels - (x, y)).T).min() <= 1.5, (shape, x, y)
        if shape in (
            "star",
            "cross",
        ):  # two outer corners with an inner one between: their midpoint is outside
            (x0, y0), (x1, y1) = corners[0], corners[2]
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2
            assert np.hypot(*(pixels - (mx, my)).T).min() > 1.5, shape


def test_each_shape_is_drawn_in_its_own_fill_pattern_and_fills_false_is_flat():
    rng = np.random.Generator(np.random.PCG64(3))
    cfg = W.WorldConfig(noise=0.0, clutter=0)
    for shape in W.SHAPES:
        obj = W.make_object(rng, cfg, shape, "blue", size=48)
        scene = W.layout_scene(rng, cfg, [obj], size=(112, 112))
        obj = scene.objects[0]
        x1, y1, x2, y2 = obj.box
        pixels = np.asarray(W.draw(scene))[y1:y2, x1:x2][W.mask_of(obj)]  # [area, 3]
        second = tuple(int(v * 0.7) for v in obj.rgb)
        tones = {tuple(p) for p in pixels}
        assert tones == ({obj.rgb} if W.FILLS[shape] == "solid" else {obj.rgb, second}), shape
        flat = np.asarray(W.draw(replace(scene, fills=False)))[y1:y2, x1:x2][W.mask_of(obj)]
        assert {tuple(p) for p in flat} == {obj.rgb}
    # the patterns by hand on a 6 x 6 box at (0, 0): which pixels take the second tone
    rows = [[0] * 6, [0] * 6, [0] * 6, [1] * 6, [1] * 6, [1] * 6]
    assert W.fill_pattern("rows", (0, 0, 6, 6)).astype(int).tolist() == rows
    assert W.fill_pattern("columns", (0, 0, 6, 6)).T.astype(int).tolist() == rows
    checks = W.fill_pattern("checks", (0, 0, 6, 6))
    assert checks[0, 3] and checks[3, 0] and not checks[0, 0] and not checks[3, 3]
    assert W.fill_pattern("dots", (0, 0, 6, 6)).sum() == 4  # one 2 x 2 dot
    assert not W.fill_pattern("solid", (0, 0, 6, 6)).any()
    # the pattern is fixed to the image, not the object: a box at (1, 0) sees the columns shifted by one
    assert W.fill_pattern("columns", (1, 0, 7, 6))[0].astype(int).tolist() == [0, 0, 1, 1, 1, 0]


@pytest.mark.parametrize(
    "tone, expected",
    [
        ("light", lambda rgb: tuple(int(v + (255 - v) * 0.5) for v in rgb)),
        ("grey", lambda rgb: (128, 128, 128)),
    ],
)
def test_digit_fills_draw_each_digit_in_its_values_pattern_in_its_second_tone(tone, expected):
    rng = np.random.Generator(np.random.PCG64(4))
    cfg = W.WorldConfig(noise=0.0, clutter=0, digit_fills=True, digit_tone=tone)
    for digit in range(10):
        obj = W.make_object(rng, cfg, "digit", "purple", size=48, digit=digit)
        scene = W.layout_scene(rng, cfg, [obj], size=(112, 112))
        assert scene.digit_fills
        obj = scene.objects[0]
        x1, y1, x2, y2 = obj.box
        image = np.asarray(W.draw(scene))[y1:y2, x1:x2]  # [h, w, 3]
        mask = W.mask_of(obj)
        second = mask & W.fill_pattern(W.DIGIT_FILLS[digit], obj.box)
        tint = expected(obj.rgb)
        assert {tuple(p) for p in image[second]} <= {tint} and {tuple(p) for p in image[mask & ~second]} == {
            obj.rgb
        }
        assert second.any() == (W.DIGIT_FILLS[digit] != "solid"), digit
        flat = np.asarray(W.draw(replace(scene, digit_fills=False)))[y1:y2, x1:x2][mask]
        assert {tuple(p) for p in flat} == {obj.rgb}
    assert not W.WorldConfig().digit_fills  # the default world keeps flat digits
    assert W.WorldConfig().digit_tone == "light"


def test_second_tone_by_hand_and_an_unknown_tone_refused():
    assert W.second_tone((200, 100, 0), "dark") == (140, 70, 0)
    assert W.second_tone((200, 100, 0), "light") == (227, 177, 127)
    assert W.second_tone((200, 100, 0), "grey") == (128, 128, 128)
    with pytest.raises(ValueError, match="unknown tone 'pink'"):
        W.second_tone((200, 100, 0), "pink")
