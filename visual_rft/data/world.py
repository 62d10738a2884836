"""The synthetic world: seeded scenes of coloured shapes and handwritten digits, with exact ground truth.

Scenes are 112 to 224 px (sides are multiples of 28, so a Qwen2.5-VL processor with patch 14 and
merge 2 does not resize them). Objects are filled polygons and circles in five colours, and digits from
scikit-learn's bundled 8x8 set, upscaled (bilinear), slightly rotated, thresholded and coloured.
Optional clutter (specks of a few pixels, kept away from objects) and Gaussian pixel noise (off by default).

Ground truth is exact. Each object is rasterised once into a boolean mask; its box is the tight bound of
that mask, in the pixel-edge convention (the box covers pixels x1 <= x < x2, y1 <= y < y2). Objects are
placed by integer translation of the mask, so the box is exactly where the pixels are. Objects never
share or touch pixels (masks kept `min_gap` px apart) and their boxes overlap at most `max_iou`.

The four tasks of the paper, and their base / few-shot design:

- Classification (fine-grained). One main object per image. CLASSIFICATION_FEWSHOT are 24 fine classes
  "shade colour shape" ("dark red triangle" vs "light red triangle": red, green, blue, yellow x circle,
  triangle, square x dark, light). CLASSIFICATION_BASE, for pre-training, are the 25 "colour shape"
  classes in the middle shade plus the dark and light shades of every other colour-shape pair (purple
  ones, pentagons, hexagons; 26 classes): the base model has seen every colour, shape and shade word,
  but never a few-shot class, which it must learn as a new composition from a few shots (as the paper's
  base model knows flowers and cars but not the fine species). Like detection's novel categories.
- Detection. Every instance of one named "colour shape" category, among distractors (other categories,
  digits, clutter); 0 to 4 instances, with some queries for absent categories (boxes=() -> 'No Objects').
  The 25 categories are split so every colour and every shape is seen in the base set:
  DETECTION_NOVEL (10) are the combinations with (colour index + shape index) % 5 in {0, 1}; the other
  15 are DETECTION_BASE. Base data is pre-training material and the open-vocabulary training set;
  DETECTION_NOVEL is both the open-vocabulary evaluation set and the few-shot detection set
  (DETECTION_FEWSHOT): novel compositions of known attributes. A scene draws objects only from the
  categories it is built for (plus digits), so a base-split image never shows a novel object at all.
- Reasoning grounding. One box from an instruction generated from the scene graph and verified to
  match exactly one object (otherwise another scene is drawn). GROUNDING_BASE_KINDS are plain
  referring expressions ("the red triangle", "the leftmost digit"), for pre-training;
  GROUNDING_REASONING_KINDS need a step of reasoning (size comparison, corner counts, spatial
  relations, digit values, colour matching), for the few-shot experiments. `meta` holds the kind,
  the structured query and the scene graph, so any sample can be re-checked.
- Open-vocabulary detection: detection built with categories=DETECTION_BASE (meta split "base") for
  training and DETECTION_NOVEL (meta split "novel") for evaluation.

Determinism: every image i of a file draws from its own generator PCG64([seed, crc32(name), i]), so the
same (seed, name) gives byte-identical JSONL and identical pixels, a longer file extends a shorter one,
and files of different names (a training pool and its test set) use different random streams.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from visual_rft.data.jsonl import write_samples
from visual_rft.data.types import Box, ClassTarget, DetectionTarget, GroundingTarget, Sample

# ---------------------------------------------------------------- vocabulary

COLOURS = {
    "red": (220, 45, 45),
    "green": (45, 170, 60),
    "blue": (45, 95, 225),
    "yellow": (235, 205, 35),
    "purple": (150, 65, 195),
}
"""Colour names and their middle-shade RGB."""

SHAPES = {"circle": 0, "triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}
"""Shape names and their number of corners."""

SHADES = ("dark", "mid", "light")
"""Shades of a colour: mixed half-way with black, pure, mixed half-way with white."""

CLASSIFICATION_FEWSHOT = [
    f"{shade} {c} {s}"
    for c in ("red", "green", "blue", "yellow")
    for s in ("circle", "triangle", "square")
    for shade in ("dark", "light")
]
CLASSIFICATION_BASE = [f"{c} {s}" for c in COLOURS for s in SHAPES] + [
    f"{shade} {c} {s}"
    for c in COLOURS
    for s in SHAPES
    for shade in ("dark", "light")
    if f"{shade} {c} {s}" not in CLASSIFICATION_FEWSHOT
]
DETECTION_ALL = [f"{c} {s}" for c in COLOURS for s in SHAPES]
DETECTION_NOVEL = [
    f"{c} {s}" for ci, c in enumerate(COLOURS) for si, s in enumerate(SHAPES) if (ci + si) % 5 in (0, 1)
]
DETECTION_BASE = [c for c in DETECTION_ALL if c not in DETECTION_NOVEL]
DETECTION_FEWSHOT = DETECTION_NOVEL
GROUNDING_BASE_KINDS = ["name", "extreme"]
GROUNDING_REASONING_KINDS = ["size", "corners", "relation", "digit_value", "colour_match"]
GROUNDING_KINDS = GROUNDING_BASE_KINDS + GROUNDING_REASONING_KINDS

CLASSIFICATION_PROBLEM = "What is the object in the image? Answer with its class name."
DETECTION_PROBLEM = "Detect all objects belonging to the category '{category}' in the image."
GROUNDING_PROBLEM = "Find {expression} in the image."


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
    digit_angle: float = 15.0
    """Digits are rotated by up to this many degrees either way."""
    p_absent: float = 0.5
    """Detection: chance that an image also yields one query for a category it does not contain."""
    margin: float = 1.3
    """Grounding: a 'largest'/'smallest' object must beat the runner-up's area by this factor, and a
    'leftmost'-like one its runner-up's centre by (margin - 1) x its own box size."""


