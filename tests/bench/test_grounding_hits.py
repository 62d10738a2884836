"""bench/grounding_hits.py: is a grounding box on the asked object, on another object, or on none?"""

import json

import pytest

OBJECTS = [{"box": [10, 10, 30, 30]}, {"box": [60, 60, 90, 90]}]


def row(answer, resized=(100, 100), kind="name"):
    return {
        "completion": f"<think>t</think><answer>{answer}</answer>",
        "frame": {"convention": "resized_pixels", "size": [100, 100], "resized": list(resized)},
        "sample": {
            "id": "x",
            "task": "grounding",
            "target": {"box": [10, 10, 30, 30]},
            "meta": {"objects": OBJECTS, "kind": kind},
        },
    }


def write(tmp_path, rows):
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_boxes_are_counted_on_the_target_on_another_object_or_nowhere(load_bench, tmp_path):
    rows = [
        row("(10,10),(30,30)"),  # the asked object
        row("(20,20),(60,60)", resized=(200, 200)),  # the asked object, in a 2x resized frame
        row("(61,59),(90,91)"),  # another object of the scene
        row("(40,0),(55,20)"),  # no object
        row("a circle"),  # no box at all
    ]
    h = load_bench("grounding_hits").grounding_hits(write(tmp_path, rows))
    # centre distances to the asked object's (20, 20): 0, 0, 78.1 from (75.5, 75), 29.3 from (47.5, 10)
    assert h == {
        "n": 5,
        "target": 2 / 5,
        "any_object": 3 / 5,
        "no_box": 1 / 5,
        "centre_px": pytest.approx(14.63, abs=0.01),
    }


def test_hits_are_counted_per_grounding_kind_when_asked(load_bench, tmp_path):
    bench = load_bench("grounding_hits")
    rows = [row("(10,10),(30,30)", kind="extreme"), row("(40,0),(55,20)"), row("(10,10),(30,31)")]
    path = write(tmp_path, rows)
    assert bench.file_kinds(path) == ["extreme", "name"]
    assert bench.grounding_hits(path, "extreme")["target"] == 1
    assert bench.grounding_hits(path, "name")["target"] == 1 / 2
    assert bench.grounding_hits(path)["n"] == 3
    with pytest.raises(ValueError, match="no completions of kind 'single'"):
        bench.grounding_hits(path, "single")


def test_a_sample_without_its_scene_is_an_error_naming_the_line(load_bench, tmp_path):
    bad = row("(10,10),(30,30)")
    del bad["sample"]["meta"]
    with pytest.raises(ValueError, match=r"completions.jsonl:2: the sample has no meta.objects"):
        load_bench("grounding_hits").grounding_hits(write(tmp_path, [row("(1,1),(2,2)"), bad]))


def test_models_are_evaluated_per_kind_on_a_fresh_world(load_bench, tiny_model_dir, tmp_path):
    bench = load_bench("grounding_hits")
    files = bench.evaluate_kinds([tiny_model_dir], tmp_path / "hits", ["single", "name"], seed=5, n=2)
    assert [f.parent.parent.name for f in files] == ["single", "name"]
    for f in files:
        h = bench.grounding_hits(f)  # a random model: any shares, but every query read back
        assert h["n"] == 2 and 0 <= h["target"] <= h["any_object"] <= 1
    single = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert all(len(r["sample"]["meta"]["objects"]) == 1 for r in single)


def test_wrong_picks_are_told_apart_by_what_the_picked_object_shares_with_the_asked_one(load_bench, tmp_path):
    scene = [
        {"kind": "shape", "colour": "red", "shape": "star", "box": [0, 0, 20, 20]},  # asked
        {"kind": "shape", "colour": "red", "shape": "circle", "box": [40, 0, 60, 20]},
        {"kind": "shape", "colour": "blue", "shape": "star", "box": [0, 40, 20, 60]},
        {"kind": "shape", "colour": "blue", "shape": "circle", "box": [40, 40, 60, 60]},
        {"kind": "digit", "colour": "red", "digit": 7, "box": [75, 75, 95, 95]},
    ]
    answers = ["(0,0),(20,20)", "(40,0),(60,20)", "(0,40),(20,60)", "(41,41),(60,60)", "(75,75),(95,95)"]
    # on none: centre (30, 30) on no object; centre (9.5, 9.5) on the asked star, a box too small (IoU 81 / 400);
    # centre (49.5, 9.5) on the red circle, as small
    answers += ["(20,20),(40,40)", "(5,5),(14,14)", "(45,5),(54,14)"]
    answers += ["a star", "(0,0),(20,20)"]
    rows = [row(a, kind="extreme" if i == len(answers) - 1 else "name") for i, a in enumerate(answers)]
    for r in rows:
        r["sample"]["meta"]["objects"] = scene
        r["sample"]["target"]["box"] = [0, 0, 20, 20]
    assert load_bench("grounding_hits").picks(write(tmp_path, rows)) == {
        "right": 1,
        "same colour, other shape": 1,
        "other colour, same shape": 1,
        "other colour, other shape": 1,
        "a digit": 1,
        "on none, centre on no object": 1,
        "on none, centre on the asked object": 1,
        "on none, centre on another object": 1,
        "no box": 1,
    }  # the `extreme` query is not counted


