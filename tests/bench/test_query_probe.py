"""bench/query_probe.py: what the position that writes a box's first digit knows of the question."""

import json

import numpy as np

from visual_rft.data.jsonl import read_samples
from visual_rft.world import build


def test_attributes_name_a_shape_or_a_digit(load_bench):
    attributes = load_bench("query_probe").attributes
    assert attributes({"kind": "shape", "colour": "red", "shape": "star"}) == {
        "colour": "red",
        "shape": "star",
        "digit": "-",
    }
    assert attributes({"kind": "digit", "colour": "blue", "digit": 7}) == {
        "colour": "blue",
        "shape": "digit",
        "digit": "7",
    }


def test_a_probe_reads_a_label_the_residuals_carry_and_not_one_they_do_not(load_bench):
    probe = load_bench("query_probe").probe
    rng = np.random.default_rng(0)
    labels = ["red", "blue", "green"]
    rows = []
    for q in range(100):
        y = labels[q % 3]
        x = rng.normal(size=(2, 8))  # [layers, H]
        x[1, labels.index(y)] += 4.0  # layer 1 carries the label, layer 0 does not
        rows.append({"x": x, "query": q, "colour": y})
    held = probe(rows, 1, "colour", n_train_queries=70)
    assert (
        held["n"] == 30 and held["acc"] == 1.0 and held["majority"] == 0.333
    )  # queries 70-99: 10 of each label
    assert probe(rows, 0, "colour", n_train_queries=70)["acc"] < 0.6


def test_rows_line_up_each_query_and_cell_with_its_object(load_bench, tiny_model_dir, tmp_path):
    bench = load_bench("query_probe")
    path = build("grounding", tmp_path / "w", 3, seed=4, categories=["name"], name="name")
    queries, cells = bench.rows_of(tiny_model_dir, path, think="x")
    samples = read_samples(path)
    text = json.loads((tiny_model_dir / "config.json").read_text())["text_config"]
    assert [q["query"] for q in queries] == [0, 1, 2]
    for q, s in zip(queries, samples):
        assert q["x"].shape == (
            text["num_hidden_layers"] + 1,
            text["hidden_size"],
        )  # each layer's input, the output
        named = s.problem.removeprefix("Find the ").removesuffix(" in the image.")
        assert named in (f"{q['colour']} {q['shape']}", f"digit {q['digit']}")
    assert {c["query"] for c in cells} == {0, 1, 2}
    for c in cells:
        scene = [bench.attributes(o) for o in samples[c["query"]].meta["objects"]]
        assert {k: c[k] for k in ("colour", "shape", "digit")} in scene