# ---------------------------------------------------------------- objects and scenes


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
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


def _crop(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


@lru_cache(maxsize=4096)
def _mask(shape: str, size: int, angle: float, digit_index: int | None) -> np.ndarray:
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
            k = SHAPES[shape]
            a0 = math.radians(angle) - math.pi / 2
            pts = [
                (c + r * math.cos(a0 + 2 * math.pi * i / k), c + r * math.sin(a0 + 2 * math.pi * i / k))
                for i in range(k)
            ]
            ImageDraw.Draw(im).polygon(pts, fill=1)
        mask = np.asarray(im) > 0
    mask = _crop(mask)
    mask.flags.writeable = False
    return mask


def mask_of(obj: ObjectSpec) -> np.ndarray:
    """The object's tight boolean mask, of shape [h, w] (read-only, cached)."""
    return _mask(obj.shape, obj.size, obj.angle, obj.digit_index)


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


def _iou(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


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
        if all(_iou(cand.box, p.box) <= cfg.max_iou and not _too_close(cand, p, cfg.min_gap) for p in placed):
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


def _image_size(rng: np.random.Generator, cfg: WorldConfig) -> tuple[int, int]:
    m = cfg.size_multiple
    lo, hi = -(-cfg.image_size[0] // m), cfg.image_size[1] // m
    w, h = rng.integers(lo, hi + 1, size=2)
    return int(w) * m, int(h) * m


def _background(rng: np.random.Generator) -> tuple[int, int, int]:
    g = int(rng.integers(95, 151))
    return tuple(int(v) for v in np.clip(g + rng.integers(-8, 9, size=3), 0, 255))


def _fit(cfg: WorldConfig, width: int, height: int) -> WorldConfig:
    """cfg with object sizes capped at a third of the shorter image side."""
    cap = min(width, height) // 3
    lo, hi = cfg.object_size
    return replace(cfg, object_size=(min(lo, cap), min(hi, cap)))


def layout_scene(
    rng: np.random.Generator, cfg: WorldConfig, objects: list[ObjectSpec], size: tuple[int, int] | None = None
) -> Scene:
    """Place `objects` (unplaced specs, in order; ones that do not fit are left out), and choose the
    background, clutter and noise. The scene's objects carry their exact boxes."""
    width, height = size or _image_size(rng, cfg)
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
    )


def render_scene(
    rng: np.random.Generator, cfg: WorldConfig, objects: list[ObjectSpec], size: tuple[int, int] | None = None
) -> tuple[Image.Image, Scene]:
    """`layout_scene`, then `draw`: the image and the scene."""
    scene = layout_scene(rng, cfg, objects, size)
    return draw(scene), scene


def draw(scene: Scene) -> Image.Image:
    """The RGB image of a scene: background, clutter, objects (flat colour through their masks), noise."""
    canvas = np.empty((scene.height, scene.width, 3), np.uint8)
    canvas[:] = scene.background
    for x, y, w, h, rgb in scene.clutter:
        canvas[y : y + h, x : x + w] = rgb
    for o in scene.objects:
        canvas[o.y : o.y + o.h, o.x : o.x + o.w][mask_of(o)] = o.rgb
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


def _box(o: ObjectSpec, category: str | None = None) -> Box:
    return Box(*(float(v) for v in o.box), category=category)


# ---------------------------------------------------------------- classification


def classification_scene(rng: np.random.Generator, cfg: WorldConfig, label: str) -> tuple[Image.Image, Scene]:
    """One main object of class `label` ("[shade ]colour shape" or "digit N"), big, placed at random,
    plus clutter."""
    width, height = _image_size(rng, cfg)
    side = min(width, height)
    size = int(rng.integers(int(cfg.class_object_frac[0] * side), int(cfg.class_object_frac[1] * side) + 1))
    words = label.split(" ")
    if words[0] == "digit" or len(words) == 2:
        obj = random_object(rng, cfg, label, size=size)
    else:
        obj = make_object(rng, cfg, words[2], words[1], words[0], size=size)
    return render_scene(rng, cfg, [obj], (width, height))


# ---------------------------------------------------------------- detection


def detection_scene(
    rng: np.random.Generator, cfg: WorldConfig, categories: list[str], first: str | None = None
) -> tuple[Image.Image, Scene]:
    """1-3 categories from `categories` (always `first` when given) with 1-max_instances instances each,
    plus 0-max_digits digits; at most cfg.max_objects objects in all."""
    width, height = _image_size(rng, cfg)
    fcfg = _fit(cfg, width, height)
    others = [c for c in categories if c != first]
    n_cat = int(rng.integers(1, min(3, len(categories)) + 1))
    chosen = ([first] if first else []) + [
        others[i] for i in rng.permutation(len(others))[: n_cat - bool(first)]
    ]
    objects = []
    for c in chosen:
        objects += [random_object(rng, fcfg, c) for _ in range(int(rng.integers(1, cfg.max_instances + 1)))]
    objects = objects[: cfg.max_objects]
    n_digits = min(int(rng.integers(0, cfg.max_digits + 1)), cfg.max_objects - len(objects))
    objects += [random_digit(rng, fcfg) for _ in range(n_digits)]
    return render_scene(rng, fcfg, objects, (width, height))


def detection_queries(
    rng: np.random.Generator, cfg: WorldConfig, scene: Scene, categories: list[str]
) -> list[DetectionTarget]:
    """One target per category of `categories` present in the scene (every instance, sorted by position),
    plus, with chance cfg.p_absent, one for a category that is absent (boxes=())."""
    present = sorted({o.category for o in scene.objects} & set(categories))
    targets = [
        DetectionTarget(
            tuple(sorted((_box(o, c) for o in scene.objects if o.category == c), key=lambda b: (b.y1, b.x1))),
            c,
        )
        for c in present
    ]
    absent = [c for c in categories if c not in present]
    if absent and rng.random() < cfg.p_absent:
        targets.append(DetectionTarget((), absent[rng.integers(len(absent))]))
    return targets


# ---------------------------------------------------------------- grounding

_RELATIONS = {  # relation -> (is o entirely on that side of a, axis along which the two must overlap)
    "to the left of": (lambda o, a: o[2] <= a[0], 1),
    "to the right of": (lambda o, a: o[0] >= a[2], 1),
    "above": (lambda o, a: o[3] <= a[1], 0),
    "below": (lambda o, a: o[1] >= a[3], 0),
}
_EXTREMES = {"leftmost": (0, -1), "rightmost": (0, 1), "topmost": (1, -1), "bottommost": (1, 1)}


def _desc(o: ObjectSpec) -> str:
    return o.category


def _of_class(objs: list[ObjectSpec], cls: str) -> list[int]:
    """Indices of the objects of a class: "object", "shape", "digit", or "<colour> shape"."""
    if cls == "object":
        return list(range(len(objs)))
    if cls in ("shape", "digit"):
        return [i for i, o in enumerate(objs) if o.kind == cls]
    colour = cls.split(" ")[0]
    return [i for i, o in enumerate(objs) if o.kind == "shape" and o.colour == colour]


def _classes(objs: list[ObjectSpec]) -> list[str]:
    return ["object", "shape", "digit"] + sorted({f"{o.colour} shape" for o in objs if o.kind == "shape"})


def _unique_names(objs: list[ObjectSpec]) -> list[int]:
    names = [_desc(o) for o in objs]
    return [i for i, n in enumerate(names) if names.count(n) == 1]


def _q_name(rng, cfg, objs):
    for i in rng.permutation(_unique_names(objs)):
        return f"the {_desc(objs[i])}", int(i), {"name": _desc(objs[i])}
    return None


def _q_extreme(rng, cfg, objs):
    combos = [(d, c) for d in _EXTREMES for c in _classes(objs)]
    for j in rng.permutation(len(combos)):
        direction, cls = combos[j]
        idx = _of_class(objs, cls)
        if len(idx) < 2:
            continue
        axis, sign = _EXTREMES[direction]
        centre = {i: sign * (objs[i].box[axis] + objs[i].box[axis + 2]) / 2 for i in idx}
        best, second = sorted(idx, key=lambda i: -centre[i])[:2]
        extent = objs[best].w if axis == 0 else objs[best].h
        if centre[best] - centre[second] >= (cfg.margin - 1) * extent:
            return f"the {direction} {cls}", best, {"direction": direction, "class": cls}
    return None


def _q_size(rng, cfg, objs):
    combos = [(w, c) for w in ("largest", "smallest") for c in _classes(objs)]
    for j in rng.permutation(len(combos)):
        which, cls = combos[j]
        idx = _of_class(objs, cls)
        if len(idx) < 2:
            continue
        areas = sorted(((objs[i].area, i) for i in idx), reverse=which == "largest")
        (a0, best), (a1, _) = areas[:2]
        if max(a0, a1) >= cfg.margin * min(a0, a1):
            return f"the {which} {cls}", best, {"which": which, "class": cls}
    return None


def _q_corners(rng, cfg, objs):
    idx = _of_class(objs, "shape")
    corners = [SHAPES[objs[i].shape] for i in idx]
    for which in rng.permutation(["most", "fewest"]) if len(idx) > 1 else []:
        target = max(corners) if which == "most" else min(corners)
        if corners.count(target) == 1:
            return f"the shape with the {which} corners", idx[corners.index(target)], {"which": str(which)}
    return None


def _q_relation(rng, cfg, objs):
    """'the digit below the red square': the only one of its class entirely on that side of the anchor,
    and it also overlaps the anchor along the other axis (directly below, not off to one side)."""
    anchors = _unique_names(objs)
    combos = [(a, r, c) for a in anchors for r in _RELATIONS for c in ("object", "shape", "digit")]
    for j in rng.permutation(len(combos)):
        a, rel, cls = combos[j]
        side, axis = _RELATIONS[rel]
        ab = objs[a].box
        hits = [i for i in _of_class(objs, cls) if i != a and side(objs[i].box, ab)]
        if len(hits) == 1 and _overlap(objs[hits[0]].box, ab, axis):
            anchor = _desc(objs[a])
            return f"the {cls} {rel} the {anchor}", hits[0], {"class": cls, "relation": rel, "anchor": anchor}
    return None


def _overlap(b, a, axis: int) -> bool:
    return b[axis] < a[axis + 2] and a[axis] < b[axis + 2]


def _q_digit_value(rng, cfg, objs):
    idx = _of_class(objs, "digit")
    values = [objs[i].digit for i in idx]
    for which in rng.permutation(["highest", "lowest"]) if len(idx) > 1 else []:
        target = max(values) if which == "highest" else min(values)
        if values.count(target) == 1:
            return f"the digit with the {which} value", idx[values.index(target)], {"which": str(which)}
    return None


def _q_colour_match(rng, cfg, objs):
    digits = [i for i in _unique_names(objs) if objs[i].kind == "digit"]
    for a in rng.permutation(digits):
        hits = [i for i in _of_class(objs, "shape") if objs[i].colour == objs[a].colour]
        if len(hits) == 1:
            anchor = _desc(objs[a])
            return f"the shape with the same colour as the {anchor}", hits[0], {"anchor": anchor}
    return None


QUERIES = {
    "name": _q_name,
    "extreme": _q_extreme,
    "size": _q_size,
    "corners": _q_corners,
    "relation": _q_relation,
    "digit_value": _q_digit_value,
    "colour_match": _q_colour_match,
}
"""Grounding query kinds: fn(rng, cfg, objects) -> (expression, index of the one object, params) or None."""


def grounding_scene(rng: np.random.Generator, cfg: WorldConfig) -> Scene:
    """3 to max_objects objects: shapes of any colour and 1-3 digits, in random order."""
    width, height = _image_size(rng, cfg)
    fcfg = _fit(cfg, width, height)
    n = int(rng.integers(3, max(3, cfg.max_objects) + 1))
    n_digits = int(rng.integers(1, 4))
    objects = [random_digit(rng, fcfg) for _ in range(n_digits)]
    objects += [random_object(rng, fcfg) for _ in range(n - n_digits)]
    return layout_scene(rng, fcfg, [objects[i] for i in rng.permutation(len(objects))], (width, height))


def grounding_example(rng: np.random.Generator, cfg: WorldConfig, kind: str, tries: int = 200):
    """(image, scene, expression, index, params) for a query of `kind`, drawing scenes until one has a
    query that matches exactly one object."""
    for _ in range(tries):
        scene = grounding_scene(rng, cfg)
        q = QUERIES[kind](rng, cfg, list(scene.objects))
        if q is not None:
            return (draw(scene), scene, *q)
    raise RuntimeError(f"no unique '{kind}' query in {tries} scenes; loosen the WorldConfig")


# ---------------------------------------------------------------- building JSONL files


def _rng(seed: int, name: str, i: int, *extra: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, zlib.crc32(name.encode()), i, *extra]))


