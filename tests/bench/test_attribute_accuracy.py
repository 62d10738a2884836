"""bench/attribute_accuracy.py: word-by-word accuracy of composed class names, from an eval's completions."""

import json

import pytest


def row(answer, truth):
    return {
        "completion": f"<think>t</think><answer>{answer}</answer>",
        "sample": {"id": "x", "task": "classification", "target": {"label": truth}},
    }


def test_words_are_scored_position_by_position(load_bench, tmp_path):
    bench = load_bench("attribute_accuracy")
    path = tmp_path / "completions.jsonl"
    rows = [
        row("dark red circle", "dark red circle"),  # all right
        row("dark blue circle", "dark red circle"),  # shade and shape
        row("light red square", "dark_red_square"),  # colour and shape (names normalised)
        row("red circle", "dark red circle"),  # wrong length: no word counts
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    a = bench.attribute_accuracy(path)
    assert a["n"] == 4 and a["exact"] == pytest.approx(1 / 4) and a["distinct"] == 4
    assert a["words"] == pytest.approx([2 / 4, 2 / 4, 3 / 4])


def test_an_empty_file_is_an_error_naming_it(load_bench, tmp_path):
    path = tmp_path / "completions.jsonl"
    path.write_text("")
    with pytest.raises(ValueError, match="completions.jsonl: no completions"):
        load_bench("attribute_accuracy").attribute_accuracy(path)
