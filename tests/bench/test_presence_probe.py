"""bench/presence_probe.py: whether the model knows the asked category is in the image."""

from visual_rft.data.jsonl import read_samples
from visual_rft.recipes.pretrain import category_of
from visual_rft.world import DETECTION_BASE, build


def test_each_scene_is_asked_once_for_a_category_it_shows_and_once_for_one_it_does_not(load_bench, tmp_path):
    bench = load_bench("presence_probe")
    scenes = read_samples(build("grounding", tmp_path / "w", 30, seed=3, categories=["name"], name="name"))
    pairs = bench.presence_pairs(scenes, seed=0)
    with_base = [s for s in scenes if {category_of(o) for o in s.meta["objects"]} & set(DETECTION_BASE)]
    assert len(pairs) == len(with_base) > 10  # the scenes that show no base category are skipped
    for (present, absent), scene in zip(pairs, with_base):
        assert present.images == absent.images == scene.images and present.task == absent.task == "detection"
        shown = {category_of(o) for o in scene.meta["objects"]}
        asked = present.target.category
        assert asked in shown and asked in DETECTION_BASE and asked in present.problem
        instances = [o["box"] for o in scene.meta["objects"] if category_of(o) == asked]
        assert sorted(b.xyxy for b in present.target.boxes) == sorted(tuple(map(float, b)) for b in instances)
        assert absent.target.category not in shown and absent.target.category in DETECTION_BASE
        assert absent.target.boxes == () and absent.target.category in absent.problem
        assert [category_of(scene.meta["objects"][i]) for i in present.meta["instances"]] == [asked] * len(
            instances
        )
        assert absent.meta["instances"] == [] and present.meta["kind"] == absent.meta["kind"] == "presence"
    assert bench.presence_pairs(scenes, seed=0) == pairs  # the draw is the seed's


def test_the_probe_rows_and_the_readout_line_up_with_the_pairs(load_bench, tiny_model_dir, tmp_path):
    bench = load_bench("presence_probe")
    scenes = read_samples(build("grounding", tmp_path / "w", 12, seed=3, categories=["name"], name="name"))
    pairs = bench.presence_pairs(scenes, seed=0)
    result = bench.probe_model(tiny_model_dir, pairs, think="x")
    assert result["pairs"] == len(pairs)
    assert 0.0 <= result["readout AUC"] <= 1.0
    held = len(pairs) - int(bench.TRAIN_SHARE * len(pairs))
    assert result["layer 0"]["n"] == 2 * held and result["layer 0"]["majority"] == 0.5  # a pair a scene


def test_the_yes_no_questions_name_the_asked_instances_of_a_present_category_only(load_bench, tmp_path):
    bench = load_bench("presence_probe")
    scenes = read_samples(build("grounding", tmp_path / "w", 20, seed=5, categories=["name"], name="name"))
    pairs = bench.presence_pairs(scenes, seed=1)
    questions = bench.presence_questions(pairs)
    assert len(questions) == 2 * len(pairs)
    for q, asked in zip(questions, (s for pair in pairs for s in pair)):
        category = asked.target.category
        assert q.task == "classification" and q.problem == bench.PRESENCE_PROBLEM.format(category=category)
        assert q.meta == asked.meta and q.images == asked.images
        assert q.target.label == ("yes" if asked.target.boxes else "no")
