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
            record("dark purple star", "light purple cross"),  # colour only
            record("blue square", "dark blue square"),  # colour and shape, the shade wrong
            record("green triangle", "nothing readable here"),  # nothing (three words: it claims a shade)
        ],
    )
    acc = bench.word_accuracy(path)
    assert acc == {"n": 4, "exact": 0.25, "shape": 0.5, "colour": 0.75, "shade": 0.25}


def test_use_shapes_swaps_the_vocabulary_everywhere_it_is_derived():
    """In a process of its own: it changes module state that the other tests rely on."""
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "bench"
    code = f"""
import sys; sys.path.insert(0, {str(bench)!r})
import numpy as np
from world_shapes import use_shapes
from visual_rft import world as W
from visual_rft.recipes import vision_tower as V
from visual_rft.world.dense import cell_targets
use_shapes(["pentagon", "hexagon"])
assert list(W.SHAPES) == ["circle", "triangle", "square", "pentagon", "hexagon"], W.SHAPES
assert "dark purple pentagon" in W.CLASSIFICATION_BASE and "purple hexagon" in W.DETECTION_ALL
assert not any("star" in c or "cross" in c for c in W.CLASSIFICATION_BASE + W.DETECTION_ALL)
assert W.DETECTION_FEWSHOT is W.DETECTION_NOVEL and set(W.DETECTION_BASE) | set(W.DETECTION_NOVEL) == set(W.DETECTION_ALL)
assert V.TOKEN_HEADS["corner"] == 5 and V.CORNER_CLASS[5] == 3 and V.CORNER_CLASS[6] == 4
img, scene = W.classification_scene(np.random.default_rng(0), W.WorldConfig(), "red pentagon")
t = cell_targets(scene)
assert set(t.corner[t.corner > 0].tolist()) == {{5}} and V.SHAPE_CLASSES[3] == "pentagon"
assert (t.shape[t.obj == 0] == 3).all()
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
