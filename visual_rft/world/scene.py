"""Objects and scenes: masks, placement and drawing. `draw(scene)` is a pure function of the scene.

Each object is rasterised once into a boolean mask; its box is the tight bound of that mask, in the
pixel-edge convention (the box covers pixels x1 <= x < x2, y1 <= y < y2). Objects are placed by integer
translation of the mask, so the box is exactly where the pixels are. Objects never share or touch pixels
(masks kept `min_gap` px apart) and their boxes overlap at most `max_iou`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw
from sklearn.datasets import load_digits

from visual_rft.data.boxes import iou
from visual_rft.world.patterns import Tone, fill_pattern, second_tone
from visual_rft.world.vocab import COLOURS, DETECTION_ALL, DIGIT_FILLS, FILLS, SHAPES


@dataclass
class WorldConfig:
    """How scenes are drawn. The defaults suit a tiny VLM (patch 14, merge 2) trained on a CPU."""

    image_size: tuple[int, int] = (112, 224)
    """Smallest and largest image side in pixels; width and height are drawn independently."""
    size_multiple: int = 28
    """Image sides are multiples of this (28 = patch 14 x merge 2: no resize by the processor)."""
    object_size: tuple[int, int] = (26, 48)
    """Object size range in px (circumscribed diameter of a shape, side of a digit's square), capped
    at a third of the shorter image side. Tight boxes are a bit smaller than this."""
    class_object_frac: tuple[float, float] = (0.45, 0.8)
    """Classification: size of the one main object as a fraction of the shorter image side."""
    max_objects: int = 6
    """Most objects (shapes and digits) in a detection or grounding scene."""
    max_digits: int = 2
    """Most digit distractors added to a detection scene."""
    max_instances: int = 4
    """Most instances of one category in a detection scene."""
    max_iou: float = 0.1
    """Largest IoU allowed between two object boxes; placement is retried beyond it."""
    min_gap: int = 2
    """Masks of two objects stay at least this many pixels apart (objects never touch)."""
    place_tries: int = 60
    """Placement attempts per object before it is left out of the scene."""
    clutter: int = 6
    """Most clutter specks (1-5 px, random colour, away from objects) per scene; 0 for none."""
    noise: float = 0.0
    """Largest standard deviation of the Gaussian pixel noise (drawn per scene in [0, noise]); 0 for none.
    E.g. 4.0 for noisy scenes; noise makes each PNG some 30 times larger (~35 KB instead of ~1.2 KB)."""
    shade_jitter: float = 0.06
    """Random change of the mix factor of a shade, so two objects of one class are not identical."""
    fills: bool = True
    """Draw each shape with its own fill pattern (vocab.FILLS: the pattern's second tone is the object's
    colour at 70% brightness); False: flat colour through the mask, as the worlds before it."""
    digit_fills: bool = False
    """Draw each digit in its value's fill pattern (vocab.DIGIT_FILLS, second tone `digit_tone`); False: flat
    colour, the value in the outline only (RESULTS.md section 22: the 5m tower does not learn it)."""
    digit_tone: Tone = "light"
    """The digits' pattern's second tone (`patterns.second_tone`): light tint, dark, or a mid grey."""
    digit_angle: float = 15.0
    """Digits are rotated by up to this many degrees either way."""
    p_absent: float = 0.5
    """Detection: chance that an image also yields one query for a category it does not contain."""
    margin: float = 1.3
    """Grounding: a 'largest'/'smallest' object must beat the runner-up's area by this factor, and a
    'leftmost'-like one its runner-up's centre by (margin - 1) x its own box size."""


@dataclass(frozen=True)
class ObjectSpec:
    """One object of a scene. `x`, `y` place the top-left of its tight mask; `w`, `h` are the mask size,
    so `box` = (x, y, x + w, y + h) is exact."""

    kind: str  # "shape" | "digit"
    shape: str  # a SHAPES name, or "digit"
    colour: str  # a COLOURS name
    shade: str  # a SHADES name
    rgb: tuple[int, int, int]
    size: int
    angle: float
    digit: int | None = None
    digit_index: int | None = None  # which image of sklearn's digits
    x: int = -1
    y: int = -1
    w: int = 0
    h: int = 0

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.x + self.w, self.y + self.h)

    @property
    def category(self) -> str:
        """The detection category: "red circle", or "digit 7"."""
        return f"digit {self.digit}" if self.kind == "digit" else f"{self.colour} {self.shape}"

    @property
    def label(self) -> str:
        """The classification label: the category, prefixed by the shade unless it is the middle one."""
        return (
            self.category if self.shade == "mid" or self.kind == "digit" else f"{self.shade} {self.category}"
        )

    @property
    def area(self) -> int:
        return int(mask_of(self).sum())