def _round_robin(items: list[str], seed: int, name: str, i: int) -> str:
    """items[...] for image i: every item once per round of len(items) images, in a seeded order."""
    r, j = divmod(i, len(items))
    return items[int(_rng(seed, name, r, 1).permutation(len(items))[j])]


_SPLITS = {
    "classification": (("base", CLASSIFICATION_BASE), ("fewshot", CLASSIFICATION_FEWSHOT)),
    "detection": (("base", DETECTION_BASE), ("novel", DETECTION_NOVEL)),
    "grounding": (("base", GROUNDING_BASE_KINDS), ("reasoning", GROUNDING_REASONING_KINDS)),
}


def split_of(task: str, categories: list[str]) -> str:
    """Which list of the world `categories` come from ("base", "fewshot", "novel", "reasoning"), or "mixed"."""
    for split, names in _SPLITS[task]:
        if set(categories) <= set(names):
            return split
    return "mixed"


def _slug(text: str) -> str:
    return text.replace(" ", "_")


def _samples(
    task: str, images_dir: Path, name: str, n: int, seed: int, categories: list[str], cfg: WorldConfig
):
    split = split_of(task, categories)
    count, i = 0, 0
    while count < n:
        rng = _rng(seed, name, i)
        item = _round_robin(categories, seed, name, i)
        path = images_dir / f"{name}-{i:06d}.png"
        if task == "classification":
            image, scene = classification_scene(rng, cfg, item)
            items = [(f"{name}-{i:06d}", CLASSIFICATION_PROBLEM, ClassTarget(item), {"split": split})]
        elif task == "detection":
            image, scene = detection_scene(rng, cfg, categories, first=item)
            graph = scene_graph(scene)
            items = [
                (
                    f"{name}-{i:06d}-{_slug(t.category)}",
                    DETECTION_PROBLEM.format(category=t.category),
                    t,
                    {"split": split, "objects": graph},
                )
                for t in detection_queries(rng, cfg, scene, categories)
            ]
        else:
            image, scene, expr, index, params = grounding_example(rng, cfg, item)
            meta = {"split": split, "kind": item, "query": params, "objects": scene_graph(scene)}
            target = GroundingTarget(_box(scene.objects[index]))
            items = [(f"{name}-{i:06d}", GROUNDING_PROBLEM.format(expression=expr), target, meta)]
        image.save(path, format="PNG")
        for sid, problem, target, meta in items[: n - count]:
            yield Sample(sid, [str(path)], task, problem, target, scene.width, scene.height, meta)
            count += 1
        i += 1


