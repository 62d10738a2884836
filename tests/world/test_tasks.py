"""The scenes and queries of each task (visual_rft/world/tasks.py): detection queries match the scene,
base data shows no novel category, grounding instructions refer to exactly one object."""

import numpy as np

from visual_rft import world as W
from visual_rft.data.jsonl import read_samples
from visual_rft.data.types import DetectionTarget, GroundingTarget

MARGIN = 0.3  # a 'largest' object is 1.3 x the runner-up's area; a 'leftmost' one 0.3 x its width ahead
CORNERS = {"circle": 0, "triangle": 3, "square": 4, "star": 10, "cross": 12}


def test_detection_queries_match_the_scene(files):
    samples = read_samples(files["det_base"])
    assert any(not s.target.boxes for s in samples), "no 'No Objects' query"
    assert any(len(s.target.boxes) >= 2 for s in samples)
    for s in samples:
        assert isinstance(s.target, DetectionTarget) and s.target.category in s.problem
        in_scene = sorted(
            tuple(o["box"])
            for o in s.meta["objects"]
            if o["kind"] == "shape" and f"{o['colour']} {o['shape']}" == s.target.category
        )
        assert sorted(tuple(int(v) for v in b.xyxy) for b in s.target.boxes) == in_scene


def test_ovd_novel_categories_never_in_base_data(files):
    assert not set(W.DETECTION_BASE) & set(W.DETECTION_NOVEL)
    assert sorted(W.DETECTION_BASE + W.DETECTION_NOVEL) == sorted(W.DETECTION_ALL)
    base_colours = {c.split()[0] for c in W.DETECTION_BASE}
    base_shapes = {c.split()[1] for c in W.DETECTION_BASE}
    assert all(c.split()[0] in base_colours and c.split()[1] in base_shapes for c in W.DETECTION_NOVEL)
    base = read_samples(files["det_base"])
    assert {s.meta["split"] for s in base} == {"base"}
    assert not {s.target.category for s in base} & set(W.DETECTION_NOVEL)
    shown = {f"{o['colour']} {o['shape']}" for s in base for o in s.meta["objects"] if o["kind"] == "shape"}
    assert not shown & set(W.DETECTION_NOVEL)
    novel = read_samples(files["det_novel"])
    assert {s.meta["split"] for s in novel} == {"novel"}
    assert {s.target.category for s in novel} <= set(W.DETECTION_NOVEL)


# ---------------------------------------------------------------- grounding, re-checked independently


def members(objs, cls):
    if cls == "object":
        return objs
    if cls in ("shape", "digit"):
        return [o for o in objs if o["kind"] == cls]
    return [o for o in objs if o["kind"] == "shape" and o["colour"] == cls.split()[0]]


def name(o):
    return f"digit {o['digit']}" if o["kind"] == "digit" else f"{o['colour']} {o['shape']}"


def centre(o, axis):
    return (o["box"][axis] + o["box"][axis + 2]) / 2