@dataclass(frozen=True)
class Scene:
    """Everything needed to draw an image, deterministically: `draw(scene)` is a pure function."""

    width: int
    height: int
    background: tuple[int, int, int]
    objects: tuple[ObjectSpec, ...] = ()
    clutter: tuple[tuple[int, int, int, int, tuple[int, int, int]], ...] = ()  # (x, y, w, h, rgb)
    noise: float = 0.0
    noise_seed: int = 0
    fills: bool = False
    """Shapes drawn with their fill pattern (WorldConfig.fills)."""
    digit_fills: bool = False
    """Digits drawn with their value's fill pattern (WorldConfig.digit_fills)."""
    digit_tone: Tone = "light"
    """Their pattern's second tone (WorldConfig.digit_tone)."""


def shade_rgb(colour: str, shade: str, jitter: float = 0.0) -> tuple[int, int, int]:
    """The RGB of a colour in a shade; `jitter` moves the mix factor a little."""
    rgb = np.array(COLOURS[colour], dtype=float)
    if shade == "dark":
        rgb = rgb * (0.5 + jitter)
    elif shade == "light":
        rgb = rgb + (255 - rgb) * (0.5 + jitter)
    else:
        rgb = rgb * (1 - abs(jitter))
    return tuple(int(round(v)) for v in np.clip(rgb, 0, 255))


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return d.images, d.target


def _polygon(shape: str, size: int, angle: float) -> list[tuple[float, float]]:
    """The corners of a polygon shape in its (size + 4)-px drawing canvas (none for a circle): a regular
    k-gon, a five-pointed star (10 corners, inner radius 0.45) or a plus-shaped cross (12 corners)."""
    if shape == "circle":
        return []
    n = size + 4
    c, r = n / 2, size / 2
    a0 = math.radians(angle) - math.pi / 2
    if shape == "star":
        polar = [(r if i % 2 == 0 else 0.45 * r, math.pi * i / 5) for i in range(10)]
    elif shape == "cross":  # arms of width 0.6 r: corners at (+-w, +-r) and (+-r, +-w), w = 0.3 r
        w = 0.3 * r
        pts = [(w, r), (w, w), (r, w), (r, -w), (w, -w), (w, -r)]
        pts += [(-x, -y) for x, y in pts]  # the other half: the cross is point-symmetric
        polar = [(math.hypot(x, y), math.atan2(y, x) + math.pi / 2) for x, y in pts]
    else:
        k = SHAPES[shape]
        polar = [(r, 2 * math.pi * i / k) for i in range(k)]
    return [(c + d * math.cos(a0 + a), c + d * math.sin(a0 + a)) for d, a in polar]


@lru_cache(maxsize=4096)
def _raster(
    shape: str, size: int, angle: float, digit_index: int | None
) -> tuple[np.ndarray, tuple[int, int]]:
    """(the tight mask, the (x, y) of its top-left corner in the drawing canvas)."""
    if shape == "digit":
        img = (_digits()[0][digit_index] * (255 / 16)).astype(np.uint8)
        im = Image.fromarray(img).resize((size, size), Image.BILINEAR)
        im = im.rotate(angle, resample=Image.BILINEAR, expand=True)
        mask = np.asarray(im) > 100
    else:
        n = size + 4
        im = Image.new("L", (n, n), 0)
        c, r = n / 2, size / 2
        if shape == "circle":
            ImageDraw.Draw(im).ellipse([c - r, c - r, c + r, c + r], fill=1)
        else:
            ImageDraw.Draw(im).polygon(_polygon(shape, size, angle), fill=1)
        mask = np.asarray(im) > 0
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    mask = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    mask.flags.writeable = False
    return mask, (int(cols[0]), int(rows[0]))


def mask_of(obj: ObjectSpec) -> np.ndarray:
    """The object's tight boolean mask, of shape [h, w] (read-only, cached)."""
    return _raster(obj.shape, obj.size, obj.angle, obj.digit_index)[0]


