"""bench/presence_binding.py: the binding loss at the position that decides a presence answer."""

import json

from visual_rft.data.jsonl import read_samples
from visual_rft.recipes.pretrain_samples import presence_pairs
from visual_rft.world import DETECTION_BASE, build


def _one_step(presence, model_dir, questions, out, weight=1.0, continue_weight=0.0, pick_weight=0.0):
    cfg = presence.SFTTrainConfig(
        model=presence.ModelConfig(
            path=str(model_dir), freeze_vision=True, attn_implementation=presence.HELD_EAGER
        ),
        optim=presence.OptimConfig(lr=1e-3),
        sft=presence.SFTConfig(batch_size=len(questions), think="x"),
        run=presence.RunConfig(output_dir=str(out), steps=1, save_every=0, tensorboard=False, progress=False),
    )
    presence.BindingSFTTrainer(
        cfg, presence.presence_binding(weight, continue_weight, pick_weight), questions
    ).fit()
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])


def test_the_loss_holds_the_present_questions_only(load_bench, tiny_model_dir, tmp_path):
    presence, probe = load_bench("presence_binding"), load_bench("presence_probe")
    scenes = read_samples(build("grounding", tmp_path / "w", 8, seed=2, categories=["name"], name="name"))
    questions = probe.presence_questions(presence_pairs(scenes, DETECTION_BASE, seed=0))
    present = [q for q in questions if q.meta["instances"]]
    both = _one_step(presence, tiny_model_dir, questions, tmp_path / "both")
    assert (
        0 < both["presence/share"] <= len(present) / len(questions)
    )  # a present category among other objects
    assert 0 < both["presence/chance"] < 1 and 0 <= both["presence/selectivity"] <= 1
    absent = _one_step(
        presence, tiny_model_dir, [q for q in questions if not q.meta["instances"]], tmp_path / "no"
    )
    assert absent["presence/share"] == 0  # an absent category has nothing to look at: the NLL alone


def test_weight_0_is_plain_sft(load_bench, tiny_model_dir, tmp_path):
    presence, probe = load_bench("presence_binding"), load_bench("presence_probe")
    scenes = read_samples(build("grounding", tmp_path / "w", 4, seed=2, categories=["name"], name="name"))
    questions = probe.presence_questions(presence_pairs(scenes, DETECTION_BASE, seed=0))
    row = _one_step(presence, tiny_model_dir, questions, tmp_path / "plain", weight=0.0)
    assert row["loss"] > 0 and not any(k.startswith(("presence/", "binding/")) for k in row)


def test_the_continue_weight_holds_each_box_close_of_answers_listing_several_instances(
    load_bench, tiny_model_dir, tmp_path
):
    presence = load_bench("presence_binding")
    detection = read_samples(build("detection", tmp_path / "w", 8, seed=4))
    several = sum(len(s.target.boxes) > 1 for s in detection)
    assert several
    row = _one_step(presence, tiny_model_dir, detection, tmp_path / "more", continue_weight=2.0)
    assert 0 < row["continue/share"] and 0 <= row["continue/selectivity"] <= 1 and "presence/share" in row
    plain = _one_step(presence, tiny_model_dir, detection, tmp_path / "start")  # the answer's start alone
    assert "continue/share" not in plain and "presence/share" in plain


def test_the_pick_weight_alone_holds_each_box_first_digit(load_bench, tiny_model_dir, tmp_path):
    presence = load_bench("presence_binding")
    detection = read_samples(build("detection", tmp_path / "w", 8, seed=4))
    row = _one_step(presence, tiny_model_dir, detection, tmp_path / "pick", weight=0.0, pick_weight=1.0)
    assert 0 <= row["binding/first_selectivity"] <= 1 and row["binding/loss"] > 0
    assert not any(k.startswith(("presence/", "continue/")) for k in row)  # nothing where the answer decides
