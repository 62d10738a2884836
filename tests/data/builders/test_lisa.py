"""lisa on a small ReasonSeg folder written here: polygons -> mask PNG and its tight box."""

import json

import numpy as np
import pytest
from PIL import Image

from visual_rft.cli import main
from visual_rft.data.builders.lisa import IGNORE, TARGET, build_lisa, draw_mask, tight_box
from visual_rft.data.jsonl import check_file, read_samples


def _reasonseg(root, split, name, shapes, text=("the thing you sit on",), image=True):
    (root / split).mkdir(parents=True, exist_ok=True)
    if image:
        Image.new("RGB", (40, 30), "white").save(root / split / f"{name}.jpg")
    ann = {"text": list(text), "is_sentence": True, "shapes": shapes}
    (root / split / f"{name}.json").write_text(json.dumps(ann))


def _polygon(label, x1, y1, x2, y2):
    return {"label": label, "points": [[x1, y1], [x2, y1], [x2, y2], [x1, y2]], "shape_type": "polygon"}


def test_mask_and_tight_box_by_hand():
    shapes = [
        _polygon("target", 2, 3, 10, 8),
        _polygon("ignore", 4, 4, 6, 6),
        _polygon("target", 20, 1, 22, 2),
    ]
    mask = draw_mask(shapes, (30, 12))
    assert mask.shape == (12, 30)
    assert mask[5, 5] == IGNORE and mask[3, 2] == TARGET and mask[8, 10] == TARGET and mask[9, 5] == 0
    assert mask[1, 21] == TARGET  # any label other than ignore / flag is target
    assert tight_box(mask).xyxy == (2, 1, 23, 9)  # both targets; PIL fills the polygon's edge pixels
    assert tight_box(np.zeros((4, 4), np.uint8)) is None


def test_reasonseg_splits_become_grounding_files_with_masks(tmp_path):
    root = tmp_path / "ReasonSeg"
    _reasonseg(root, "train", "a", [_polygon("target", 5, 6, 15, 20)], text=("first", "second"))
    _reasonseg(root, "train", "b", [_polygon("ignore", 0, 0, 5, 5)])  # no target: skipped
    _reasonseg(root, "train", "c", [_polygon("target", 0, 0, 5, 5)], image=False)  # no image: skipped
    _reasonseg(root, "val", "d", [_polygon("target", 0, 0, 39, 29)])
    assert (
        main(
            [
                "data",
                "build",
                "lisa",
                "--root",
                str(root),
                "--out",
                str(tmp_path / "out"),
                "--splits",
                "train,val",
            ]
        )
        == 0
    )
    (a,) = read_samples(tmp_path / "out" / "train.jsonl")
    assert a.target.box.xyxy == (5, 6, 16, 21) and a.meta["texts"] == ["first", "second"]
    assert "first" in a.problem and (a.width, a.height) == (40, 30)
    mask = np.asarray(Image.open(a.meta["mask"]))
    assert mask.shape == (30, 40) and int((mask == TARGET).sum()) == 11 * 15
    report = json.loads((tmp_path / "out" / "build.json").read_text())
    assert report["skipped"] == {"no target polygon (train)": 1, "missing image (train)": 1}
    assert "train: 1 images, the paper counts 239" in report["notes"]
    for name in ("train.jsonl", "val.jsonl"):
        assert check_file(tmp_path / "out" / name)[1] == []


def test_a_missing_split_folder_is_an_error(tmp_path):
    (tmp_path / "ReasonSeg").mkdir()
    with pytest.raises(ValueError, match="ReasonSeg's test split"):
        build_lisa(tmp_path / "ReasonSeg", tmp_path / "out", splits=("test",))


def test_bad_shapes_are_an_error_naming_the_file(tmp_path):
    _reasonseg(tmp_path, "val", "x", [{"label": "target", "points": [["a", 1], [2, 2], [3, 1]]}])
    with pytest.raises(ValueError, match=r"x\.json: field 'shapes'"):
        build_lisa(tmp_path, tmp_path / "out", splits=("val",))
