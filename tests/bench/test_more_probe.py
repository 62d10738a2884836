"""bench/more_probe.py: whether the model knows, where a box closes, that another instance is left."""

import pytest

from visual_rft.data.jsonl import read_samples
from visual_rft.world import build


def _world(tmp_path):
    """Ten world detection queries, some of several instances."""
    return read_samples(build("detection", tmp_path / "w", 10, seed=4))


def _several(bench, model_dir, tmp_path, think="x"):
    """(the world's queries, one of several instances, its teacher-forced forward with `think`, the tokenizer), as
    the bench loads the model."""
    samples = _world(tmp_path)
    model = bench.load_model(model_dir, device="cpu", dtype="fp32")
    processor = bench.load_processor(model_dir)
    convention = bench.coord_convention(bench.model_family(model.config))
    several = next(s for s in samples if len(s.target.boxes) >= 2)
    return (
        samples,
        several,
        bench.forced_answer(model, processor, several, convention, think),
        processor.tokenizer,
    )


def test_every_boxs_close_is_read_once_more_before_the_last(load_bench, tiny_model_dir, tmp_path):
    bench = load_bench("more_probe")
    samples, several, forced, tok = _several(bench, tiny_model_dir, tmp_path)
    rows = bench.close_margins(forced, several, tok)  # raises if a close is misplaced
    n = len(several.target.boxes)
    assert [(j, follows) for j, follows, _ in rows] == [(j, j < n - 1) for j in range(n)]
    result = bench.probe_model(tiny_model_dir, samples, "x")
    boxes = sum(len(s.target.boxes) for s in samples)
    answered = sum(bool(s.target.boxes) for s in samples)
    assert result["closes (more / last)"] == [
        boxes - answered,
        answered,
    ]  # one last close per answer with boxes
    assert 0 <= result["AUC"] <= 1


def test_auc_counts_the_pairs_ranked_right_and_ties_as_half(load_bench):
    bench = load_bench("more_probe")
    assert bench.auc([2.0, 0.0], [1.0, 0.0]) == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert bench.auc([], [1.0]) is None


def test_each_boxs_digits_are_read_in_order_with_one_first_digit_a_box(load_bench, tiny_model_dir, tmp_path):
    bench = load_bench("more_probe")
    samples, several, forced, tok = _several(bench, tiny_model_dir, tmp_path)
    rows = bench.box_digits(forced, several, tok)
    n = len(several.target.boxes)
    boxes = [r.box for r in rows]
    assert boxes == sorted(boxes) and set(boxes) == set(range(n))
    assert [r.box for r in rows if r.first] == list(range(n))
    assert all(r.nll >= 0 for r in rows) and not any(r.place for r in rows)
    result = bench.probe_model(tiny_model_dir, samples, "x")
    assert set(result["digits by box"]) == set(range(1, max(len(s.target.boxes) for s in samples) + 1))
    assert result["places by box"] == {}


def test_a_think_naming_the_places_reads_each_boxs_place_before_its_digits(
    load_bench, tiny_model_dir, tmp_path
):
    bench = load_bench("more_probe")
    _, several, forced, tok = _several(bench, tiny_model_dir, tmp_path, think="At: {region}.")
    rows = bench.box_digits(forced, several, tok)
    n = len(several.target.boxes)
    places = [(r.box, r.first) for r in rows if r.place]
    assert [j for j, _ in places] == sorted(j for j, _ in places) and [j for j, f in places if f] == list(
        range(n)
    )
    assert rows[: len(places)] == [r for r in rows if r.place]  # every place is named before any box
    assert [(r.box, r.first) for r in rows if not r.place] == [
        (j, f) for j, f, *_ in bench.box_digits(_several(bench, tiny_model_dir, tmp_path)[2], several, tok)
    ]  # the digits read as without the places


def test_digits_by_box_averages_each_box_apart(load_bench):
    bench = load_bench("more_probe")
    R = bench.Read
    rows = [
        R(0, True, 1.0, True, False, 3),
        R(0, False, 3.0, False, False, 4),
        R(1, True, 2.0, False, False, 9),
    ]
    rows += [
        R(1, False, 0.0, True, False, 10),
        R(1, True, 5.0, True, True, 1),
    ]  # the last: box 2's place word
    assert bench.digits_by_box(rows) == {
        1: {"NLL": 2.0, "right": 0.5, "first right": 1.0, "boxes": 1},
        2: {"NLL": 1.0, "right": 0.5, "first right": 0.0, "boxes": 1},
    }
    assert bench.digits_by_box(rows, place=True) == {
        2: {"NLL": 5.0, "right": 1.0, "first right": 1.0, "boxes": 1}
    }
    rows += [
        R(0, True, 1.0, False, False, 3),
        R(1, True, 1.0, True, False, 11),
        R(1, True, 1.0, True, False, 9),
    ]
    assert bench.first_digit_by_start(rows, 1) == {3: [0.5, 2]}
    assert bench.first_digit_by_start(rows, 2) == {9: [0.5, 2], 11: [1.0, 1]}  # not the place word at 1
