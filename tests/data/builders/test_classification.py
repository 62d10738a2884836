"""classification from a CoOp split file and from ImageFolder trees, written here with tiny images."""

import json

import pytest
from PIL import Image

from visual_rft.cli import main
from visual_rft.data.builders.classification import build_classification
from visual_rft.data.jsonl import DataError, check_file, read_samples
from visual_rft.data.prompts import CLASSIFICATION_PROBLEMS


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), "white").save(path)


@pytest.fixture
def coop(tmp_path):
    """split_zhou_OxfordPets.json layout: 3 train images per class (one file missing), 1 test each."""
    split = {"train": [], "val": [], "test": []}
    for label, name in enumerate(["abyssinian", "american_bulldog"]):
        for i in range(3):
            split["train"].append([f"{name}_{i}.jpg", label, name])
        split["test"].append([f"{name}_test.jpg", label, name])
    for part in ("train", "test"):
        for rel, _, _ in split[part]:
            if rel != "american_bulldog_2.jpg":
                _image(tmp_path / "images" / rel)
    (tmp_path / "split_zhou_OxfordPets.json").write_text(json.dumps(split))
    return tmp_path


def test_coop_split_gives_nested_kshot_files_with_coop_class_names(coop):
    report = build_classification(
        coop / "out",
        split_json=coop / "split_zhou_OxfordPets.json",
        images=coop / "images",
        dataset="pets",
        shots=(1, 2, 3),
        seed=1,
    )
    sets = {k: read_samples(coop / "out" / f"train_{k}shot.jsonl") for k in (1, 2, 3)}
    assert [len(sets[k]) for k in (1, 2, 3)] == [2, 4, 3]  # the bulldog has 2 images: left out at 3
    assert {s.id for s in sets[1]} <= {s.id for s in sets[2]}
    assert {s.target.label for s in sets[3]} == {"abyssinian"}
    assert sets[1][0].problem == CLASSIFICATION_PROBLEMS["pets"]
    assert report.examples["missing image (train)"][0].endswith("american_bulldog_2.jpg")
    assert report.examples["fewer than 3 shots: left out of train_3shot.jsonl"] == ["american_bulldog (2)"]
    test = read_samples(coop / "out" / "test.jsonl")
    assert [(s.target.label, s.meta["label_index"]) for s in test] == [
        ("abyssinian", 0),
        ("american_bulldog", 1),
    ]
    for name in report.written:
        assert check_file(coop / "out" / name)[1] == []


def test_image_folders_through_the_cli(tmp_path):
    for split, n in (("train", 2), ("test", 1)):
        for cls in ("pink_primrose", "canterbury_bells"):
            for i in range(n):
                _image(tmp_path / split / cls / f"{i}.png")
    (tmp_path / "train" / "pink_primrose" / "notes.txt").write_text("x")
    args = [
        "data",
        "build",
        "classification",
        "--train-dir",
        str(tmp_path / "train"),
        "--test-dir",
        str(tmp_path / "test"),
        "--dataset",
        "flowers",
        "--shots",
        "1,2",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(args) == 0
    labels = sorted(s.target.label for s in read_samples(tmp_path / "out" / "train_2shot.jsonl"))
    assert labels == ["canterbury bells"] * 2 + ["pink primrose"] * 2
    assert json.loads((tmp_path / "out" / "build.json").read_text())["skipped"] == {"not an image (train)": 1}


def test_a_bad_split_file_names_the_record(coop):
    (coop / "bad.json").write_text(json.dumps({"train": [["a.jpg", 0]], "test": []}))
    with pytest.raises(
        DataError, match=r"bad\.json: field 'train\[0\]': expected \[path, label, class name\]"
    ):
        build_classification(
            coop / "out", split_json=coop / "bad.json", images=coop / "images", dataset="pets"
        )
    with pytest.raises(ValueError, match="dataset 'birds'"):
        build_classification(
            coop / "out", split_json=coop / "bad.json", images=coop / "images", dataset="birds"
        )


def test_fgvc_aircraft_listings_as_coop_reads_them(tmp_path):
    data = tmp_path / "data"
    for image_id in (1000, 1001, 1002):
        _image(data / "images" / f"{image_id}.jpg")
    (data / "images_variant_train.txt").write_text(
        "1000 707-320\n1001 A300B4\n1003 A300B4\n"
    )  # 1003: no image
    (data / "images_variant_test.txt").write_text("1002 707-320\n")
    report = build_classification(tmp_path / "out", fgvc_dir=data, dataset="aircraft", shots=(1,))
    train = read_samples(tmp_path / "out" / "train_1shot.jsonl")
    assert sorted(s.target.label for s in train) == ["707-320", "A300B4"]
    assert [s.target.label for s in read_samples(tmp_path / "out" / "test.jsonl")] == ["707-320"]
    assert report.skipped == {"missing image (train)": 1}
    (data / "images_variant_test.txt").write_text("1002\n")
    with pytest.raises(DataError, match=r"images_variant_test\.txt:1: expected"):
        build_classification(tmp_path / "out", fgvc_dir=data, dataset="aircraft")
