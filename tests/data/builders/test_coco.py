"""coco-fewshot / coco-ovd on a small COCO instances file written here (the real format), tiny JPEGs."""

import json

import pytest
from PIL import Image

from visual_rft.cli import main
from visual_rft.data.builders.coco import build_coco_fewshot, build_coco_ovd
from visual_rft.data.jsonl import DataError, check_file, read_samples
from visual_rft.eval.queries import plan_queries

CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 18, "name": "bus"}]


def _ann(i, image, cat, bbox, crowd=0):
    return {"id": i, "image_id": image, "category_id": cat, "bbox": bbox, "iscrowd": crowd, "area": 1.0}


def write_coco(folder, images, anns, missing=()):
    """instances.json + images/ (64x48 JPEGs; the names in `missing` are not written)."""
    (folder / "images").mkdir(parents=True)
    entries = []
    for image_id in images:
        name = f"{image_id:012d}.jpg"
        entries.append({"id": image_id, "file_name": name, "width": 64, "height": 48})
        if image_id not in missing:
            Image.new("RGB", (64, 48), (image_id * 20 % 255, 80, 160)).save(folder / "images" / name)
    path = folder / "instances.json"
    anns = [_ann(i + 1, *a) for i, a in enumerate(anns)]
    path.write_text(json.dumps({"images": entries, "annotations": anns, "categories": CATEGORIES}))
    return path, folder / "images"


@pytest.fixture
def coco(tmp_path):
    # cats on images 1-5 (image 5's file is missing, image 4's cat is a crowd box), dogs on 1-6, no bus
    train_anns = [(i, 1, [10, 20, 30, 20]) for i in (1, 2, 3, 5)] + [(4, 1, [0, 0, 64, 48], 1)]
    train_anns += [(i, 2, [5, 5, 10, 10]) for i in range(1, 7)] + [(6, 2, [50, 40, 30, 30])]  # clipped
    train = write_coco(tmp_path / "train", range(1, 8), train_anns, missing=(5,))
    val = write_coco(tmp_path / "val", (101, 102), [(101, 1, [1, 2, 3, 4]), (102, 2, [0, 0, 8, 8], 1)])
    return tmp_path, train, val


def inputs(coco):
    """The four inputs of the COCO builders: train JSON, train images, val JSON, val images."""
    _, (train_json, train_dir), (val_json, val_dir) = coco
    return train_json, train_dir, val_json, val_dir


def test_fewshot_files_are_nested_in_pixels_checked_and_report_what_they_skip(coco):
    root, (train_json, train_dir), (val_json, val_dir) = coco
    report = build_coco_fewshot(
        *inputs(coco),
        root / "out",
        categories=("cat", "dog"),
        shots=(1, 2, 4, 5),
        seed=3,
    )
    out = root / "out"
    sets = {k: read_samples(out / f"train_{k}shot.jsonl") for k in (1, 2, 4, 5)}
    ids = {k: {s.id for s in v} for k, v in sets.items()}
    by_cat = {k: sorted(s.target.category for s in v) for k, v in sets.items()}
    assert by_cat[1] == ["cat", "dog"] and by_cat[2] == ["cat", "cat", "dog", "dog"]
    assert by_cat[4] == ["dog"] * 4  # only 3 usable cats: 5's image is missing, 4's box is a crowd
    assert ids[1] <= ids[2] and {i for i in ids[2] if i.endswith("dog")} <= ids[4] <= ids[5]
    dog6 = next(s for s in sets[5] if s.id == "train-6-dog")  # all 5 usable dogs
    assert [b.xyxy for b in dog6.target.boxes] == [(5, 5, 15, 15), (50, 40, 64, 48)]  # xywh -> xyxy, clipped
    assert (dog6.width, dog6.height, dog6.meta["image_id"]) == (64, 48, 6)
    assert report.skipped["missing image"] == 2  # image 5: its cat and its dog
    assert report.skipped["training query with a crowd box"] == 1
    assert report.examples["fewer than 4 shots: left out of train_4shot.jsonl"] == ["cat (3)"]
    test = read_samples(out / "test.jsonl")  # every val image x category, the crowd-only query left out
    assert test[0].target.boxes[0].xyxy == (1, 2, 4, 6)
    assert [(s.meta["image_id"], s.target.category, len(s.target.boxes)) for s in test] == [
        (101, "cat", 1),
        (101, "dog", 0),
        (102, "cat", 0),
    ]
    assert report.skipped["crowd box dropped from a test query"] == 1
    for name in report.written:
        n, errors = check_file(out / name)
        assert errors == [] and n == report.written[name]
    assert json.loads((out / "build.json").read_text())["written"] == report.written


