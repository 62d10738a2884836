"""bench/seen_classes_world.py: a few-shot folder of the base classes, tested on the world's cls_base_test."""

from visual_rft import world as W
from visual_rft.data.jsonl import read_samples


def test_seen_classes_world_reuses_the_base_test_set(load_bench, tmp_path):
    bench = load_bench("seen_classes_world")
    paths = bench.seen_classes_world(tmp_path / "seen", shots=(1, 2))
    one, two = read_samples(paths["1shot"]), read_samples(paths["2shot"])
    assert sorted(s.target.label for s in one) == sorted(W.CLASSIFICATION_BASE)  # one image per base class
    assert len(two) == 2 * len(W.CLASSIFICATION_BASE) and {s.id for s in one} <= {s.id for s in two}
    test = read_samples(tmp_path / "seen" / "cls_fewshot_test.jsonl")
    world_test = read_samples(
        W.build("classification", tmp_path / "world", 200, seed=0, name="cls_base_test")
    )
    assert [(s.id, s.target.label) for s in test] == [(s.id, s.target.label) for s in world_test]
    assert not {s.id for s in two} & {s.id for s in test}  # training images are not test images
