"""Tests of visual_rft.eval.runner: end to end on the tiny model, and scoring with known completions."""

from __future__ import annotations

import argparse
import json

import pytest
from PIL import Image, ImageDraw

from visual_rft.data.answer import answer_text
from visual_rft.data.jsonl import write_samples
from visual_rft.data.types import Box, ClassTarget, DetectionTarget, GroundingTarget, Sample
from visual_rft.eval import cli as eval_cli
from visual_rft.eval.completions import COMPLETIONS, Completion, read_completions, write_completions
from visual_rft.eval.queries import detection_problem, plan_queries
from visual_rft.eval.report import headline_rows
from visual_rft.eval.runner import EvalOptions, evaluate_models, model_names, rescore
from visual_rft.eval.scoring import classification_scores, detection_queries, score
from visual_rft.models.loading import coord_convention, coord_frame, load_processor, model_family

# (width, height): two sizes the Qwen2.5-VL processor resizes (not multiples of 28), two it keeps
SIZES = [(150, 120), (224, 112), (130, 190), (168, 168)]
RED = (220, 40, 40)
BLUE = (40, 60, 220)


def _draw(path, size, shapes):
    im = Image.new("RGB", size, (235, 235, 235))
    d = ImageDraw.Draw(im)
    for kind, colour, box in shapes:
        (d.rectangle if kind == "square" else d.ellipse)(box, fill=colour)
    im.save(path)
    return str(path)


def _q(image_id, i, category, boxes, size, split):
    w, h = size
    return Sample(
        f"det-{i}-{category.replace(' ', '_')}",
        [image_id],
        "detection",
        detection_problem(category),
        DetectionTarget(tuple(Box(*b, category) for b in boxes), category),
        w,
        h,
        {"split": split},
    )


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Classification, detection (open vocabulary: 'red square' base, 'blue circle' novel), grounding."""
    root = tmp_path_factory.mktemp("scenes")
    out = []
    sq, ci = (10, 12, 60, 62), (70, 40, 118, 100)  # boxes inside the smallest image (150x120)
    for i, size in enumerate(SIZES):
        shapes = [("square", RED, sq)] + ([("circle", BLUE, ci)] if i % 2 == 0 else [])
        path = _draw(root / f"img{i}.png", size, shapes)
        label = "red square" if i % 2 else "blue circle"
        w, h = size
        out.append(Sample(f"cls-{i}", [path], "classification", "What is it?", ClassTarget(label), w, h))
        out.append(_q(path, i, "red square", [sq], size, "base"))
        out.append(_q(path, i, "blue circle", [ci] if i % 2 == 0 else [], size, "novel"))
        if i < 2:
            g = GroundingTarget(Box(*sq))
            out.append(Sample(f"gr-{i}", [path], "grounding", "Find the red square.", g, w, h))
    return out


@pytest.fixture(scope="module")
def data_file(samples, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "test.jsonl"
    write_samples(path, samples)
    return path


def _perfect(samples, model_dir):
    """Completions with the right answer, in the model's own coordinate convention."""
    processor = load_processor(model_dir)
    convention = coord_convention(model_family(model_dir))
    records = []
    for s in samples:
        frame = coord_frame(convention, processor, s.width, s.height)
        records.append(Completion(s, answer_text(s, frame, think="easy"), frame))
    return records


# ------------------------------------------------------------------------------------------------ end to end


def test_evaluate_tiny_model_end_to_end_then_rescore(tiny_model_dir, data_file, tmp_path):
    out = tmp_path / "run"
    options = EvalOptions(batch_size=4, max_new_tokens=6, progress=False)
    results = evaluate_models([f"base={tiny_model_dir}", f"rft={tiny_model_dir}"], data_file, out, options)

    assert list(results) == ["base", "rft"]
    for name in results:
        assert (out / name / COMPLETIONS).is_file()
        assert (out / name / "run.json").is_file()
        records = [json.loads(line) for line in (out / name / COMPLETIONS).read_text().splitlines()]
        assert len(records) == 14
        assert {"id", "completion", "frame", "sample"} <= set(records[0])
        assert all(isinstance(r["completion"], str) for r in records)
        run = json.loads((out / name / "run.json").read_text())
        assert run["family"] == "qwen2_5_vl" and run["samples_per_s"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(results))
    m = metrics["base"]
    assert m["task"] == "mixed"
    assert m["classification"]["n"] == 4 and m["grounding"]["n"] == 2
    assert m["detection"]["n_queries"] == 8 and "mAP_novel" in m["detection"]
    # same model, greedy: identical answers, identical metrics
    assert metrics["base"] == metrics["rft"]
    table = (out / "metrics.md").read_text()
    assert "| metric | base | rft |" in table
    assert "| classification.accuracy |" in table and "| detection.mAP_novel |" in table

    before = (out / "metrics.json").read_text()
    assert rescore(out) == results
    assert (out / "metrics.json").read_text() == before


