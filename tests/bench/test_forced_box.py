"""bench/forced_box.py: detection's box written after the answer is fed up to its first digit."""

import json

import pytest
import torch

from visual_rft.data.types import Box, DetectionTarget, Sample
from visual_rft.models.inputs import encode_prompts
from visual_rft.models.loading import load_processor
from visual_rft.models.tiny import write_tiny


def world_query(toy, boxes, objects):
    """A world-like detection query on a toy image: its target `boxes`, its scene's `objects` (meta)."""
    target = DetectionTarget(tuple(Box(*b, "red circle") for b in boxes), "red circle")
    return Sample(
        "q", toy.images, "detection", toy.problem, target, toy.width, toy.height, meta={"objects": objects}
    )


def test_the_prefix_is_the_reference_answer_up_to_the_first_digit(load_bench, toy_samples, tiny_model_dir):
    bench = load_bench("forced_box")
    q = world_query(toy_samples[3], [(10, 20, 30, 40)], [])
    frame = bench.frames_for([bench.open_images(q)], "resized_pixels", load_processor(tiny_model_dir))[0]
    assert bench.box_prefix(q, frame, "Looking.") == "<think>Looking.</think><answer>[{'Position': ["
    absent = world_query(toy_samples[3], [], [])
    with pytest.raises(ValueError, match="0 boxes, not 1"):
        bench.box_prefix(absent, frame, "Looking.")


def test_a_model_with_a_text_distance_starts_its_answer_there_with_the_prefix_fed(
    load_bench, toy_samples, tmp_path
):
    bench = load_bench("forced_box")
    folder = write_tiny(tmp_path / "m", "qwen2_5_vl", "1m", seed=0)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "text_distance": 70}))
    q = world_query(toy_samples[3], [(10, 20, 30, 40)], [])
    seen = []
    real_load = bench.load_model

    def load_and_record(*args, **kwargs):
        model = real_load(*args, **kwargs)
        model.model.language_model.register_forward_pre_hook(
            lambda module, a, kw: seen.append(kw["position_ids"][-3:].clone()), with_kwargs=True
        )
        return model

    bench.load_model = load_and_record
    rows = bench.forced_boxes(folder, [q], "Looking.")
    assert len(rows) == 1 and set(rows[0]) == {"id", "written", "box"}
    processor = load_processor(folder)
    frame = bench.frames_for([bench.open_images(q)], "resized_pixels", processor)[0]
    n_prefix = len(
        processor.tokenizer(bench.box_prefix(q, frame, "Looking."), add_special_tokens=False)["input_ids"]
    )
    inputs, _ = encode_prompts([q], processor, "resized_pixels")
    is_image = inputs["input_ids"][0] == config["image_token_id"]  # [L] the prompt without the prefix
    prefill = seen[0][:, 0]  # [3, L + n_prefix]
    image_max = int(prefill[:, : len(is_image)][:, is_image].max())
    assert int(prefill[:, -1].max()) == image_max + 70 + n_prefix  # the answer's first token at D + 1


def test_a_box_lands_on_the_asked_instance_another_object_or_none(load_bench, toy_samples):
    bench = load_bench("forced_box")
    objects = [{"box": [10, 20, 30, 40]}, {"box": [60, 60, 90, 90]}]
    q = world_query(toy_samples[3], [(10, 20, 30, 40)], objects)
    assert bench.landing(q, (11, 21, 30, 40)) == "asked"
    assert bench.landing(q, (60, 61, 90, 90)) == "other"
    assert bench.landing(q, (0, 0, 5, 5)) == "none"
    assert bench.landing(q, None) == "none"


def test_the_prefix_up_to_a_later_box_keeps_the_boxes_before_it(load_bench, toy_samples, tiny_model_dir):
    bench = load_bench("forced_box")
    q = world_query(toy_samples[3], [(10, 20, 30, 40), (50, 5, 60, 15)], [])
    frame = bench.frames_for([bench.open_images(q)], "resized_pixels", load_processor(tiny_model_dir))[0]
    first = bench.box_prefix(q, frame, "Looking.")
    second = bench.box_prefix(q, frame, "Looking.", box=2)
    assert second.startswith(first) and second.endswith("{'Position': [")
    assert second.count("'Position'") == 2 and "Confidence" in second  # the whole first box before it
    with pytest.raises(ValueError, match="2 boxes, not 3"):
        bench.box_prefix(q, frame, "Looking.", box=3)


