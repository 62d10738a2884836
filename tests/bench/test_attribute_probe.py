"""bench/attribute_probe.py: one-word questions about one object of a scene, and their scoring."""

import json
from pathlib import Path

import numpy as np

import visual_rft.world as W
from visual_rft.data.jsonl import read_samples


def test_questions_ask_about_the_only_object_they_describe(load_bench, make_object):
    obj = make_object
    bench = load_bench("attribute_probe")
    objs = [
        obj("shape", "star", "red", 0),
        obj("shape", "star", "blue", 30),
        obj("shape", "circle", "red", 60),
        obj("digit", "digit", "green", 90, 7),
        obj("shape", "square", "yellow", 120),
    ]
    asked = set()
    for seed in range(40):
        question, answer, i = bench.attribute_query(np.random.default_rng(seed), objs)
        asked.add((question, answer, i))
    # stars are two and red is two: only the circle's and the square's colour, and the blue and yellow
    # objects' shapes can be asked
    assert asked == {
        ("What colour is the circle in the image? Answer with one word.", "red", 2),
        ("What colour is the square in the image? Answer with one word.", "yellow", 4),
        ("What shape is the blue object in the image? Answer with one word.", "star", 1),
        ("What shape is the yellow object in the image? Answer with one word.", "square", 4),
    }
    same = [obj("shape", "star", "red", 0), obj("shape", "star", "red", 30)]
    assert bench.attribute_query(np.random.default_rng(0), same) is None


def test_built_questions_are_classification_samples_with_their_scene(load_bench, tmp_path):
    bench = load_bench("attribute_probe")
    path = bench.build_attributes(tmp_path / "a", 6, seed=1)
    assert bench.build_attributes(tmp_path / "b", 6, seed=1).read_text() == path.read_text().replace(
        str(tmp_path / "a"), str(tmp_path / "b")
    )  # seeded per image
    for s in read_samples(path):
        assert s.task == "classification" and (s.meta["box"] in [o["box"] for o in s.meta["objects"]])
        asked = next(o for o in s.meta["objects"] if o["box"] == s.meta["box"])
        kind = "colour" if s.problem.startswith("What colour") else "shape"
        assert s.target.label == asked[kind] and asked["kind"] == "shape"
    grounding = W.build("grounding", tmp_path / "g", 3, seed=2, categories=["pair"], name="pair")
    mixed = read_samples(bench.mix_in(path, grounding, 2))
    assert [s.task for s in mixed] == ["classification"] * 6 + ["grounding"] * 2
    assert all(p.exists() for s in mixed for p in map(Path, s.images))


def test_scores_count_right_answers_and_what_a_random_shape_would_score(load_bench, tmp_path):
    objects = [
        {"kind": "shape", "colour": "red", "shape": "star", "box": [0, 0, 9, 9]},
        {"kind": "shape", "colour": "red", "shape": "circle", "box": [20, 0, 29, 9]},
        {"kind": "shape", "colour": "blue", "shape": "square", "box": [40, 0, 49, 9]},
        {"kind": "digit", "colour": "red", "shape": "digit", "box": [60, 0, 69, 9]},
    ]
    rows = [
        ("What colour is the star in the image?", "red", "<answer>Red</answer>"),  # right: 2 of 3 shapes red
        ("What colour is the square in the image?", "blue", "<answer>red</answer>"),  # wrong: 1 of 3 blue
        ("What shape is the blue object in the image?", "square", "no answer"),  # none: 1 of 3 squares
    ]
    path = tmp_path / "completions.jsonl"
    path.write_text(
        "".join(
            json.dumps(
                {
                    "completion": c,
                    "sample": {"problem": q, "target": {"label": a}, "meta": {"objects": objects}},
                }
            )
            + "\n"
            for q, a, c in rows
        )
    )
    s = load_bench("attribute_probe").score(path)
    assert (
        s["colour_n"] == 2
        and s["colour_accuracy"] == 0.5
        and np.isclose(s["colour_random_shape"], (2 / 3 + 1 / 3) / 2)
    )
    assert s["shape_n"] == 1 and s["shape_accuracy"] == 0.0 and np.isclose(s["shape_random_shape"], 1 / 3)
