"""The runner: model folders evaluated side by side end to end, saved completions re-scored, model names."""

from __future__ import annotations

import json

import pytest

from visual_rft.config import EvalOptions
from visual_rft.eval.completions import COMPLETIONS, read_completions, write_completions
from visual_rft.eval.report import headline_rows
from visual_rft.eval.runner import evaluate_models, model_names, rescore
from visual_rft.eval.scoring import score


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


@pytest.mark.parametrize("family_dir", ["tiny_model_dir", "tiny_qwen2_dir", "tiny_qwen3_dir"])
def test_perfect_completions_score_full_marks(family_dir, samples, tmp_path, request, perfect):
    model_dir = request.getfixturevalue(family_dir)
    records = perfect(samples, model_dir)
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


def test_model_names_and_rows():
    assert model_names(["a/base", "sft=b/x", "c/rft/"]) == {"base": "a/base", "sft": "b/x", "rft": "c/rft/"}
    with pytest.raises(ValueError, match="name=path"):
        model_names(["x/m", "y/m"])
    rows = headline_rows({"a": {"task": "classification", "accuracy": 1.0, "lenient_accuracy": 1.0, "n": 2}})
    assert rows == ["accuracy", "lenient_accuracy", "n"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"batch_size": 0}, r"batch_size must be >= 1, got 0"),
        ({"max_new_tokens": 0}, r"max_new_tokens must be >= 1"),
        ({"min_new_tokens": 9, "max_new_tokens": 8}, r"min_new_tokens \(9\) is above max_new_tokens \(8\)"),
        ({"temperature": -1.0}, r"temperature must be >= 0"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"limit": -1}, r"limit must be >= 1, got -1"),
        ({"dtype": "bf61"}, r"dtype: unknown dtype 'bf61'"),
        ({"categories": "presnt"}, r"categories 'presnt': expected one of"),
    ],
)
def test_bad_options_are_refused_before_any_data_or_model_loads(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        evaluate_models(
            {"m": tmp_path / "no-model"}, tmp_path / "no-data.jsonl", tmp_path / "out", EvalOptions(**options)
        )
    assert not (tmp_path / "out").exists()
