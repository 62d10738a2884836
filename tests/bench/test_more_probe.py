"""bench/more_probe.py: whether the model knows, where a box closes, that another instance is left."""

import pytest

from visual_rft.data.jsonl import read_samples
from visual_rft.world import build


def _world(tmp_path):
    """Ten world detection queries, some of several instances."""
    return read_samples(build("detection", tmp_path / "w", 10, seed=4))


def _several(bench, model_dir, tmp_path):
    """(the world's queries, one of several instances, its teacher-forced forward, the tokenizer), as the bench
    loads the model."""
    samples = _world(tmp_path)
    model = bench.load_model(model_dir, device="cpu", dtype="fp32")
    processor = bench.load_processor(model_dir)
    convention = bench.coord_convention(bench.model_family(model.config))
    several = next(s for s in samples if len(s.target.boxes) >= 2)
    return (
        samples,
        several,
        bench.forced_answer(model, processor, several, convention, "x"),
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
    boxes = [j for j, _, _, _ in rows]
    assert boxes == sorted(boxes) and set(boxes) == set(range(len(several.target.boxes)))
    assert [j for j, first, _, _ in rows if first] == list(range(len(several.target.boxes)))
    assert all(nll >= 0 for _, _, nll, _ in rows)
    result = bench.probe_model(tiny_model_dir, samples, "x")
    assert set(result["digits by box"]) == set(range(1, max(len(s.target.boxes) for s in samples) + 1))


def test_digits_by_box_averages_each_box_apart(load_bench):
    bench = load_bench("more_probe")
    rows = [(0, True, 1.0, True), (0, False, 3.0, False), (1, True, 2.0, False), (1, False, 0.0, True)]
    assert bench.digits_by_box(rows) == {
        1: {"NLL": 2.0, "right": 0.5, "first right": 1.0, "boxes": 1},
        2: {"NLL": 1.0, "right": 0.5, "first right": 0.0, "boxes": 1},
    }