def corners_of(obj: ObjectSpec) -> list[tuple[float, float]]:
    """The (x, y) image coordinates of a placed polygon's corners (none for circles and digits)."""
    if obj.kind != "shape":
        return []
    _, (ox, oy) = _raster(obj.shape, obj.size, obj.angle, obj.digit_index)
    return [(obj.x + x - ox, obj.y + y - oy) for x, y in _polygon(obj.shape, obj.size, obj.angle)]


def make_object(
    rng: np.random.Generator,
    cfg: WorldConfig,
    shape: str,
    colour: str,
    shade: str = "mid",
    size: int | None = None,
    digit: int | None = None,
) -> ObjectSpec:
    """An unplaced object (x = y = -1) with a random size, rotation and shade jitter; w, h are set."""
    if size is None:
        size = int(rng.integers(cfg.object_size[0], cfg.object_size[1] + 1))
    rgb = shade_rgb(colour, shade, float(rng.uniform(-cfg.shade_jitter, cfg.shade_jitter)))
    if shape == "digit":
        images, targets = _digits()
        idx = np.flatnonzero(targets == digit)
        index = int(idx[rng.integers(len(idx))])
        angle = round(float(rng.uniform(-cfg.digit_angle, cfg.digit_angle)), 1)
        obj = ObjectSpec("digit", "digit", colour, shade, rgb, size, angle, digit, index)
    else:
        angle = round(float(rng.uniform(0, 360)), 1) if shape != "circle" else 0.0
        obj = ObjectSpec("shape", shape, colour, shade, rgb, size, angle)
    h, w = mask_of(obj).shape
    return replace(obj, w=w, h=h)


def random_object(
    rng: np.random.Generator, cfg: WorldConfig, category: str | None = None, size: int | None = None
) -> ObjectSpec:
    """An unplaced object of a "colour shape" or "digit N" category (a random shape when None)."""
    if category is None:
        category = DETECTION_ALL[rng.integers(len(DETECTION_ALL))]
    first, second = category.split(" ")
    if first == "digit":
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        return make_object(rng, cfg, "digit", colour, size=size, digit=int(second))
    return make_object(rng, cfg, second, first, size=size)


def random_digit(rng: np.random.Generator, cfg: WorldConfig) -> ObjectSpec:
    return random_object(rng, cfg, f"digit {rng.integers(10)}")


# ---------------------------------------------------------------- placement


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Square dilation by r pixels; the result is 2r larger in each dimension."""
    h, w = mask.shape
    out = np.zeros((h + 2 * r, w + 2 * r), bool)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out[dy : dy + h, dx : dx + w] |= mask
    return out


def _too_close(a: ObjectSpec, b: ObjectSpec, gap: int) -> bool:
    """Whether the masks of a and b come within `gap` pixels of each other."""
    ax1, ay1 = a.x - gap, a.y - gap
    ax2, ay2 = a.x + a.w + gap, a.y + a.h + gap
    x1, y1 = max(ax1, b.x), max(ay1, b.y)
    x2, y2 = min(ax2, b.x + b.w), min(ay2, b.y + b.h)
    if x1 >= x2 or y1 >= y2:
        return False
    da = _dilate(mask_of(a), gap)[y1 - ay1 : y2 - ay1, x1 - ax1 : x2 - ax1]
    mb = mask_of(b)[y1 - b.y : y2 - b.y, x1 - b.x : x2 - b.x]
    return bool((da & mb).any())


def place(
    rng: np.random.Generator,
    cfg: WorldConfig,
    width: int,
    height: int,
    obj: ObjectSpec,
    placed: list[ObjectSpec],
) -> ObjectSpec | None:
    """`obj` moved to a random free spot inside the image, or None after cfg.place_tries attempts."""
    if obj.w > width or obj.h > height:
        return None
    for _ in range(cfg.place_tries):
        cand = replace(
            obj, x=int(rng.integers(0, width - obj.w + 1)), y=int(rng.integers(0, height - obj.h + 1))
        )
        if all(iou(cand.box, p.box) <= cfg.max_iou and not _too_close(cand, p, cfg.min_gap) for p in placed):
            return cand
    return None


def _clutter(rng: np.random.Generator, cfg: WorldConfig, width: int, height: int, objects) -> tuple:
    """Small specks of random colour, at least 3 px away from every object's box."""
    specks = []
    for _ in range(int(rng.integers(0, cfg.clutter + 1)) if cfg.clutter > 0 else 0):
        w, h = (int(v) for v in rng.integers(1, 6, size=2))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        rgb = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if all(
            x + w + 3 <= o.x or o.x + o.w + 3 <= x or y + h + 3 <= o.y or o.y + o.h + 3 <= y for o in objects
        ):
            specks.append((x, y, w, h, rgb))
    return tuple(specks)


