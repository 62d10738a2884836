"""Tests of visual_rft.eval.table: markdown rendering and JSON."""

from __future__ import annotations

import json

import numpy as np

from visual_rft.eval.table import format_value, lookup, markdown_table, to_json

RESULTS = {
    "Qwen2-VL-2B": {"accuracy": 0.5123, "lenient_accuracy": 0.6, "n": 200, "per_class": {"dog": 0.25}},
    "+ Visual-RFT": {"accuracy": 0.80449, "lenient_accuracy": None, "n": 200, "per_class": {"dog": 1.0}},
}


def test_markdown_table_models_side_by_side():
    expected = (
        "| metric | Qwen2-VL-2B | + Visual-RFT |\n"
        "| :--- | ---: | ---: |\n"
        "| accuracy | 51.2 | 80.4 |\n"
        "| lenient_accuracy | 60.0 | - |\n"
        "| n | 200 | 200 |\n"
    )
    assert markdown_table(RESULTS) == expected


def test_markdown_table_chosen_metrics_dotted_paths_and_missing():
    table = markdown_table(RESULTS, ["per_class.dog", "accuracy", "mAP"])
    assert table.splitlines()[2:] == [
        "| per_class.dog | 25.0 | 100.0 |",
        "| accuracy | 51.2 | 80.4 |",
        "| mAP | - | - |",
    ]


def test_markdown_table_models_as_rows_and_percent_choice():
    results = {"a": {"mAP": 0.25, "seconds": 1.5}, "b|c": {"mAP": 0.125, "seconds": 2.0}}
    table = markdown_table(results, percent={"mAP"}, models_as_rows=True)
    assert table.splitlines() == [
        "| model | mAP | seconds |",
        "| :--- | ---: | ---: |",
        "| a | 25.0 | 1.500 |",
        "| b\\|c | 12.5 | 2.000 |",
    ]
    assert "| mAP | 0.250 |" in markdown_table({"a": {"mAP": 0.25}}, percent=False)
    assert "| mAP | 25.00 |" in markdown_table({"a": {"mAP": 0.25}}, decimals=2)


def test_format_value():
    assert format_value(None) == "-"
    assert format_value(float("nan")) == "-"
    assert format_value(7) == "7"
    assert format_value(np.int64(7)) == "7"
    assert format_value(np.float32(0.5)) == "50.0"
    assert format_value(True) == "yes"
    assert format_value(0.0005) == "0.1"  # rounds half to even on the binary value: 0.05 -> 0.1
    assert format_value(1.0) == "100.0"
    assert format_value("n/a") == "n/a"


def test_lookup_prefers_exact_keys():
    metrics = {"acc@0.5": 0.3, "per_category": {"a.b": 1.0, "dog": {"AP": 0.5}}}
    assert lookup(metrics, "acc@0.5") == 0.3
    assert lookup(metrics, "per_category.dog.AP") == 0.5
    assert lookup(metrics, "per_category.cat") is None


def test_to_json_plain_values(tmp_path):
    results = {
        "m": {"mAP": np.float64(0.5), "n": np.int64(3), "bad": float("nan"), "per": {1: [np.float32(0.25)]}}
    }
    path = tmp_path / "out" / "metrics.json"
    text = to_json(results, path)
    assert json.loads(text) == {"m": {"mAP": 0.5, "n": 3, "bad": None, "per": {"1": [0.25]}}}
    assert path.read_text() == text
