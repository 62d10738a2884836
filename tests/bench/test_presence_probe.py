"""bench/presence_probe.py: whether the model knows the asked category is in the image."""

from visual_rft.data.jsonl import read_samples
from visual_rft.recipes.pretrain_samples import presence_pairs
from visual_rft.world import DETECTION_BASE, build


def test_the_probe_rows_and_the_readout_line_up_with_the_pairs(load_bench, tiny_model_dir, tmp_path):
    bench = load_bench("presence_probe")
    scenes = read_samples(build("grounding", tmp_path / "w", 12, seed=3, categories=["name"], name="name"))
    pairs = presence_pairs(scenes, DETECTION_BASE, seed=0)
    result = bench.probe_model(tiny_model_dir, pairs, think="x")
    assert result["pairs"] == len(pairs)
    assert 0.0 <= result["readout AUC"] <= 1.0
    held = len(pairs) - int(bench.TRAIN_SHARE * len(pairs))
    assert result["layer 0"]["n"] == 2 * held and result["layer 0"]["majority"] == 0.5  # a pair a scene


def test_the_yes_no_questions_name_the_asked_instances_of_a_present_category_only(load_bench, tmp_path):
    bench = load_bench("presence_probe")
    scenes = read_samples(build("grounding", tmp_path / "w", 20, seed=5, categories=["name"], name="name"))
    pairs = presence_pairs(scenes, DETECTION_BASE, seed=1)
    questions = bench.presence_questions(pairs)
    assert len(questions) == 2 * len(pairs)
    for q, asked in zip(questions, (s for pair in pairs for s in pair)):
        category = asked.target.category
        assert q.task == "classification" and q.problem == bench.PRESENCE_PROBLEM.format(category=category)
        assert q.meta == asked.meta and q.images == asked.images
        assert q.target.label == ("yes" if asked.target.boxes else "no")
