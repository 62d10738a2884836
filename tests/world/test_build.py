"""JSONL files and the whole suite (visual_rft/world/build.py): determinism, valid files, balanced
classes, errors, the suite's files and its unseen test images."""

import json

import numpy as np
import pytest
from PIL import Image

from visual_rft import world as W
from visual_rft.data.jsonl import check_file, read_samples
from visual_rft.data.types import ClassTarget


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


# ---------------------------------------------------------------- determinism


def test_same_seed_same_bytes_and_pixels(tmp_path):
    noisy = W.WorldConfig(noise=4.0)
    a = W.build("detection", tmp_path / "a", 12, seed=7, cfg=noisy)
    b = W.build("detection", tmp_path / "b", 12, seed=7, cfg=noisy)
    c = W.build("detection", tmp_path / "c", 12, seed=8, cfg=noisy)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    for sa, sb in zip(read_samples(a), read_samples(b)):
        np.testing.assert_array_equal(pixels(sa.image), pixels(sb.image))
    assert not all(
        np.array_equal(pixels(sa.image), pixels(sc.image)) for sa, sc in zip(read_samples(a), read_samples(c))
    )


def test_longer_file_extends_shorter_and_names_are_streams(tmp_path):
    short = read_samples(W.build("grounding", tmp_path / "short", 4, seed=0, name="g"))
    long = read_samples(W.build("grounding", tmp_path / "long", 8, seed=0, name="g"))
    assert [s.target for s in short] == [s.target for s in long[:4]]
    assert [s.problem for s in short] == [s.problem for s in long[:4]]
    other = read_samples(W.build("grounding", tmp_path / "short", 4, seed=0, name="other"))
    assert [s.target for s in other] != [s.target for s in short]


# ---------------------------------------------------------------- the files


@pytest.mark.parametrize("key", ["cls", "det_base", "det_novel", "grd"])
def test_files_pass_check_file(files, key):
    n, errors = check_file(files[key])
    assert n > 0 and errors == []
    for s in read_samples(files[key]):
        assert s.width and s.height
        assert s.width % 28 == 0 and s.height % 28 == 0 and 112 <= min(s.width, s.height) <= 224
        with Image.open(s.image) as im:
            assert im.size == (s.width, s.height)


def test_classification_labels_are_balanced_class_names(files):
    samples = read_samples(files["cls"])
    labels = [s.target.label for s in samples]
    assert all(isinstance(s.target, ClassTarget) for s in samples)
    assert sorted(set(labels)) == sorted(W.CLASSIFICATION_FEWSHOT)
    assert all(labels.count(c) == 2 for c in W.CLASSIFICATION_FEWSHOT)  # 48 = 2 rounds of 24
    assert "answer with its class name" in samples[0].problem.lower()


def test_unknown_task_and_kind_are_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        W.build("segmentation", tmp_path, 1, seed=0)
    with pytest.raises(ValueError, match="unknown grounding kinds"):
        W.build("grounding", tmp_path, 1, seed=0, categories=["counting"])


# ---------------------------------------------------------------- the suite


def test_build_suite_is_complete_and_tests_are_unseen(tmp_path):
    paths = W.build_suite(tmp_path, seed=1, n_pretrain=10, n_test=10, shots=(1, 2))
    for prefix in ("cls_base", "det_base", "grd_base", "grd_single"):
        assert {f"{prefix}_train", f"{prefix}_test"} <= set(paths)
    for prefix in ("cls_fewshot", "det_novel", "grd_reason", "det_ovd"):
        assert {f"{prefix}_pool", f"{prefix}_1shot", f"{prefix}_2shot", f"{prefix}_test"} <= set(paths)
    for p in paths.values():
        assert check_file(p)[1] == []
    assert (tmp_path / "world.json").is_file()
    train = {
        pixels(s.image).tobytes() for k in paths if not k.endswith("test") for s in read_samples(paths[k])
    }
    test = {pixels(s.image).tobytes() for k in paths if k.endswith("test") for s in read_samples(paths[k])}
    assert not train & test


def test_build_suite_without_pretraining_sets(tmp_path):
    from visual_rft.world import build_suite

    paths = build_suite(tmp_path, seed=0, n_pretrain=0, n_test=4, shots=(1,))
    assert not any(k.endswith("_train") for k in paths)
    assert {"det_novel_1shot", "det_novel_test", "cls_fewshot_1shot", "grd_reason_test"} <= set(paths)
    index = json.loads((tmp_path / "world.json").read_text())
    assert (
        index["seed"] == 0
        and index["config"]["digit_fills"] is False
        and index["config"]["image_size"] == [112, 224]
    )


def test_open_vocabulary_files_split_base_and_novel(tmp_path):
    """det_ovd trains on base categories; ovd_test alternates novel and base queries, marked by meta split."""
    paths = W.build_suite(tmp_path, seed=0, n_pretrain=0, n_test=6, shots=(1,))
    train = read_samples(paths["det_ovd_1shot"])
    assert {s.target.category for s in train} == set(W.DETECTION_BASE)
    test = read_samples(paths["ovd_test"])
    assert [s.meta["split"] for s in test] == ["novel", "base"] * 6
    novel = read_samples(paths["det_novel_test"])
    assert [s.id for s in test[::2]] == [s.id for s in novel]
    for s in test:
        assert s.target.category in (W.DETECTION_NOVEL if s.meta["split"] == "novel" else W.DETECTION_BASE)