def build(
    task: str,
    out_dir,
    n: int,
    *,
    seed: int,
    categories: list[str] | None = None,
    cfg: WorldConfig | None = None,
    name: str | None = None,
) -> Path:
    """Write `n` samples of `task` to out_dir/<name>.jsonl, images to out_dir/images/<name>-<i>.png.

    `categories`: classification labels, detection categories, or grounding kinds (defaults:
    CLASSIFICATION_BASE, DETECTION_BASE, GROUNDING_BASE_KINDS). Images cycle through them in seeded
    rounds, so every class/category/kind gets n / len(categories) images. Detection counts queries:
    an image yields one per category present (and maybe one absent), so n samples use fewer images.
    `name` (default: the task) names the files and selects the random stream together with `seed`.
    meta["split"] says which list the categories come from ("base", "fewshot", "novel", "reasoning").
    """
    defaults = {
        "classification": CLASSIFICATION_BASE,
        "detection": DETECTION_BASE,
        "grounding": GROUNDING_BASE_KINDS,
    }
    if task not in defaults:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(defaults)}")
    categories = list(categories or defaults[task])
    if task == "grounding" and not set(categories) <= set(QUERIES):
        raise ValueError(
            f"unknown grounding kinds {sorted(set(categories) - set(QUERIES))}; known: {list(QUERIES)}"
        )
    name = name or task
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.jsonl"
    write_samples(path, _samples(task, out_dir / "images", name, n, seed, categories, cfg or WorldConfig()))
    return path


