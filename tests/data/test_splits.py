"""k-shot splits: exactly k per class, nested, seeded, order-free, disjoint from test sets, clear errors."""

import random

import numpy as np
import pytest
from PIL import Image

from visual_rft import world as W
from visual_rft.data.jsonl import read_samples
from visual_rft.data.splits import k_shot, nested_splits, shot_key, write_nested
from visual_rft.data.types import Box, ClassTarget, DetectionTarget, GroundingTarget, Sample

KS = (1, 2, 4, 8, 16)


def cls_pool(per_class=20, classes=("a", "b", "c")):
    return [
        Sample(f"{c}-{i}", [f"{c}{i}.png"], "classification", "?", ClassTarget(c))
        for c in classes
        for i in range(per_class)
    ]


def det_pool(per_cat=20):
    out = []
    for c in ("red circle", "blue square"):
        for i in range(per_cat):
            boxes = () if i % 4 == 0 else (Box(0, 0, 10, 10, c),) * (1 + i % 3)
            out.append(Sample(f"{c}-{i}", [f"{i}.png"], "detection", "?", DetectionTarget(boxes, c)))
    return out


def count(samples):
    keys = [shot_key(s) for s in samples]
    return {k: keys.count(k) for k in set(keys)}


def ids(samples):
    return {s.id for s in samples}


def test_exactly_k_per_class_and_nested():
    splits = nested_splits(cls_pool(), KS, seed=0)
    for k in KS:
        assert count(splits[k]) == {"a": k, "b": k, "c": k}
    for small, big in zip(KS, KS[1:]):
        assert ids(splits[small]) < ids(splits[big])


def test_deterministic_order_free_and_seeded():
    pool = cls_pool()
    shuffled = pool[:]
    random.Random(5).shuffle(shuffled)
    assert [s.id for s in k_shot(pool, 4, seed=1)] == [s.id for s in k_shot(shuffled, 4, seed=1)]
    assert ids(k_shot(pool, 4, seed=1)) != ids(k_shot(pool, 4, seed=2))


def test_too_few_samples_names_the_class():
    pool = cls_pool(20, ("a", "b")) + cls_pool(3, ("rare",))
    assert count(k_shot(pool, 3)) == {"a": 3, "b": 3, "rare": 3}
    with pytest.raises(ValueError, match="'rare' \\(3\\)"):
        k_shot(pool, 4)
    with pytest.raises(ValueError):
        k_shot(pool, 0)


def test_detection_counts_positive_queries_and_adds_negatives_on_request():
    pool = det_pool()
    split = k_shot(pool, 8, seed=0)
    assert count(split) == {"red circle": 8, "blue square": 8}
    assert all(s.target.boxes for s in split)
    with_neg = k_shot(pool, 8, seed=0, negatives=2)
    assert sum(not s.target.boxes for s in with_neg) == 4
    assert ids(split) < ids(with_neg)
    with pytest.raises(ValueError, match="negative"):
        k_shot(pool, 8, negatives=6)  # only 5 negatives per category


def test_grounding_is_keyed_by_kind():
    pool = [
        Sample(
            f"g{i}",
            ["x.png"],
            "grounding",
            "?",
            GroundingTarget(Box(0, 0, 5, 5)),
            meta={"kind": ["size", "relation"][i % 2]},
        )
        for i in range(10)
    ]
    assert count(k_shot(pool, 2)) == {"size": 2, "relation": 2}
    plain = [
        Sample(f"g{i}", ["x.png"], "grounding", "?", GroundingTarget(Box(0, 0, 5, 5))) for i in range(10)
    ]
    assert len(k_shot(plain, 4)) == 4


def test_world_splits_are_disjoint_from_test_sets(tmp_path):
    classes = W.CLASSIFICATION_FEWSHOT[:4]
    pool = read_samples(W.build("classification", tmp_path, 16, seed=0, categories=classes, name="pool"))
    test = read_samples(W.build("classification", tmp_path, 16, seed=0, categories=classes, name="test"))
    paths = write_nested(pool, tmp_path, "cls", (1, 2, 4), seed=0)
    four = read_samples(paths[4])
    assert count(four) == dict.fromkeys(classes, 4)
    assert ids(read_samples(paths[1])) < ids(read_samples(paths[2])) < ids(four)

    def pix(s):
        with Image.open(s.image) as im:
            return np.asarray(im).tobytes()

    assert not {pix(s) for s in four} & {pix(s) for s in test}
    assert not {s.image for s in four} & {s.image for s in test}
