"""Dense, exact targets for pre-training a vision tower on the world: one label set per merged token.

A Qwen-VL vision tower (patch 14, merge 2) gives one token per 28 x 28-pixel cell of the image, in raster
order. For each cell this reads, from the scene's masks:

- `kind`: 0 background, 1 shape, 2 digit: of the object covering most of the cell (at least `min_cover`
  of it), and that object's `colour`, `shade`, `shape` (SHAPE_CLASSES: the five shapes, then "digit") and
  `digit` value; -1 where a label does not apply (background; `digit` on shapes);
- `box`: that object's box edges relative to the cell's centre, in cells: (x1 - cx, y1 - cy, x2 - cx,
  y2 - cy) / 28, so a token learns where its object ends to a few pixels;
- `corner`: the number of corners of a polygon with a corner inside the cell (3, 4, 10 or 12), 0 for
  none: a local trace of the shape on the outline (inside the object, the shape's fill pattern is the
  other: `WorldConfig.fills`; in the flat world every inner cell is one colour);
- `normal`: the outward direction of the outline crossing the cell, in 8 bins of 45 degrees (1-8; 0: no
  outline): the local evidence of the shape: a triangle's outline points three ways, a square's four, a
  circle's every way;
- `obj`: the index of the covering object in `scene.objects` (-1: background), to pool an object's tokens.

`box_owners` gives the same ownership from the objects' boxes alone (a sample's `meta.objects`, no masks):
what the language model's attention is held against (`recipes/binding.py`, `bench/attention_probe.py`);
`owner_boxes` and `cell_grid` give each cell its owner's box and its own (column, row), the position loss's
targets (`recipes/position.py`, `bench/lm_position_probe.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visual_rft.data.types import Sample
from visual_rft.world.scene import Scene, corners_of, mask_of
from visual_rft.world.vocab import COLOURS, SHADES, SHAPES

CELL = 28
"""Pixels per merged token along each side (patch 14 x merge 2)."""

SHAPE_CLASSES = (*SHAPES, "digit")
"""The `shape` labels, in order: circle, triangle, square, star, cross, digit."""


@dataclass
class CellTargets:
    """The targets of one image, each of shape [rows, cols] (`box`: [rows, cols, 4])."""

    kind: np.ndarray
    colour: np.ndarray
    shade: np.ndarray
    shape: np.ndarray
    digit: np.ndarray
    corner: np.ndarray
    box: np.ndarray
    normal: np.ndarray
    obj: np.ndarray

    def flat(self) -> dict[str, np.ndarray]:
        """Every target as one row per token, in the tower's raster order ([n] or [n, 4])."""
        return {k: v.reshape(-1, 4) if k == "box" else v.reshape(-1) for k, v in vars(self).items()}


def object_map(scene: Scene) -> np.ndarray:
    """[height, width] the index of the object each pixel belongs to, -1 for background."""
    owner = np.full((scene.height, scene.width), -1, np.int64)
    for i, o in enumerate(scene.objects):
        owner[o.y : o.y + o.h, o.x : o.x + o.w][mask_of(o)] = i
    return owner


def box_owners(
    boxes, rows: int, cols: int, scale: float = 1.0, min_cover: float = 0.15, cell: int = CELL
) -> np.ndarray:
    """[rows * cols] in raster order, the index of the box covering most of each merged cell of `cell` px
    (-1: none), boxes (x1, y1, x2, y2) in image pixels times `scale` (the processor's resize). A cell counts
    when a box covers at least `min_cover` of it; a small object straddling several cells keeps its best one."""
    if not len(boxes):
        return np.full(rows * cols, -1, np.int64)
    ys, xs = np.mgrid[0:rows, 0:cols] * cell  # [r, c] top-left corners
    cover = np.zeros((len(boxes), rows, cols))  # [n, r, c] pixels of the cell inside each box
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = (v * scale for v in box)
        w = np.clip(np.minimum(xs + cell, x2) - np.maximum(xs, x1), 0, None)
        h = np.clip(np.minimum(ys + cell, y2) - np.maximum(ys, y1), 0, None)
        cover[i] = w * h
    owner = np.where(cover.max(0) >= min_cover * cell * cell, cover.argmax(0), -1)  # [r, c]
    for i in range(len(boxes)):
        r, c = np.unravel_index(cover[i].argmax(), (rows, cols))
        if owner[r, c] == -1:
            owner[r, c] = i
    return owner.reshape(-1).astype(np.int64)


