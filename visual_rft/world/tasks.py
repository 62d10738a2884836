"""The scenes and queries of each task: one big object to classify; categories to detect among
distractors; grounding instructions verified to match exactly one object (`QUERIES`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from visual_rft.data.types import Box, DetectionTarget
from visual_rft.world.scene import (
    ObjectSpec,
    Scene,
    WorldConfig,
    draw,
    fit_objects,
    image_size,
    layout_scene,
    make_object,
    random_digit,
    random_object,
    render_scene,
)
from visual_rft.world.vocab import SHAPES


def box_of(o: ObjectSpec, category: str | None = None) -> Box:
    """The object's exact box as a `Box` of floats."""
    return Box(*(float(v) for v in o.box), category=category)


# ---------------------------------------------------------------- classification


def classification_scene(rng: np.random.Generator, cfg: WorldConfig, label: str) -> tuple[Image.Image, Scene]:
    """One main object of class `label` ("[shade ]colour shape" or "digit N"), big, placed at random,
    plus clutter."""
    width, height = image_size(rng, cfg)
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
    width, height = image_size(rng, cfg)
    fcfg = fit_objects(cfg, width, height)
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
            tuple(
                sorted((box_of(o, c) for o in scene.objects if o.category == c), key=lambda b: (b.y1, b.x1))
            ),
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


def _q_single(rng, cfg, objs):
    return f"the {_desc(objs[0])}", 0, {"name": _desc(objs[0])}


def _q_pair(rng, cfg, objs):
    """'the red circle' of a scene where exactly two objects were placed, with different names."""
    return _q_name(rng, cfg, objs) if len(_unique_names(objs)) == 2 else None


QUERIES = {
    "single": _q_single,
    "pair": _q_pair,
    "name": _q_name,
    "extreme": _q_extreme,
    "size": _q_size,
    "corners": _q_corners,
    "relation": _q_relation,
    "digit_value": _q_digit_value,
    "colour_match": _q_colour_match,
}
"""Grounding query kinds: fn(rng, cfg, objects) -> (expression, index of the one object, params) or None.
"single" is asked of a scene with one object (`SCENES`): nothing to tell apart, only where it is
to read (the base's first grounding stage, a curriculum step before scenes of several objects); "pair"
asks by name for one of two objects: the next step, one object to tell from one other."""


def grounding_scene(rng: np.random.Generator, cfg: WorldConfig) -> Scene:
    """3 to max_objects objects: shapes of any colour and 1-3 digits, in random order."""
    width, height = image_size(rng, cfg)
    fcfg = fit_objects(cfg, width, height)
    n = int(rng.integers(3, max(3, cfg.max_objects) + 1))
    n_digits = int(rng.integers(1, 4))
    objects = [random_digit(rng, fcfg) for _ in range(n_digits)]
    objects += [random_object(rng, fcfg) for _ in range(n - n_digits)]
    return layout_scene(rng, fcfg, [objects[i] for i in rng.permutation(len(objects))], (width, height))


def single_object_scene(rng: np.random.Generator, cfg: WorldConfig) -> Scene:
    """One shape of any colour, anywhere (the "single" grounding kind's scene)."""
    width, height = image_size(rng, cfg)
    fcfg = fit_objects(cfg, width, height)
    return layout_scene(rng, fcfg, [random_object(rng, fcfg)], (width, height))


def pair_scene(rng: np.random.Generator, cfg: WorldConfig) -> Scene:
    """A shape and a second object (a shape or, one time in three, a digit), in random order (the "pair"
    grounding kind's scene)."""
    width, height = image_size(rng, cfg)
    fcfg = fit_objects(cfg, width, height)
    second = random_digit(rng, fcfg) if rng.random() < 1 / 3 else random_object(rng, fcfg)
    objects = [random_object(rng, fcfg), second]
    return layout_scene(rng, fcfg, [objects[i] for i in rng.permutation(2)], (width, height))


SCENES = {"single": single_object_scene, "pair": pair_scene}
"""The scene a grounding kind is asked of, where it is not `grounding_scene`."""


def grounding_example(rng: np.random.Generator, cfg: WorldConfig, kind: str, tries: int = 200):
    """(image, scene, expression, index, params) for a query of `kind`, drawing scenes until one has a
    query that matches exactly one object."""
    draw_scene = SCENES.get(kind, grounding_scene)
    for _ in range(tries):
        scene = draw_scene(rng, cfg)
        q = QUERIES[kind](rng, cfg, list(scene.objects))
        if q is not None:
            return (draw(scene), scene, *q)
    raise RuntimeError(f"no unique '{kind}' query in {tries} scenes; loosen the WorldConfig")