def referents(kind, q, objs):
    """The objects a grounding query refers to, from the scene graph alone (an independent reading)."""
    if kind == "name":
        return [o for o in objs if name(o) == q["name"]]
    if kind == "extreme":
        axis, sign = {"leftmost": (0, -1), "rightmost": (0, 1), "topmost": (1, -1), "bottommost": (1, 1)}[
            q["direction"]
        ]
        cands = members(objs, q["class"])
        best = max(cands, key=lambda o: sign * centre(o, axis))
        extent = best["box"][axis + 2] - best["box"][axis]
        # everything not clearly beyond the runner-up (by 0.3 of the object's own size) is a referent
        return [o for o in cands if sign * (centre(best, axis) - centre(o, axis)) < MARGIN * extent]
    if kind == "size":
        cands = members(objs, q["class"])
        pick = max if q["which"] == "largest" else min
        best = pick(o["area"] for o in cands)
        return [o for o in cands if max(o["area"], best) < (1 + MARGIN) * min(o["area"], best)]
    if kind == "corners":
        cands = members(objs, "shape")
        pick = max if q["which"] == "most" else min
        best = pick(CORNERS[o["shape"]] for o in cands)
        return [o for o in cands if CORNERS[o["shape"]] == best]
    if kind == "relation":
        (anchor,) = [o for o in objs if name(o) == q["anchor"]]
        a = anchor["box"]
        test = {
            "to the left of": lambda b: b[2] <= a[0],
            "to the right of": lambda b: b[0] >= a[2],
            "above": lambda b: b[3] <= a[1],
            "below": lambda b: b[1] >= a[3],
        }[q["relation"]]
        hits = [o for o in members(objs, q["class"]) if o is not anchor and test(o["box"])]
        axis = 1 if "left" in q["relation"] or "right" in q["relation"] else 0
        directly = [o for o in hits if o["box"][axis] < a[axis + 2] and a[axis] < o["box"][axis + 2]]
        return hits if directly == hits else []  # e.g. 'below' but off to one side: not a clear referent
    if kind == "digit_value":
        digits = members(objs, "digit")
        pick = max if q["which"] == "highest" else min
        return [o for o in digits if o["digit"] == pick(d["digit"] for d in digits)]
    if kind == "colour_match":
        (anchor,) = [o for o in objs if name(o) == q["anchor"]]
        return [o for o in members(objs, "shape") if o["colour"] == anchor["colour"]]
    raise AssertionError(kind)


def test_grounding_instructions_refer_to_exactly_one_object(files):
    samples = read_samples(files["grd"])
    assert {s.meta["kind"] for s in samples} == set(W.GROUNDING_KINDS)
    for s in samples:
        assert isinstance(s.target, GroundingTarget)
        hits = referents(s.meta["kind"], s.meta["query"], s.meta["objects"])
        assert len(hits) == 1, (s.problem, s.meta)
        assert hits[0]["box"] == [int(v) for v in s.target.box.xyxy]


def test_single_kind_asks_for_the_one_object_of_its_scene(tmp_path):
    samples = read_samples(W.build("grounding", tmp_path, 12, seed=3, categories=["single"], name="single"))
    assert {s.meta["split"] for s in samples} == {"base"}  # pre-training data, like the base kinds
    for s in samples:
        (obj,) = s.meta["objects"]
        assert (
            obj["kind"] == "shape" and s.problem == f"Find the {obj['colour']} {obj['shape']} in the image."
        )
        assert [int(v) for v in s.target.box.xyxy] == obj["box"]
    assert len({tuple(s.meta["objects"][0]["box"]) for s in samples}) == 12  # anywhere, not one place


def test_pair_kind_asks_by_name_for_one_of_exactly_two_differently_named_objects(tmp_path):
    samples = read_samples(W.build("grounding", tmp_path, 30, seed=4, categories=["pair"], name="pair"))
    assert {s.meta["split"] for s in samples} == {"base"}
    asked_first = []
    for s in samples:
        a, b = s.meta["objects"]
        assert name(a) != name(b) and "shape" in (a["kind"], b["kind"])
        (target,) = referents("name", s.meta["query"], s.meta["objects"])
        assert s.problem == f"Find the {name(target)} in the image."
        assert [int(v) for v in s.target.box.xyxy] == target["box"]
        asked_first.append(target is a)
    assert 0 < sum(asked_first) < len(asked_first)  # the asked one is not always first in the scene's order


def test_ambiguous_queries_are_refused(make_object):
    obj = make_object
    objs = [
        obj("digit", "digit", "red", 0, 7),
        obj("digit", "digit", "blue", 50, 7),
        obj("shape", "circle", "red", 100),
        obj("shape", "square", "red", 150),
    ]
    rng = np.random.Generator(np.random.PCG64(0))
    cfg = W.WorldConfig()
    assert W.QUERIES["digit_value"](rng, cfg, objs) is None  # two 7s: no single highest digit
    assert W.QUERIES["colour_match"](rng, cfg, objs) is None  # 'digit 7' is not unique
    assert W.QUERIES["corners"](rng, cfg, objs)[1] in (2, 3)
    expr, index, _ = W.QUERIES["name"](rng, cfg, objs)
    assert index in (2, 3) and expr in ("the red circle", "the red square")
