"""bench/detection_hits.py: is the category's presence read, and where do the boxes fall?"""

import json

import pytest

from visual_rft.data.jsonl import read_samples

OBJECTS = [{"box": [10, 10, 30, 30]}, {"box": [60, 60, 90, 90]}]


def row(answer, asked, resized=(100, 100)):
    return {
        "completion": f"<think>t</think><answer>{answer}</answer>",
        "frame": {"convention": "resized_pixels", "size": [100, 100], "resized": list(resized)},
        "sample": {
            "id": "x",
            "task": "detection",
            "target": {"category": "red circle", "boxes": asked},
            "meta": {"objects": OBJECTS},
        },
    }


def boxes(*xyxy):
    return str([{"Position": list(b), "Confidence": 1} for b in xyxy])


def write(tmp_path, rows):
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_presence_and_the_boxes_places_are_counted_by_hand(load_bench, tmp_path):
    red = [[10, 10, 30, 30]]
    rows = [
        row(boxes([10, 10, 30, 30]), red),  # present, its box
        row("No Objects", red),  # present, missed
        row(boxes([60, 60, 90, 90]), []),  # absent, a box invented on the other object
        row("No Objects", []),  # absent, right
        row("a red circle", red),  # unreadable: neither missed nor a box
        row(
            boxes([80, 0, 110, 40], [20, 20, 60, 60]), red, resized=(200, 200)
        ),  # on nothing; on it, 2x frame
        row(boxes([55, 55, 85, 85]), red),  # present, on the other object (IoU 625 / 1175)
    ]
    h = load_bench("detection_hits").detection_hits(write(tmp_path, rows))
    # boxes in pixels: (10,10,30,30) 400 px2, (60,60,90,90) 900, (40,0,55,20) 300, (10,10,30,30) 400,
    # (55,55,85,85) 900; objects: 400 and 900 in each of the 7 scenes, centres (20, 20) and (75, 75)
    # the present categories' boxes, centre to the asked (20, 20): 0; (47.5, 10): 29.26, nearer it than
    # (75, 75); 0; (70, 70): 70.71, nearer the other object
    assert h == {
        "n": 7,
        "present": 5,
        "absent": 2,
        "missed": 1,
        "invented": 1,
        "unreadable": 1,
        "boxes": 5,
        "on_asked": 0.4,
        "on_other": 0.4,
        "on_none": 0.2,
        "box_area": 400.0,
        "object_area": 650.0,
        "nearest_asked": 0.75,
        "nearest_chance": 0.5,
        "centre_error": pytest.approx((0 + (27.5**2 + 10**2) ** 0.5) / 2),
        "boxes_per_answer": {1: (1 + 0 + 2 + 1) / 4},  # the present, readable answers
        "later": 0,  # one instance asked each: no later box counts
        "later_on_new": None,
    }


def test_the_boxes_written_are_counted_against_the_instances_asked(load_bench, tmp_path):
    both, red = [[10, 10, 30, 30], [60, 60, 90, 90]], [[10, 10, 30, 30]]
    rows = [
        row(boxes([10, 10, 30, 30]), both),  # two asked, one written
        row(boxes([10, 10, 30, 30], [60, 60, 90, 90]), both),  # two asked, two written
        row("No Objects", both),  # two asked, none
        row(boxes([10, 10, 30, 30], [60, 60, 90, 90]), red),  # one asked, two written
        row(boxes([10, 10, 30, 30]), []),  # absent: not counted
    ]
    h = load_bench("detection_hits").detection_hits(write(tmp_path, rows))
    assert h["boxes_per_answer"] == {1: 2.0, 2: 1.0}
    assert (
        h["later"] == 1 and h["later_on_new"] == 1.0
    )  # the second answer's second box, on the other instance


def test_a_later_box_counts_only_on_an_asked_instance_no_earlier_box_is_on(load_bench, tmp_path):
    both = [[10, 10, 30, 30], [60, 60, 90, 90]]
    rows = [
        row(boxes([10, 10, 30, 30], [11, 11, 31, 31]), both),  # the same instance twice: not new
        row(boxes([10, 10, 30, 30], [35, 35, 50, 50]), both),  # the second on nothing
        row(boxes([60, 60, 90, 90], [10, 10, 30, 30], [61, 61, 91, 91]), both),  # new, then a repeat
    ]  # (a box written twice to the pixel is read once, as the reward and AP read it)
    h = load_bench("detection_hits").detection_hits(write(tmp_path, rows))
    assert h["later"] == 4 and h["later_on_new"] == 1 / 4


def test_presence_is_right_when_boxes_answer_a_present_category_and_no_objects_an_absent_one(load_bench):
    right = load_bench("detection_hits").presence_right
    red = [[10, 10, 30, 30]]
    assert right(row(boxes([60, 60, 90, 90]), red))  # a box, even on the wrong object: presence is read
    assert not right(row("No Objects", red))
    assert right(row("No Objects", [])) and not right(row(boxes([10, 10, 30, 30]), []))
    assert not right(row("a red circle", red)) and not right(row("a red circle", []))  # unreadable


def test_a_file_of_other_queries_is_refused_with_its_line(load_bench, tmp_path):
    grounding = row("No Objects", [])
    grounding["sample"]["task"] = "grounding"
    path = write(tmp_path, [row("No Objects", []), grounding])
    with pytest.raises(ValueError, match=r"completions.jsonl:2: not a world detection query"):
        load_bench("detection_hits").detection_hits(path)


def test_the_held_out_sets_ask_detection_on_lone_objects_and_among_others(load_bench, tmp_path):
    sets = load_bench("detection_hits").held_out_sets(tmp_path, seed=5, n=8)
    single, name, base = (read_samples(sets[k]) for k in ("single", "name", "base"))
    assert len(single) == 8 and {s.meta["kind"] for s in single} == {"detection_single"}
    assert all(len(s.meta["objects"]) == 1 and len(s.target.boxes) <= 1 for s in single)
    assert len(name) == 8 and {s.meta["kind"] for s in name} == {"detection_name"}
    assert all(len(s.meta["objects"]) > 1 and len(s.target.boxes) <= 1 for s in name)
    assert base and {s.task for s in base} == {"detection"}
    assert sets["base"].name == "detection_test.jsonl"  # bench/staged_base.py's file, for the same seed


def test_the_places_a_think_names_are_read_against_the_instances_asked(load_bench, tmp_path):
    """`--places`: objects at (20, 20), top left, and (75, 75), bottom right, in 100 x 100 images."""
    both, red = [[10, 10, 30, 30], [60, 60, 90, 90]], [[10, 10, 30, 30]]

    def placed(think, answer, asked):
        return {**row(answer, asked), "completion": f"<think>At: {think}.</think><answer>{answer}</answer>"}

    rows = [
        placed("top left, bottom right", boxes(*both), both),  # as taught
        placed("top left, top left", boxes([10, 10, 30, 30], [35, 35, 50, 50]), both),  # a place named twice
        placed("bottom right", boxes([60, 60, 90, 90]), red),  # the other object's place and box
        placed("nowhere", "No Objects", []),  # absent: not counted
    ]
    h = load_bench("detection_hits").detection_places(write(tmp_path, rows))
    assert h == {
        "n": 3,
        "named": {1: 1.0, 2: 2.0},
        "exact": pytest.approx(1 / 3),
        "right_by_place": {1: [pytest.approx(2 / 3), 3], 2: [0.5, 2]},
        "box_follows": 0.8,  # all but the box centred at (42.5, 42.5), middle center, under "top left"
        "hit_by_place": {"right": [1.0, 3], "wrong": [0.0, 2]},
    }