def queries(rights, kind="name"):
    """One row per query, on the asked object where `rights` says so, on the other object elsewhere."""
    rows = []
    for i, right in enumerate(rights):
        r = row("(10,10),(30,30)" if right else "(60,60),(90,90)", kind=kind)
        r["sample"]["id"] = f"q{i}"
        rows.append(r)
    return rows


def test_two_models_are_compared_query_by_query_with_mcnemars_exact_test(load_bench, tmp_path):
    gh = load_bench("grounding_hits")
    rows_a = queries([1, 1, 1, 1, 0, 0]) + queries([1, 0], kind="extreme")
    rows_b = queries([1, 0, 0, 0, 0, 1]) + queries([1, 0], kind="extreme")
    rows_c = queries([0, 0, 0, 0, 0, 0]) + queries([0, 1], kind="extreme")
    paths = []
    for name, rows in (("a", rows_a), ("b", rows_b), ("c", rows_c)):
        for i, r in enumerate(rows):  # ids unique across kinds
            r["sample"]["id"] = f"q{i}"
        (tmp_path / name).mkdir()
        paths.append(write(tmp_path / name, rows))
    a, b, c = paths
    # name: 3 right only for a, 1 only for b: 4 discordant, P(split at least 3-1) = 2 * (1 + 4) / 16
    assert gh.paired(a, b, "name") == {"n": 6, "a": 4, "b": 2, "only_a": 3, "only_b": 1, "p": 0.625}
    # all 8: extreme agrees, so the same discordant queries
    assert gh.paired(a, b) == {"n": 8, "a": 5, "b": 3, "only_a": 3, "only_b": 1, "p": 0.625}
    # 4 only a, none only b: 2 / 16
    assert gh.paired(a, c, "name")["p"] == 0.125
    assert gh.paired(a, a)["p"] == 1.0  # no discordant query


def test_a_paired_comparison_of_different_queries_is_refused(load_bench, tmp_path):
    gh = load_bench("grounding_hits")
    (tmp_path / "a").mkdir()
    a = write(tmp_path / "a", queries([1, 0]))
    b = write(tmp_path, queries([1, 0, 1]))
    with pytest.raises(ValueError, match="do not hold the same queries"):
        gh.paired(a, b)
    twice = write(tmp_path, queries([1, 0]) + queries([1, 0]))
    with pytest.raises(ValueError, match="more than once"):
        gh.paired(twice, twice)


def test_places_are_read_from_the_think_or_else_from_the_box(load_bench, tmp_path):
    """The asked object (centre 20, 20) is in the top left third of 100 x 100, the other (75, 75) bottom right."""
    rows = [
        row("(10,10),(30,30)"),  # no place named: the box's, top left, right, and a hit
        row("(61,59),(90,91)"),  # the box's place: bottom right, where the other object is
        row("a circle"),  # no place at all: wrong, nowhere
        row("(10,10),(30,30)"),  # named wrong (below), but a hit
        row("(40,0),(55,20)"),  # named right (below), a miss
    ]
    for i, place in ((3, "middle center"), (4, "top left")):
        rows[i]["completion"] = rows[i]["completion"].replace(
            "<think>t</think>", f"<think>It is at the {place}.</think>"
        )
    p = load_bench("grounding_hits").places(write(tmp_path, rows))
    assert p == {"n": 5, "right": 2 / 5, "on_other": 1 / 5, "hit_if_right": 1 / 2, "hit_if_wrong": 1 / 3}
