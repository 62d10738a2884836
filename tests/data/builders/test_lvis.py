"""lvis-fewshot / lvis-ovd on small LVIS v1 files written here: federated labels, coco_url file names."""

import json
import shutil

import pytest
from PIL import Image

from visual_rft.cli import main
from visual_rft.data.builders.lvis import build_lvis_fewshot, build_lvis_ovd
from visual_rft.data.jsonl import DataError, check_file, read_samples

CATEGORIES = [
    {"id": 1, "name": "die", "frequency": "r", "synonyms": ["dice"]},
    {"id": 2, "name": "omelet", "frequency": "r", "synonyms": ["omelet"]},
    {"id": 3, "name": "dog", "frequency": "f", "synonyms": ["dog"]},
]


def write_lvis(path, images_dir, images, anns):
    """An LVIS v1 file: images = {id: (neg_category_ids, not_exhaustive_category_ids)}; 40x30 JPEGs."""
    images_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for image_id, (neg, not_exhaustive) in images.items():
        url = f"http://images.cocodataset.org/train2017/{image_id:012d}.jpg"
        entries.append(
            {
                "id": image_id,
                "coco_url": url,
                "width": 40,
                "height": 30,
                "neg_category_ids": neg,
                "not_exhaustive_category_ids": not_exhaustive,
            }
        )
        Image.new("RGB", (40, 30), "gray").save(images_dir / f"{image_id:012d}.jpg")
    anns = [
        {"id": i + 1, "image_id": im, "category_id": c, "bbox": b, "area": 1.0}
        for i, (im, c, b) in enumerate(anns)
    ]
    path.write_text(json.dumps({"images": entries, "annotations": anns, "categories": CATEGORIES}))
    return path


@pytest.fixture
def lvis(tmp_path):
    images = tmp_path / "images"
    # dice on 1, 2, 3 (3 not exhaustive); omelet on 2; image 4: die verified absent; 5: nothing verified
    train = write_lvis(
        tmp_path / "train.json",
        images,
        {1: ([], []), 2: ([], []), 3: ([], [1]), 4: ([1], []), 5: ([], [])},
        [(1, 1, [0, 0, 10, 10]), (2, 1, [5, 5, 5, 5]), (3, 1, [1, 1, 4, 4]), (2, 2, [2, 3, 20, 20])],
    )
    val = write_lvis(
        tmp_path / "val.json", images, {11: ([2], []), 12: ([], [1]), 13: ([], [])}, [(12, 1, [0, 0, 8, 8])]
    )
    return tmp_path, train, val, images


def test_fewshot_honours_federated_labels(lvis):
    root, train, val, images = lvis
    report = build_lvis_fewshot(
        train, val, [images], root / "out", categories=("die", "omelet", "dog"), shots=(1, 2, 3)
    )
    out = root / "out"
    two = read_samples(out / "train_2shot.jsonl")
    assert sorted(s.id for s in two) == ["train-1-die", "train-2-die"]  # 3: not exhaustive; 4: absent
    omelet = [s for s in read_samples(out / "train_1shot.jsonl") if s.target.category == "omelet"]
    assert [s.target.boxes[0].xyxy for s in omelet] == [(2, 3, 22, 23)]
    assert not (out / "train_3shot.jsonl").exists()
    assert report.examples["training query on a not-exhaustively labelled image"] == ["image 3 / die"]
    assert "dog is not a rare ('r') LVIS category: 'f'" in report.notes
    test = read_samples(out / "test.jsonl")  # only verified pairs: 11 omelet (neg), 12 die (not exhaustive)
    assert [
        (s.meta["image_id"], s.target.category, len(s.target.boxes), s.meta.get("not_exhaustive"))
        for s in test
    ] == [(11, "omelet", 0, None), (12, "die", 1, True)]
    assert all(s.meta["federated"] for s in test)  # vrft eval adds no unverified query to it
    for name in report.written:
        assert check_file(out / name)[1] == []


def test_ovd_writes_novel_queries_through_the_cli(lvis):
    root, _, val, images = lvis
    args = [
        "data",
        "build",
        "lvis-ovd",
        "--val-json",
        str(val),
        "--images",
        str(root / "none"),
        "--images",
        str(images),
        "--out",
        str(root / "ovd"),
        "--categories",
        "die,omelet",
    ]
    (root / "none").mkdir()
    assert main(args) == 0
    test = read_samples(root / "ovd" / "test_novel.jsonl")
    assert {s.meta["split"] for s in test} == {"novel"} and len(test) == 2


def test_a_missing_image_is_skipped_and_a_missing_category_is_an_error(lvis):
    root, train, val, images = lvis
    (images / f"{1:012d}.jpg").unlink()
    report = build_lvis_fewshot(train, val, [images], root / "out", categories=("die",), shots=(1,))
    assert report.skipped["missing image"] == 1 and report.written["train_1shot.jsonl"] == 1
    shutil.copytree(images, root / "coco" / "train2017")  # the official layout: a folder holding train2017/
    report = build_lvis_fewshot(train, val, [root / "coco"], root / "out2", categories=("die",), shots=(1,))
    assert report.written["train_1shot.jsonl"] == 1 and report.skipped["missing image"] == 1
    with pytest.raises(DataError, match="'papaya' is not in the file"):
        build_lvis_ovd(val, [images], root / "ovd", categories=("papaya",))
