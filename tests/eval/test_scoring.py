"""Scoring: boxes converted from the model's convention to pixels, strict and lenient classification."""

from __future__ import annotations

import pytest

from visual_rft.data.answer import answer_text
from visual_rft.eval.completions import Completion
from visual_rft.eval.scoring import classification_scores, detection_queries, score


@pytest.mark.parametrize("family_dir", ["tiny_model_dir", "tiny_qwen2_dir", "tiny_qwen3_dir"])
def test_boxes_converted_from_model_convention_to_pixels(family_dir, samples, request, perfect):
    model_dir = request.getfixturevalue(family_dir)
    det = [r for r in perfect(samples, model_dir) if r.sample.task == "detection" and r.sample.target.boxes]
    if family_dir in ("tiny_qwen2_dir", "tiny_qwen3_dir"):  # 0-1000 of the original image
        assert all(r.frame.convention == "norm1000" for r in det)
    else:  # 150x120 and 130x190 are resized by the processor: the answer is in resized pixels
        assert any(r.frame.resized != r.frame.size for r in det)
    queries, sizes = detection_queries(det)
    for q, r in zip(queries, det):
        assert len(q.pred_boxes) == len(q.gt_boxes) == 1
        assert q.pred_boxes[0] == pytest.approx(q.gt_boxes[0], abs=0.6)  # model units rounded to integers
        assert sizes[q.image_id] == (r.sample.width, r.sample.height)
    # the same numbers read as original pixels are off wherever the scale is not 1
    off = [r for r in det if r.frame.scale != (1.0, 1.0)]
    assert off
    wrong = [Completion(r.sample, answer_text(r.sample, None), r.frame) for r in off]
    assert score(wrong)["mAP"] < 0.9


def test_classification_strict_lenient_unparseable(samples):
    s = next(x for x in samples if x.task == "classification" and x.target.label == "red square")
    answers = [
        "<think>x</think><answer> Red_Square. </answer>",  # strict and lenient
        "<answer>red square or blue circle</answer>",  # lenient only
        "<answer>blue circle</answer>",  # neither
        "red square",  # no answer tag: unparseable, wrong under both rules
    ]
    m = classification_scores([Completion(s, a, None) for a in answers])
    assert m["accuracy"] == 0.25 and m["lenient_accuracy"] == 0.5 and m["unparseable"] == 0.25
    assert m["per_class"] == {"red square": 0.25} and m["n"] == 4