def image_size(rng: np.random.Generator, cfg: WorldConfig) -> tuple[int, int]:
    m = cfg.size_multiple
    lo, hi = -(-cfg.image_size[0] // m), cfg.image_size[1] // m
    w, h = rng.integers(lo, hi + 1, size=2)
    return int(w) * m, int(h) * m


def _background(rng: np.random.Generator) -> tuple[int, int, int]:
    g = int(rng.integers(95, 151))
    return tuple(int(v) for v in np.clip(g + rng.integers(-8, 9, size=3), 0, 255))


def fit_objects(cfg: WorldConfig, width: int, height: int) -> WorldConfig:
    """cfg with object sizes capped at a third of the shorter image side."""
    cap = min(width, height) // 3
    lo, hi = cfg.object_size
    return replace(cfg, object_size=(min(lo, cap), min(hi, cap)))


def layout_scene(
    rng: np.random.Generator, cfg: WorldConfig, objects: list[ObjectSpec], size: tuple[int, int] | None = None
) -> Scene:
    """Place `objects` (unplaced specs, in order; ones that do not fit are left out), and choose the
    background, clutter and noise. The scene's objects carry their exact boxes."""
    width, height = size or image_size(rng, cfg)
    placed: list[ObjectSpec] = []
    for obj in objects:
        p = place(rng, cfg, width, height, obj, placed)
        if p is not None:
            placed.append(p)
    return Scene(
        width,
        height,
        _background(rng),
        tuple(placed),
        _clutter(rng, cfg, width, height, placed),
        float(rng.uniform(0, cfg.noise)) if cfg.noise > 0 else 0.0,
        int(rng.integers(2**32)),
        cfg.fills,
        cfg.digit_fills,
        cfg.digit_tone,
    )


def render_scene(
    rng: np.random.Generator, cfg: WorldConfig, objects: list[ObjectSpec], size: tuple[int, int] | None = None
) -> tuple[Image.Image, Scene]:
    """`layout_scene`, then `draw`: the image and the scene."""
    scene = layout_scene(rng, cfg, objects, size)
    return draw(scene), scene


def draw(scene: Scene) -> Image.Image:
    """The RGB image of a scene: background, clutter, objects (their colour through their masks, in their
    shape's fill pattern when `scene.fills`, in their digit's when `scene.digit_fills`), noise."""
    canvas = np.empty((scene.height, scene.width, 3), np.uint8)
    canvas[:] = scene.background
    for x, y, w, h, rgb in scene.clutter:
        canvas[y : y + h, x : x + w] = rgb
    for o in scene.objects:
        region, mask = canvas[o.y : o.y + o.h, o.x : o.x + o.w], mask_of(o)  # [h, w, 3], [h, w]
        region[mask] = o.rgb
        if scene.fills and o.kind == "shape":
            second = mask & fill_pattern(FILLS[o.shape], o.box)  # [h, w] the pattern's second tone
            region[second] = second_tone(o.rgb, "dark")
        if scene.digit_fills and o.kind == "digit":
            second = mask & fill_pattern(DIGIT_FILLS[o.digit], o.box)  # [h, w]
            region[second] = second_tone(o.rgb, scene.digit_tone)
    if scene.noise > 0:
        noise = np.random.Generator(np.random.PCG64(scene.noise_seed)).standard_normal(
            canvas.shape, np.float32
        )
        canvas = np.clip(canvas + np.rint(noise * scene.noise), 0, 255).astype(np.uint8)
    return Image.fromarray(canvas, "RGB")


def scene_graph(scene: Scene) -> list[dict]:
    """The objects of a scene as JSON-ready dicts (kind, colour, shape or digit, box, area)."""
    out = []
    for o in scene.objects:
        d = {"kind": o.kind, "colour": o.colour}
        d.update({"digit": o.digit} if o.kind == "digit" else {"shape": o.shape})
        d.update(box=list(o.box), area=o.area)
        out.append(d)
    return out
