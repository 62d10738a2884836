"""The synthetic world: determinism, exact boxes, valid files, unique grounding, the category splits."""

from dataclasses import replace
from itertools import combinations

import numpy as np
import pytest
from PIL import Image

from visual_rft import world as W
from visual_rft.data.boxes import iou
from visual_rft.data.jsonl import check_file, read_samples
from visual_rft.data.types import ClassTarget, DetectionTarget, GroundingTarget

MARGIN = 0.3  # a 'largest' object is 1.3 x the runner-up's area; a 'leftmost' one 0.3 x its width ahead
CORNERS = {"circle": 0, "triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def bbox_of(changed: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(changed)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    return {
        "cls": W.build("classification", out, 48, seed=3, categories=W.CLASSIFICATION_FEWSHOT),
        "det_base": W.build("detection", out, 60, seed=3, categories=W.DETECTION_BASE, name="det_base"),
        "det_novel": W.build("detection", out, 40, seed=3, categories=W.DETECTION_NOVEL, name="det_novel"),
        "grd": W.build("grounding", out, 140, seed=3, categories=W.GROUNDING_KINDS),
    }


# ---------------------------------------------------------------- determinism


def test_same_seed_same_bytes_and_pixels(tmp_path):
    noisy = W.WorldConfig(noise=4.0)
    a = W.build("detection", tmp_path / "a", 12, seed=7, cfg=noisy)
    b = W.build("detection", tmp_path / "b", 12, seed=7, cfg=noisy)
    c = W.build("detection", tmp_path / "c", 12, seed=8, cfg=noisy)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    for sa, sb in zip(read_samples(a), read_samples(b)):
        np.testing.assert_array_equal(pixels(sa.image), pixels(sb.image))
    assert not all(
        np.array_equal(pixels(sa.image), pixels(sc.image)) for sa, sc in zip(read_samples(a), read_samples(c))
    )


def test_longer_file_extends_shorter_and_names_are_streams(tmp_path):
    short = read_samples(W.build("grounding", tmp_path / "short", 4, seed=0, name="g"))
    long = read_samples(W.build("grounding", tmp_path / "long", 8, seed=0, name="g"))
    assert [s.target for s in short] == [s.target for s in long[:4]]
    assert [s.problem for s in short] == [s.problem for s in long[:4]]
    other = read_samples(W.build("grounding", tmp_path / "short", 4, seed=0, name="other"))
    assert [s.target for s in other] != [s.target for s in short]


# ---------------------------------------------------------------- exact ground truth


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


# ---------------------------------------------------------------- the files


@pytest.mark.parametrize("key", ["cls", "det_base", "det_novel", "grd"])
def test_files_pass_check_file(files, key):
    n, errors = check_file(files[key])
    assert n > 0 and errors == []
    for s in read_samples(files[key]):
        assert s.width and s.height
        assert s.width % 28 == 0 and s.height % 28 == 0 and 112 <= min(s.width, s.height) <= 224
        with Image.open(s.image) as im:
            assert im.size == (s.width, s.height)


def test_classification_labels_are_balanced_class_names(files):
    samples = read_samples(files["cls"])
    labels = [s.target.label for s in samples]
    assert all(isinstance(s.target, ClassTarget) for s in samples)
    assert sorted(set(labels)) == sorted(W.CLASSIFICATION_FEWSHOT)
    assert all(labels.count(c) == 2 for c in W.CLASSIFICATION_FEWSHOT)  # 48 = 2 rounds of 24
    assert "answer with its class name" in samples[0].problem.lower()


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


def test_fewshot_classes_are_finer_than_base_and_new_compositions_of_its_words():
    assert len(W.CLASSIFICATION_BASE) == 25 + 26 and len(W.CLASSIFICATION_FEWSHOT) == 24
    assert not set(W.CLASSIFICATION_BASE) & set(W.CLASSIFICATION_FEWSHOT)
    assert all(c.split(" ", 1)[1] in W.CLASSIFICATION_BASE for c in W.CLASSIFICATION_FEWSHOT)
    base_words = {w for c in W.CLASSIFICATION_BASE for w in c.split()}
    assert {"dark", "light"} <= base_words
    assert all(set(c.split()) <= base_words for c in W.CLASSIFICATION_FEWSHOT)


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


def test_ambiguous_queries_are_refused():
    def obj(kind, shape, colour, x, digit=None):
        return W.ObjectSpec(
            kind,
            shape,
            colour,
            "mid",
            W.COLOURS[colour],
            30,
            0.0,
            digit,
            0 if digit else None,
            x=x,
            y=10,
            w=20,
            h=20,
        )

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


def test_unknown_task_and_kind_are_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        W.build("segmentation", tmp_path, 1, seed=0)
    with pytest.raises(ValueError, match="unknown grounding kinds"):
        W.build("grounding", tmp_path, 1, seed=0, categories=["counting"])


def test_build_suite_is_complete_and_tests_are_unseen(tmp_path):
    paths = W.build_suite(tmp_path, seed=1, n_pretrain=10, n_test=10, shots=(1, 2))
    for prefix in ("cls_base", "det_base", "grd_base"):
        assert {f"{prefix}_train", f"{prefix}_test"} <= set(paths)
    for prefix in ("cls_fewshot", "det_novel", "grd_reason", "det_ovd"):
        assert {f"{prefix}_pool", f"{prefix}_1shot", f"{prefix}_2shot", f"{prefix}_test"} <= set(paths)
    for p in paths.values():
        assert check_file(p)[1] == []
    assert (tmp_path / "world.json").is_file()
    train = {
        pixels(s.image).tobytes() for k in paths if not k.endswith("test") for s in read_samples(paths[k])
    }
    test = {pixels(s.image).tobytes() for k in paths if k.endswith("test") for s in read_samples(paths[k])}
    assert not train & test


def test_build_suite_without_pretraining_sets(tmp_path):
    from visual_rft.world import build_suite

    paths = build_suite(tmp_path, seed=0, n_pretrain=0, n_test=4, shots=(1,))
    assert not any(k.endswith("_train") for k in paths)
    assert {"det_novel_1shot", "det_novel_test", "cls_fewshot_1shot", "grd_reason_test"} <= set(paths)


def test_open_vocabulary_files_split_base_and_novel(tmp_path):
    """det_ovd trains on base categories; ovd_test alternates novel and base queries, marked by meta split."""
    paths = W.build_suite(tmp_path, seed=0, n_pretrain=0, n_test=6, shots=(1,))
    train = read_samples(paths["det_ovd_1shot"])
    assert {s.target.category for s in train} == set(W.DETECTION_BASE)
    test = read_samples(paths["ovd_test"])
    assert [s.meta["split"] for s in test] == ["novel", "base"] * 6
    novel = read_samples(paths["det_novel_test"])
    assert [s.id for s in test[::2]] == [s.id for s in novel]
    for s in test:
        assert s.target.category in (W.DETECTION_NOVEL if s.meta["split"] == "novel" else W.DETECTION_BASE)