def object_cells(sample: Sample, h: int, w: int, patch: int, merge: int) -> tuple[np.ndarray, np.ndarray]:
    """For a world sample's one image, seen by the processor as an h x w grid of patches merged merge x merge:
    the object of `meta.objects` owning each merged cell [N] in raster order (-1: background), and the
    objects' boxes [k, 4] in merged cells of the processor's image."""
    scale = w * patch / sample.width if sample.width else 1.0  # the processor's resize
    boxes = [o["box"] for o in sample.meta["objects"]]
    cell = patch * merge
    owners = box_owners(boxes, h // merge, w // merge, scale, cell=cell)  # [N]
    return owners, np.array(boxes, dtype=np.float32).reshape(-1, 4) * scale / cell


def owner_boxes(boxes: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """[N, 4] the box (a row of `boxes` [k, 4]) of the object owning each cell (`owners` [N], from
    `box_owners`), nan where the cell is background."""
    out = np.full((len(owners), 4), np.nan, np.float32)  # [N, 4]
    on = owners >= 0  # [N]
    out[on] = np.asarray(boxes, np.float32).reshape(-1, 4)[owners[on]]
    return out


def cell_grid(rows: int, cols: int) -> np.ndarray:
    """[rows * cols, 2] each merged cell's (column, row), in the tower's raster order."""
    row, col = np.mgrid[0:rows, 0:cols]  # [rows, cols]
    return np.stack([col.reshape(-1), row.reshape(-1)], 1)


NORMAL_BINS = 8
"""Directions of the `normal` target (bins of 360 / 8 degrees; 0 means no outline in the cell)."""


def outline_normals(owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[H, W] x and y of the outward unit normal at each outline pixel (an object pixel with a 4-neighbour
    outside its object), 0 elsewhere; the normal is minus the gradient of the object's 3x3-blurred mask."""
    inside = owner >= 0
    pad = np.pad(owner, 1, constant_values=-1)
    edge = inside & (
        (pad[:-2, 1:-1] != owner)
        | (pad[2:, 1:-1] != owner)
        | (pad[1:-1, :-2] != owner)
        | (pad[1:-1, 2:] != owner)
    )
    m = np.pad(inside.astype(np.float32), 1)
    blur = (
        sum(m[dy : dy + owner.shape[0], dx : dx + owner.shape[1]] for dy in range(3) for dx in range(3)) / 9
    )
    gy, gx = np.gradient(blur)
    norm = np.hypot(gx, gy) + 1e-9
    return np.where(edge, -gx / norm, 0.0), np.where(edge, -gy / norm, 0.0)


def cell_targets(scene: Scene, min_cover: float = 0.15) -> CellTargets:
    """The dense targets of a scene whose sides are multiples of CELL."""
    if scene.width % CELL or scene.height % CELL:
        raise ValueError(f"scene of {scene.width}x{scene.height} px: sides must be multiples of {CELL}")
    rows, cols = scene.height // CELL, scene.width // CELL
    owner = object_map(scene)  # [H, W]
    cells = owner.reshape(rows, CELL, cols, CELL).transpose(0, 2, 1, 3).reshape(rows, cols, -1)  # [r, c, 784]
    n = len(scene.objects)
    counts = np.stack([(cells == i).sum(-1) for i in range(n)], -1) if n else np.zeros((rows, cols, 0))
    obj = np.full((rows, cols), -1, np.int64)
    if n:
        best = counts.argmax(-1)  # [r, c]
        covered = counts.max(-1) >= min_cover * CELL * CELL
        obj = np.where(covered, best, -1)
    colours, shades = list(COLOURS), list(SHADES)
    table = np.array(  # per object: kind, colour, shade, shape, digit
        [
            (
                2 if o.kind == "digit" else 1,
                colours.index(o.colour),
                shades.index(o.shade),
                SHAPE_CLASSES.index(o.shape),
                o.digit if o.kind == "digit" else -1,
            )
            for o in scene.objects
        ]
        + [(0, -1, -1, -1, -1)],
        np.int64,
    )  # [n + 1, 5]: the last row is background (index -1)
    labels = table[obj]  # [r, c, 5]
    boxes = np.array([o.box for o in scene.objects] + [(0, 0, 0, 0)], np.float32)[obj]  # [r, c, 4]
    cy, cx = (np.mgrid[0:rows, 0:cols].astype(np.float32) + 0.5) * CELL  # [r, c] cell centres
    centre = np.stack([cx, cy, cx, cy], -1)  # [r, c, 4]
    box = np.where((obj >= 0)[..., None], (boxes - centre) / CELL, 0.0).astype(np.float32)
    corner = np.zeros((rows, cols), np.int64)
    for o in scene.objects:
        for x, y in corners_of(o):
            r, c = min(int(y // CELL), rows - 1), min(int(x // CELL), cols - 1)
            if r >= 0 and c >= 0:
                corner[r, c] = max(corner[r, c], SHAPES[o.shape])
    nx, ny = outline_normals(owner)  # [H, W]
    sx = nx.reshape(rows, CELL, cols, CELL).sum((1, 3))  # [r, c]
    sy = ny.reshape(rows, CELL, cols, CELL).sum((1, 3))
    angle = np.arctan2(sy, sx) % (2 * np.pi)
    has_edge = np.hypot(sx, sy) > 2.0  # a few outline pixels that agree on a direction
    normal = np.where(
        has_edge, 1 + np.round(angle / (2 * np.pi / NORMAL_BINS)).astype(np.int64) % NORMAL_BINS, 0
    )
    return CellTargets(
        kind=labels[..., 0],
        colour=labels[..., 1],
        shade=labels[..., 2],
        shape=labels[..., 3],
        digit=labels[..., 4],
        corner=corner,
        box=box,
        normal=normal,
        obj=obj,
    )
