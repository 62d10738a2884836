"""Dense per-token targets: read from the masks, in the tower's raster order, corners in their cells."""

from dataclasses import replace

import numpy as np
import pytest

from visual_rft import world as W
from visual_rft.world.dense import (
    CELL,
    SHAPE_CLASSES,
    box_owners,
    cell_grid,
    cell_targets,
    object_map,
    owner_boxes,
)
from visual_rft.world.scene import corners_of


def _scene(objects, size=(112, 84)):
    """A scene with objects placed by hand (x, y of each mask's top-left)."""
    return W.Scene(size[0], size[1], (120, 120, 120), tuple(objects))


def _obj(shape, colour, x, y, size=40, shade="mid", angle=0.0, digit=None):
    cfg = W.WorldConfig(shade_jitter=0.0)
    rng = np.random.default_rng(0)
    o = W.make_object(rng, cfg, shape, colour, shade, size=size, digit=digit)
    if shape != "digit":
        o = replace(o, angle=angle)
        h, w = W.mask_of(o).shape
        o = replace(o, w=w, h=h)
    return replace(o, x=x, y=y)


def test_a_square_filling_cells_labels_exactly_those_cells():
    sq = _obj("square", "blue", 28, 0, size=80, shade="dark", angle=45.0)  # axis-aligned square, ~56 px
    t = cell_targets(_scene([sq]))
    assert t.kind.shape == (3, 4)
    owned = t.obj == 0
    assert owned.any() and (t.kind[owned] == 1).all()
    assert (t.colour[owned] == list(W.COLOURS).index("blue")).all()
    assert (t.shade[owned] == W.SHADES.index("dark")).all()
    assert (t.shape[owned] == SHAPE_CLASSES.index("square")).all()
    assert (t.digit[owned] == -1).all() and (t.kind[~owned] == 0).all() and (t.colour[~owned] == -1).all()
    # every owned cell's box offsets put the object's box where it is, in cells from the cell's centre
    for r, c in zip(*np.nonzero(owned)):
        centre = np.array([c + 0.5, r + 0.5, c + 0.5, r + 0.5]) * CELL
        assert t.box[r, c] * CELL + centre == pytest.approx(np.array(sq.box, float), abs=1e-4)


def test_cells_follow_the_raster_order_of_the_tower():
    red = _obj("circle", "red", 0, 0, size=26)
    digit = _obj("digit", "green", 84, 56, size=26, digit=7)
    t = cell_targets(_scene([red, digit]))
    flat = t.flat()
    assert flat["kind"].shape == (12,) and flat["box"].shape == (12, 4)
    assert flat["obj"][0] == 0 and flat["kind"][0] == 1  # row 0, col 0
    assert flat["obj"][2 * 4 + 3] == 1 and flat["kind"][11] == 2 and flat["digit"][11] == 7  # row 2, col 3
    assert flat["shape"][11] == SHAPE_CLASSES.index("digit")


def test_corners_mark_the_cells_holding_a_polygon_corner():
    tri = _obj("triangle", "yellow", 10, 10, size=48, angle=0.0)
    corners = corners_of(tri)
    assert len(corners) == 3
    mask_owner = object_map(_scene([tri]))
    for x, y in corners:  # each corner is on the object's outline (within a pixel of a mask pixel)
        ys, xs = np.nonzero(mask_owner == 0)
        assert np.min(np.hypot(xs + 0.5 - x, ys + 0.5 - y)) < 1.5
    t = cell_targets(_scene([tri]))
    cells = {(int(y // CELL), int(x // CELL)) for x, y in corners}
    assert {(int(r), int(c)) for r, c in zip(*np.nonzero(t.corner))} == cells
    assert set(t.corner[t.corner > 0].tolist()) == {3}
    circle = cell_targets(_scene([_obj("circle", "red", 10, 10, size=48)]))
    assert not circle.corner.any()


def test_a_world_scene_has_targets_for_every_object_it_shows():
    rng = np.random.default_rng(3)
    _, scene = W.detection_scene(rng, W.WorldConfig(), W.DETECTION_BASE)
    t = cell_targets(scene)
    assert t.kind.shape == (scene.height // CELL, scene.width // CELL)
    big = [i for i, o in enumerate(scene.objects) if W.mask_of(o).sum() >= 0.6 * CELL * CELL]
    assert set(big) <= set(np.unique(t.obj).tolist())
    with pytest.raises(ValueError, match="multiples of 28"):
        cell_targets(W.Scene(100, 84, (0, 0, 0)))


def test_a_cell_belongs_to_the_box_covering_most_of_it_and_a_small_object_keeps_its_best_cell():
    objects = [
        {"box": [0, 0, 28, 28]},  # exactly cell (0, 0)
        {"box": [30, 30, 50, 50]},  # 400 px of cell (1, 1)
        {"box": [52, 22, 60, 34]},  # 24 px in each of four cells: under the 15% cover, keeps (0, 1)
    ]
    owners = box_owners([o["box"] for o in objects], rows=2, cols=3)
    assert owners.tolist() == [0, 2, -1, -1, 1, -1]


def test_boxes_are_scaled_into_the_processors_resized_image():
    owners = box_owners([(28, 0, 56, 28)], rows=1, cols=4, scale=2.0)
    assert owners.tolist() == [-1, -1, 0, 0]


def test_a_scene_without_boxes_owns_no_cell():
    assert box_owners([], rows=2, cols=2).tolist() == [-1, -1, -1, -1]


def test_each_cell_gets_its_owners_box_and_its_own_column_and_row():
    boxes = [(0, 0, 10, 10), (30, 0, 50, 20)]
    owners = np.array([0, -1, 1, -1])  # a 2 x 2 grid, raster order
    out = owner_boxes(boxes, owners)
    np.testing.assert_array_equal(out[[0, 2]], [[0, 0, 10, 10], [30, 0, 50, 20]])
    assert np.isnan(out[[1, 3]]).all()
    assert np.isnan(owner_boxes([], np.array([-1, -1]))).all()  # a scene with no object
    np.testing.assert_array_equal(cell_grid(2, 3), [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]])
