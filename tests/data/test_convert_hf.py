import pytest
from PIL import Image

from visual_rft.cli import main
from visual_rft.data.convert_hf import import_visual_rft, infer_task
from visual_rft.data.jsonl import DataError, check_file, read_samples
from visual_rft.data.types import Box, ClassTarget, DetectionTarget, GroundingTarget

datasets = pytest.importorskip("datasets")

ROWS = [
    (
        "Detect all objects belonging to the category 'dog' in the image, and provide the bounding boxes "
        "(between 0 and 1000, integer) and confidence (between 0 and 1, with two decimal places).\n If no object "
        "belonging to the category 'dog' in the image, return 'No Objects'.",
        "<answer>[{'Position': [100, 250, 500, 750], 'Confidence': 1}, {'Position': [600, 0, 1000, 1000], "
        "'Confidence': 1}]</answer>",
    ),
    ("Detect all objects belonging to the category 'cat' in the image, ...", "<answer>No Objects</answer>"),
    (
        "This is an image containing a flower. Please identify the species of the flower.",
        "<answer>bird of paradise</answer>",
    ),
    ("Where is the thing that can hold water?", "<answer> (500,0),(1000,500) </answer>"),
]


def _dataset():
    images = [Image.new("RGB", (200, 100), c) for c in ("red", "green", "blue", "white")]
    ds = datasets.Dataset.from_dict(
        {"image": images, "problem": [r[0] for r in ROWS], "solution": [r[1] for r in ROWS]}
    )
    return ds.cast_column("image", datasets.Image())


def _check(jsonl):
    samples = read_samples(jsonl)
    assert [s.task for s in samples] == ["detection", "detection", "classification", "grounding"]
    det = samples[0].target
    assert det == DetectionTarget((Box(20, 25, 100, 75, "dog"), Box(120, 0, 200, 100, "dog")), "dog")
    assert samples[0].problem == "Detect all objects belonging to the category 'dog' in the image."
    assert samples[0].meta["original_problem"] == ROWS[0][0]
    assert samples[1].target == DetectionTarget((), "cat")
    assert samples[2].target == ClassTarget("bird of paradise")
    assert samples[3].target == GroundingTarget(Box(100, 0, 200, 50))
    assert (samples[0].width, samples[0].height) == (200, 100)
    n, errors = check_file(jsonl)
    assert n == 4 and errors == []


def test_import_save_to_disk(tmp_path):
    _dataset().save_to_disk(str(tmp_path / "hf"))
    _check(import_visual_rft(tmp_path / "hf", tmp_path / "out"))


def test_import_parquet_through_the_cli(tmp_path):
    _dataset().to_parquet(str(tmp_path / "train.parquet"))
    assert main(["data", "import-visual-rft", str(tmp_path / "train.parquet"), str(tmp_path / "out")]) == 0
    _check(tmp_path / "out" / "data.jsonl")


def test_a_bad_solution_names_the_row_and_field(tmp_path):
    ds = _dataset().to_dict()
    ds["solution"][2] = "no answer tags here"
    datasets.Dataset.from_dict(ds).cast_column("image", datasets.Image()).save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(DataError, match=r"hf:2: field 'solution': no <answer>"):
        import_visual_rft(tmp_path / "hf", tmp_path / "out")


def test_infer_task():
    assert infer_task("No Objects") == "detection"
    assert infer_task("[{'Position': [1, 2, 3, 4], 'Confidence': 0.5}]") == "detection"
    assert infer_task(" (1,2),(3,4) ") == "grounding"
    assert infer_task("golden retriever") == "classification"
