"""Fixtures of the evaluation tests: a small mixed test set (classification, open-vocabulary detection,
grounding) on images of four sizes, and completions that answer it perfectly."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from visual_rft.data.answer import answer_text
from visual_rft.data.jsonl import write_samples
from visual_rft.data.types import Box, ClassTarget, DetectionTarget, GroundingTarget, Sample
from visual_rft.eval.completions import Completion
from visual_rft.eval.queries import detection_problem
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


def perfect_completions(samples, model_dir):
    """Completions with the right answer, in the model's own coordinate convention."""
    processor = load_processor(model_dir)
    convention = coord_convention(model_family(model_dir))
    records = []
    for s in samples:
        frame = coord_frame(convention, processor, s.width, s.height)
        records.append(Completion(s, answer_text(s, frame, think="easy"), frame))
    return records


@pytest.fixture
def perfect():
    """(samples, model_dir) -> completions with the right answer in the model's own convention."""
    return perfect_completions