def build_suite(
    out_dir,
    seed: int = 0,
    *,
    n_pretrain: int = 2000,
    n_test: int = 200,
    shots: tuple[int, ...] = (1, 2, 4, 8, 16),
    cfg: WorldConfig | None = None,
) -> dict[str, Path]:
    """Everything the experiments need, in one folder, returned as {name: JSONL path}:

    - cls_base_train / cls_base_test: CLASSIFICATION_BASE (pre-training);
    - cls_fewshot_pool, cls_fewshot_{k}shot, cls_fewshot_test: CLASSIFICATION_FEWSHOT;
    - det_base_train / det_base_test: DETECTION_BASE (pre-training, and open-vocabulary training);
    - det_novel_pool, det_novel_{k}shot, det_novel_test: DETECTION_NOVEL (few-shot and OVD evaluation);
    - grd_base_train / grd_base_test: GROUNDING_BASE_KINDS (pre-training);
    - grd_reason_pool, grd_reason_{k}shot, grd_reason_test: GROUNDING_REASONING_KINDS;
    - det_ovd_pool, det_ovd_{k}shot, det_ovd_test: DETECTION_BASE, a few-shot training set for the
      open-vocabulary experiment (a stream apart from det_base_train), and ovd_test: det_novel_test and
      det_ovd_test interleaved (a query on a novel category, then one on a base category, ...), so the
      evaluation reports mAP on novel and base categories side by side, also under a `limit`.

    Pools hold max(shots) per class/category/kind (a few more for detection); the k-shot files are
    nested (see `visual_rft.data.splits`). Test files are separate random streams. Also writes
    world.json with the class and category lists.
    """
    from visual_rft.data.jsonl import read_samples
    from visual_rft.data.splits import write_nested

    out_dir = Path(out_dir)
    k = max(shots)
    paths: dict[str, Path] = {}
    plan = [
        ("cls_base", "classification", CLASSIFICATION_BASE, n_pretrain, None),
        ("cls_fewshot", "classification", CLASSIFICATION_FEWSHOT, None, k * len(CLASSIFICATION_FEWSHOT)),
        ("det_base", "detection", DETECTION_BASE, n_pretrain, None),
        ("det_novel", "detection", DETECTION_NOVEL, None, 3 * k * len(DETECTION_NOVEL)),
        ("grd_base", "grounding", GROUNDING_BASE_KINDS, n_pretrain, None),
        ("grd_reason", "grounding", GROUNDING_REASONING_KINDS, None, k * len(GROUNDING_REASONING_KINDS)),
        ("det_ovd", "detection", DETECTION_BASE, None, 3 * k * len(DETECTION_BASE)),
    ]
    for prefix, task, cats, n_train, n_pool in plan:
        if n_pool is None:  # a pre-training set (skipped when n_pretrain is 0)
            if n_train:
                paths[f"{prefix}_train"] = build(
                    task, out_dir, n_train, seed=seed, categories=cats, cfg=cfg, name=f"{prefix}_train"
                )
        else:
            pool = build(task, out_dir, n_pool, seed=seed, categories=cats, cfg=cfg, name=f"{prefix}_pool")
            paths[f"{prefix}_pool"] = pool
            for shot, p in write_nested(read_samples(pool), out_dir, prefix, shots, seed=seed).items():
                paths[f"{prefix}_{shot}shot"] = p
        paths[f"{prefix}_test"] = build(
            task, out_dir, n_test, seed=seed, categories=cats, cfg=cfg, name=f"{prefix}_test"
        )
    novel, base = read_samples(paths["det_novel_test"]), read_samples(paths["det_ovd_test"])
    mixed = [s for pair in zip(novel, base) for s in pair]
    write_samples(out_dir / "ovd_test.jsonl", mixed)
    paths["ovd_test"] = out_dir / "ovd_test.jsonl"
    lists = {
        "classification_base": CLASSIFICATION_BASE,
        "classification_fewshot": CLASSIFICATION_FEWSHOT,
        "detection_base": DETECTION_BASE,
        "detection_novel": DETECTION_NOVEL,
        "grounding_base_kinds": GROUNDING_BASE_KINDS,
        "grounding_reasoning_kinds": GROUNDING_REASONING_KINDS,
        "files": {key: p.name for key, p in paths.items()},
    }
    (out_dir / "world.json").write_text(json.dumps(lists, indent=1) + "\n")
    return paths


__all__ = [
    "WorldConfig",
    "ObjectSpec",
    "Scene",
    "render_scene",
    "draw",
    "mask_of",
    "build",
    "build_suite",
    "CLASSIFICATION_BASE",
    "CLASSIFICATION_FEWSHOT",
    "DETECTION_BASE",
    "DETECTION_NOVEL",
    "DETECTION_FEWSHOT",
    "GROUNDING_BASE_KINDS",
    "GROUNDING_REASONING_KINDS",
    "COLOURS",
    "SHAPES",
]
