"""recipes/answer_reads.py: which answer token reads which object of the scene."""

import torch

from visual_rft.data.types import Box, DetectionTarget, GroundingTarget, Sample
from visual_rft.models.loading import load_processor
from visual_rft.recipes.answer_reads import (
    answer_start,
    asked_instances,
    asked_objects,
    box_ends,
    digit_targets,
    first_reads,
)


def _sample(target, objects):
    return Sample(
        id="s",
        images=["x.png"],
        problem="p",
        task="detection" if isinstance(target, DetectionTarget) else "grounding",
        target=target,
        width=112,
        height=112,
        meta={"objects": [{"box": b} for b in objects]},
    )


def test_each_written_box_points_at_its_object_in_the_scene():
    objects = [[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 70]]
    det = _sample(DetectionTarget(boxes=(Box(50, 50, 60, 70), Box(0, 0, 10, 10)), category="c"), objects)
    assert asked_objects(det) == [2, 0]
    assert asked_objects(_sample(GroundingTarget(box=Box(20, 20, 40, 40)), objects)) == [1]
    assert asked_objects(_sample(GroundingTarget(box=Box(1, 2, 3, 4)), objects)) == [-1]


def test_digit_tokens_of_each_box_are_assigned_its_object_and_nothing_else_is(tiny_model_dir):
    tok = load_processor(tiny_model_dir).tokenizer
    text = "<think>t</think><answer>[{'Position': [10, 20, 110, 220], 'Confidence': 1}, {'Position': [5, 6, 7, 8], 'Confidence': 1}]</answer>"
    targets = digit_targets(text, tok, [4, 1])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(targets) == len(ids) + 1 and targets[-1] == -1  # one per token, and the end-of-turn token
    pieces = {j: "".join(tok.decode([i]) for i, t in zip(ids, targets) if t == j) for j in (4, 1)}
    assert pieces == {4: "1020110220", 1: "5678"}  # the confidences' digits are not a box's
    grounding = "<answer>(3,4),(50,60)</answer>"
    ids = tok(grounding, add_special_tokens=False)["input_ids"]
    g = digit_targets(grounding, tok, [7])
    assert "".join(tok.decode([i]) for i, t in zip(ids, g) if t == 7) == "345060"
    placed = "<think>It is at the top right.</think><answer>(3,4),(50,60)</answer>"  # sft.grounding_think's {region}
    ids = tok(placed, add_special_tokens=False)["input_ids"]
    p = digit_targets(placed, tok, [7])
    held = [tok.decode([i]) for i, t in zip(ids, p) if t == 7]
    assert held[:2] == [" top", " right"] and "".join(held[2:]) == "345060"  # the place, then the digits
    listed = (
        "<think>At: top left, bottom right.</think><answer>" + text.split("<answer>")[1]
    )  # detection_think
    ids = tok(listed, add_special_tokens=False)["input_ids"]
    d = digit_targets(listed, tok, [4, 1])
    held = {j: [tok.decode([i]) for i, t in zip(ids, d) if t == j] for j in (4, 1)}
    assert held[4][:2] == [" top", " left"] and "".join(held[4][2:]) == "1020110220"  # k-th place, k-th box
    assert held[1][:2] == [" bottom", " right"] and "".join(held[1][2:]) == "5678"
    unmatched = digit_targets(listed.replace(", bottom right", ""), tok, [4, 1])  # one place for two boxes
    assert sum(t >= 0 for t in unmatched) == len("10201102205678")  # the places are not read
    no_box = placed.replace("(3,4),(50,60)", "No Objects")
    assert max(digit_targets(no_box, tok, [])) == -1  # no box, no place


def test_the_answer_starts_at_the_token_after_answer(tiny_model_dir):
    tokenizer = load_processor(tiny_model_dir).tokenizer
    text = "<think>Let me look at the image.</think><answer>yes</answer>"
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False)["input_ids"])
    t = answer_start(text, tokenizer)
    assert tokens[t - 1] == "<answer>" and "".join(tokens[t:]).startswith("yes")
    assert answer_start("<think>x</think>yes", tokenizer) is None


def test_a_presence_question_asks_about_every_instance_of_its_category():
    objects = [[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 70]]
    det = _sample(DetectionTarget(boxes=(Box(50, 50, 60, 70), Box(0, 0, 10, 10)), category="c"), objects)
    assert asked_instances(det) == [2, 0]
    assert asked_instances(_sample(DetectionTarget(boxes=(), category="c"), objects)) == []  # absent
    assert asked_instances(_sample(GroundingTarget(box=Box(20, 20, 40, 40)), objects)) == []  # not detection
    listed = _sample(DetectionTarget(boxes=(), category="c"), objects)
    listed.meta["instances"] = [1]  # a presence question that lists them (`presence_pairs`)
    assert asked_instances(listed) == [1]


def test_first_reads_are_each_boxs_first_digit():
    assert first_reads(torch.tensor([3, 3, 3, 3, 1, 1, 1, 1])).tolist() == [
        0,
        4,
    ]  # two boxes of a detection answer
    assert first_reads(torch.tensor([5, 5, 5, 5, 5, 5])).tolist() == [0]  # a grounding box


def test_a_boxs_end_is_the_token_that_closes_its_entry_more_or_last(tiny_model_dir):
    tokenizer = load_processor(tiny_model_dir).tokenizer
    text = (
        "<think>x</think><answer>[{'Position': [109, 36, 138, 65], 'Confidence': 1}, "
        "{'Position': [28, 78, 52, 102], 'Confidence': 1}]</answer>"
    )
    tokens = [
        text[a:b]
        for a, b in tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    ]
    ends = box_ends(text, tokenizer)
    assert len(ends) == 2 and [tokens[t] for t in ends] == ["},", "}"]  # another box follows; the list ends
    assert (
        tokens[ends[0] - 1] == "1" and tokens[ends[1] + 1] == "]"
    )  # after the confidence, before the list's end
    assert box_ends("<think>x</think><answer>(3,4),(50,60)</answer>", tokenizer) == []  # a grounding box
    assert box_ends("<think>x</think><answer>No Objects</answer>", tokenizer) == []