def test_cli_rescore(tiny_model_dir, samples, tmp_path, capsys):
    run = tmp_path / "run"
    write_completions(run / "rft" / COMPLETIONS, _perfect(samples, tiny_model_dir))
    parser = argparse.ArgumentParser(prog="vrft")
    eval_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "--rescore", str(run)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "| metric | rft |" in printed and "| classification.accuracy | 100.0 |" in printed
    assert json.loads((run / "metrics.json").read_text())["rft"]["detection"]["mAP"] == pytest.approx(1.0)
    assert (run / "rft" / "metrics.json").is_file()

    with pytest.raises(ValueError, match="--data"):
        args.func(parser.parse_args(["eval", str(tiny_model_dir)]))


# ------------------------------------------------------------------------------------------------ perfect answers


@pytest.mark.parametrize("family_dir", ["tiny_model_dir", "tiny_qwen2_dir"])
def test_perfect_completions_score_full_marks(family_dir, samples, tmp_path, request):
    model_dir = request.getfixturevalue(family_dir)
    records = _perfect(samples, model_dir)
    write_completions(tmp_path / "m" / COMPLETIONS, records)
    results = rescore(tmp_path)
    m = results["m"]
    assert m == score(read_completions(tmp_path / "m" / COMPLETIONS))
    cls, det, gr = m["classification"], m["detection"], m["grounding"]
    assert cls["accuracy"] == 1.0 and cls["lenient_accuracy"] == 1.0 and cls["unparseable"] == 0.0
    assert cls["per_class"] == {"blue circle": 1.0, "red square": 1.0}
    assert det["mAP"] == pytest.approx(1.0) and det["unparseable"] == 0.0
    assert det["mAP_base"] == pytest.approx(1.0) and det["mAP_novel"] == pytest.approx(1.0)
    assert det["mAP_all"] == pytest.approx(1.0) and det["n_images"] == 4
    assert gr["giou"] == pytest.approx(1.0, abs=0.03) and gr["acc@0.5"] == 1.0 and gr["missing"] == 0.0


@pytest.mark.parametrize("family_dir", ["tiny_model_dir", "tiny_qwen2_dir"])
def test_boxes_converted_from_model_convention_to_pixels(family_dir, samples, request):
    model_dir = request.getfixturevalue(family_dir)
    det = [r for r in _perfect(samples, model_dir) if r.sample.task == "detection" and r.sample.target.boxes]
    if family_dir == "tiny_qwen2_dir":
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


# ------------------------------------------------------------------------------------------------ queries


def _det(samples):
    return [s for s in samples if s.task == "detection"]


def test_plan_queries_modes(samples, tmp_path):
    det = _det(samples)
    assert plan_queries(samples) == [(s, True) for s in samples]

    present = plan_queries(det, "present")
    assert [s.id for s, asked in present if not asked] == ["det-1-blue_circle", "det-3-blue_circle"]
    assert len(present) == len(det)

    drop_one = [s for s in det if s.id != "det-1-blue_circle"]  # image 1 no longer asks 'blue circle'
    plan = plan_queries(drop_one, "all")
    added = [s for s, _ in plan[len(drop_one) :]]
    assert all(asked for _, asked in plan)
    assert [s.id for s in added] == ["det-1-red_square::blue circle"]
    new = added[0]
    assert new.target == DetectionTarget((), "blue circle") and new.images == det[2].images
    assert new.problem == detection_problem("blue circle") and "'blue circle'" in new.problem
    assert new.meta["split"] == "novel" and (new.width, new.height) == SIZES[1]

    with pytest.raises(ValueError, match="existence map"):
        plan_queries(det, str(tmp_path / "missing.json"))

    existence = tmp_path / "exist.json"
    existence.write_text(json.dumps({"img0.png": ["blue circle"], "img2": ["red square", "blue circle"]}))
    plan = plan_queries(det, str(existence))
    asked = {s.id for s, a in plan if a}
    assert asked == {"det-0-blue_circle", "det-2-red_square", "det-2-blue_circle"}
    # what is not asked keeps its ground truth: its objects count as missed
    m = score([Completion(s, None, None, asked=False) if not a else Completion(s, "", None) for s, a in plan])
    assert m["n_gt"] == sum(len(s.target.boxes) for s in det) and m["n_asked"] == 3


def test_detection_problem_replaces_the_quoted_category():
    s = Sample("a", ["x.png"], "detection", 'Find every "cat" here.', DetectionTarget((), "cat"))
    assert detection_problem("dog", s) == 'Find every "dog" here.'
    s2 = Sample("b", ["x.png"], "detection", "Locate the category cat.", DetectionTarget((), "cat"))
    assert detection_problem("dog", s2) == "Detect all objects belonging to the category 'dog' in the image."


def test_conflicting_split_is_an_error(samples):
    det = _det(samples)[:2]
    bad = [det[0], Sample("z", det[1].images, "detection", "q", det[0].target, meta={"split": "novel"})]
    with pytest.raises(ValueError, match="both 'base' and 'novel'"):
        plan_queries(bad, "all")


def test_model_names_and_rows():
    assert model_names(["a/base", "sft=b/x", "c/rft/"]) == {"base": "a/base", "sft": "b/x", "rft": "c/rft/"}
    with pytest.raises(ValueError, match="name=path"):
        model_names(["x/m", "y/m"])
    rows = headline_rows({"a": {"task": "classification", "accuracy": 1.0, "lenient_accuracy": 1.0, "n": 2}})
    assert rows == ["accuracy", "lenient_accuracy", "n"]
