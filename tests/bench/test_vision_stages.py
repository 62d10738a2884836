"""bench/vision_stages.py: word-by-word accuracy of class answers (shape, colour, shade)."""

from visual_rft.data.types import ClassTarget, Sample
from visual_rft.eval.completions import Completion, write_completions


def test_word_accuracy_reads_shape_colour_and_shade(load_bench, tmp_path):
    bench = load_bench("vision_stages")

    def record(label, answer):
        sample = Sample(label, ["x.png"], "classification", "?", ClassTarget(label), 112, 112)
        return Completion(sample, f"<think>t</think><answer>{answer}</answer>", None)

    path = tmp_path / "completions.jsonl"
    write_completions(
        path,
        [
            record("red circle", "red circle"),  # all right (mid shade on both sides)
            record("dark purple pentagon", "light purple hexagon"),  # colour only
            record("blue square", "dark blue square"),  # colour and shape, the shade wrong
            record("green triangle", "nothing readable here"),  # nothing (three words: it claims a shade)
        ],
    )
    acc = bench.word_accuracy(path)
    assert acc == {"n": 4, "exact": 0.25, "shape": 0.5, "colour": 0.75, "shade": 0.25}