def test_fewshot_is_deterministic_for_a_seed(coco):
    root, (train_json, train_dir), (val_json, val_dir) = coco
    texts = []
    for run in ("a", "b"):
        build_coco_fewshot(
            train_json, train_dir, val_json, val_dir, root / run, categories=("dog",), shots=(2,)
        )
        texts.append((root / run / "train_2shot.jsonl").read_text())
    assert texts[0] == texts[1]


def test_a_category_absent_from_the_file_is_an_error_naming_it(coco):
    root, (train_json, train_dir), (val_json, val_dir) = coco
    with pytest.raises(DataError, match=r"instances\.json.*'dgo'.*did you mean 'dog'"):
        build_coco_fewshot(train_json, train_dir, val_json, val_dir, root / "out", categories=("dgo",))
    assert not (root / "out").exists()


def test_k_larger_than_any_category_writes_no_file_and_says_so(coco):
    root, (train_json, train_dir), (val_json, val_dir) = coco
    report = build_coco_fewshot(
        *inputs(coco),
        root / "out",
        categories=("cat", "dog", "bus"),
        shots=(1, 16),
    )
    assert not (root / "out" / "train_16shot.jsonl").exists()
    assert report.examples["no class has enough shots: file not written"] == ["train_16shot.jsonl"]
    assert "bus (0)" in report.examples["fewer than 1 shots: left out of train_1shot.jsonl"]


def test_ovd_trains_on_base_and_tests_on_novel_through_the_cli(coco, capsys):
    root, (train_json, train_dir), (val_json, val_dir) = coco
    args = [
        "data",
        "build",
        "coco-ovd",
        "--train-json",
        str(train_json),
        "--train-images",
        str(train_dir),
        "--val-json",
        str(val_json),
        "--val-images",
        str(val_dir),
        "--out",
        str(root / "ovd"),
        "--categories",
        "cat",
        "--per-category",
        "2",
    ]
    assert main(args) == 0
    train = read_samples(root / "ovd" / "train_2shot.jsonl")
    assert {s.target.category for s in train} == {"dog"} and {s.meta["split"] for s in train} == {"base"}
    test = read_samples(root / "ovd" / "test_novel.jsonl")
    assert [(s.target.category, s.meta["split"]) for s in test] == [("cat", "novel")] * 2
    assert "train_2shot.jsonl: 2 records" in capsys.readouterr().out
    assert (
        build_coco_ovd(
            train_json,
            train_dir,
            val_json,
            val_dir,
            root / "all",
            novel=("cat",),
            per_category=1,
            test_split="all",
        ).written["test_all.jsonl"]
        == 5
    )


def test_the_cli_names_a_missing_option(coco, capsys):
    assert main(["data", "build", "coco-fewshot", "--out", "x"]) == 2
    assert "needs --train-json, --train-images, --val-json, --val-images" in capsys.readouterr().err


def test_a_record_without_a_bbox_is_an_error_naming_it(coco):
    root, (train_json, train_dir), (val_json, val_dir) = coco
    data = json.loads(train_json.read_text())
    del data["annotations"][2]["bbox"]
    train_json.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"instances\.json: field 'annotations\[2\]\.bbox': missing"):
        build_coco_fewshot(train_json, train_dir, val_json, val_dir, root / "out", categories=("cat",))


def test_the_official_existence_map_picks_the_test_queries_by_image_id(coco):
    root = coco[0]
    build_coco_fewshot(*inputs(coco), root / "out", categories=("cat", "dog"), shots=(1,))
    (root / "exist_map.json").write_text(json.dumps({"101": ["dog", "person"], "102": []}))  # official layout
    plan = plan_queries(read_samples(root / "out" / "test.jsonl"), str(root / "exist_map.json"))
    assert [(s.meta["image_id"], s.target.category) for s, asked in plan if asked] == [(101, "dog")]