def test_a_later_box_lands_on_an_instance_left_or_repeats_one_written(load_bench, toy_samples):
    bench = load_bench("forced_box")
    first, second, other = (10, 20, 30, 40), (50, 50, 70, 70), (100, 10, 120, 30)
    objects = [{"box": list(b)} for b in (first, second, other)]
    q = world_query(toy_samples[3], [first, second], objects)
    assert bench.landing(q, (51, 50, 70, 70), written=1) == "asked"
    assert bench.landing(q, (10, 20, 30, 41), written=1) == "repeat"
    assert bench.landing(q, (10, 20, 30, 41)) == "asked"  # box 1: either instance is one left
    assert bench.landing(q, (100, 11, 120, 30), written=1) == "other"
    # nearest by centre: a box near the second instance picks it (chance: 1 left of 3 objects)
    assert bench.picked(q, (55, 45, 80, 75), written=1) == (True, pytest.approx(1 / 3))
    # near the written one: not a pick of an instance left
    assert bench.picked(q, (12, 22, 34, 44), written=1) == (False, pytest.approx(1 / 3))
    assert bench.picked(q, (12, 22, 34, 44)) == (True, pytest.approx(2 / 3))
    assert bench.picked(q, None, written=1) is None
    assert bench.form(q, (51, 50, 70, 70), written=1) == (True, pytest.approx(0.5))  # centre (60.5, 60)
    assert bench.form(q, (30, 50, 20, 70), written=1) == (
        False,
        pytest.approx(35.0),
    )  # x2 < x1; centre (25, 60)
    assert bench.form(q, None) is None


def test_prefixes_of_several_lengths_are_fed_to_a_model_without_a_text_distance(
    load_bench, toy_samples, tiny_model_dir
):
    bench = load_bench("forced_box")
    short = world_query(toy_samples[3], [(1, 2, 3, 4), (5, 6, 7, 8)], [])
    long = world_query(toy_samples[3], [(10, 20, 30, 40), (50, 60, 70, 80)], [])
    rows = bench.forced_boxes(tiny_model_dir, [short, long], "Looking.", box=2, batch_size=1)  # 2 batches
    assert [r["id"] for r in rows] == ["q", "q"] and all(set(r) == {"id", "written", "box"} for r in rows)


def test_as_first_writes_a_later_box_at_the_positions_of_the_first_and_shift_moves_the_text(
    load_bench, toy_samples, tmp_path
):
    bench = load_bench("forced_box")
    folder = write_tiny(tmp_path / "m", "qwen2_5_vl", "1m", seed=0)
    q = world_query(toy_samples[3], [(10, 20, 30, 40), (50, 60, 70, 80)], [])
    seen = []
    real_load = bench.load_model

    def load_and_record(*args, **kwargs):
        model = real_load(*args, **kwargs)
        model.model.language_model.register_forward_pre_hook(
            lambda module, a, kw: seen.append(kw["position_ids"][1:, 0].clone()), with_kwargs=True
        )
        return model

    bench.load_model = load_and_record
    prefill = {}
    for name, box, as_first, shift, shift_answer in (
        ("first", 1, None, 0, 0),
        ("second", 2, None, 0, 0),
        ("text", 2, "text", 0, 0),
        ("box", 2, "box", 0, 0),
        ("shift", 1, None, 2, 0),
        ("shift answer", 1, None, 0, -1),
    ):
        seen.clear()
        bench.forced_boxes(
            folder, [q], "Looking.", box=box, as_first=as_first, shift=shift, shift_answer=shift_answer
        )
        prefill[name] = seen[0].max(dim=0).values  # [L] the prompt and fed prefix (prefill)
    last = {k: int(v[-1]) for k, v in prefill.items()}  # the fed prefix's last token
    assert last["second"] > last["first"]  # box 2's first digit further from the image
    assert (
        last["text"] == last["first"] and last["box"] == last["first"]
    )  # ... moved back to where box 1's is
    frame = bench.frames_for([bench.open_images(q)], "resized_pixels", load_processor(folder))[0]
    tok = load_processor(folder).tokenizer
    n = len(tok(bench.box_prefix(q, frame, "Looking."), add_special_tokens=False)["input_ids"])
    moved = len(prefill["second"]) - len(prefill["first"])  # the tokens between the two first digits
    head = len(prefill["second"]) - moved - n  # the prompt before the answer
    assert torch.equal(prefill["box"][:-moved], prefill["second"][:-moved])  # "box": the rest stays
    assert int(prefill["text"][head - 1]) < int(prefill["second"][head - 1])  # "text": the question moves too
    moves = (
        prefill["shift"] - prefill["first"]
    ).tolist()  # [L] the same tokens, the text after the image moved
    assert (
        moves == sorted(moves) and set(moves) == {0, 2} and moves[head - 1] == 2
    )  # the question, the answer on
    with pytest.raises(ValueError, match="as_first"):
        bench.forced_boxes(folder, [q], "Looking.", box=2, as_first="both")
    answer_moves = (
        prefill["shift answer"] - prefill["first"]
    ).tolist()  # the question stays, the answer back one
    assert answer_moves == [0] * (len(answer_moves) - n) + [-1] * n
    with pytest.raises(ValueError, match="give one"):
        bench.forced_boxes(folder, [q], "Looking.", box=2, as_first="box", shift=1)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "text_distance": 70}))
    with pytest.raises(ValueError, match="text_distance"):
        bench.forced_boxes(folder, [q], "Looking.", box=2, as_first="box")
