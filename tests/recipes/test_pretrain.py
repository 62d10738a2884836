import json
from dataclasses import replace

import pytest
import torch
import yaml

from visual_rft.config import load_config
from visual_rft.data.jsonl import read_samples
from visual_rft.models.attention import HELD_EAGER
from visual_rft.models.loading import load_model
from visual_rft.models.tiny import write_tiny
from visual_rft.recipes.base_model import SHIPPED_BASE, THINK, default_base_model
from visual_rft.recipes.pretrain import PretrainConfig, run_pretrain, stage_binding, stage_configs
from visual_rft.recipes.pretrain_samples import grounded_detection, presence_pairs
from visual_rft.world import DETECTION_BASE, build_suite


@pytest.mark.slow
def test_pretrain_miniature_runs_every_stage_and_resumes(tmp_path):
    cfg = load_config(
        PretrainConfig,
        None,
        [
            f"out_dir={tmp_path / 'pre'}",
            "size=1m",
            "n_per_task=4",
            "vision.steps=2",
            "vision.batch_size=4",
            "locate.run.steps=2",
            "locate.sft.batch_size=4",
            "align.run.steps=2",
            "align.sft.batch_size=4",
            "joint.run.steps=2",
            "joint.sft.batch_size=4",
        ],
    )
    assert cfg.align.sft.think == THINK and cfg.align.model.freeze_vision  # the recipe's defaults stay
    assert cfg.locate.model.freeze_vision and cfg.locate.run.steps == 2
    assert cfg.joint.optim.vision_lr < cfg.joint.optim.lr
    base = run_pretrain(replace(cfg, progress=False))
    assert (base / "model.safetensors").exists() and base == tmp_path / "pre" / "base"
    for stage in ("locate", "align", "joint"):
        rows = (tmp_path / "pre" / stage / "metrics.jsonl").read_text().splitlines()
        assert len(rows) == 2
    joint = json.loads((tmp_path / "pre" / "joint" / "metrics.jsonl").read_text().splitlines()[-1])
    assert joint["lr/vision"] < joint["lr"]
    # the locate stage's default data: the one-object set and the base set's `name` queries, with the
    # binding loss (on eager attention) there alone
    assert (
        cfg.locate_kinds == ["single", "name"] and cfg.binding.weight > 0 and cfg.binding_stages == ["locate"]
    )
    world = tmp_path / "pre" / "world" / "grd_single_train.jsonl"
    assert all(json.loads(line)["meta"]["kind"] == "single" for line in world.read_text().splitlines())
    located = json.loads((tmp_path / "pre" / "locate" / "data.json").read_text())["n_samples"]
    assert located == 4 + sum(  # every one-object sample and every `name` sample of the base set
        json.loads(line)["meta"]["kind"] == "name"
        for line in (tmp_path / "pre" / "world" / "grd_base_train.jsonl").read_text().splitlines()
    )
    assert "binding/share" in json.loads(
        (tmp_path / "pre" / "locate" / "metrics.jsonl").read_text().splitlines()[0]
    )
    assert "binding/share" not in joint
    # the locate stage and stage 2 left the tower exactly as stage 1 wrote it; stage 3 moved it
    tower = {
        name: load_model(tmp_path / "pre" / path, device="cpu").model.visual.state_dict()
        for name, path in (
            ("vision", "vision/model"),
            ("locate", "locate/checkpoint-2/model"),
            ("align", "align/checkpoint-2/model"),
            ("base", "base"),
        )
    }
    assert all(torch.equal(v, tower["locate"][k]) for k, v in tower["vision"].items())
    assert all(torch.equal(v, tower["align"][k]) for k, v in tower["vision"].items())
    assert not all(torch.equal(v, tower["base"][k]) for k, v in tower["vision"].items())
    assert load_model(base, device="cpu").config.model_type == "qwen2_5_vl"
    # a second call finds every stage done and trains nothing more
    stamp = (tmp_path / "pre" / "joint" / "metrics.jsonl").stat().st_mtime_ns
    run_pretrain(replace(cfg, progress=False))
    assert (tmp_path / "pre" / "joint" / "metrics.jsonl").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_locate_phases_continue_the_locate_stage_each_with_its_steps_lr_kinds_and_short_prompts(tmp_path):
    out = tmp_path / "pre"
    miniature_pretrain(
        out,
        "binding.weight=1",
        "locate.sft.short_prompts=0.5",
        "locate_more=[{steps: 2, lr: 1e-4, kinds: [single, detection_single, presence], short_prompts: 1},"
        " {steps: 0},"
        " {steps: 1}]",
    )
    second, fourth = out / "locate2", out / "locate4"
    assert not (out / "locate3").exists()  # 0 steps: skipped
    # the second phase starts from the locate stage's last model, the fourth from the second's
    starts = {d: yaml.safe_load((d / "config.yaml").read_text())["model"]["path"] for d in (second, fourth)}
    assert starts == {
        second: str(out / "locate" / "checkpoint-2" / "model"),
        fourth: str(second / "checkpoint-2" / "model"),
    }
    rows = [json.loads(r) for r in (second / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and max(r["lr"] for r in rows) <= 1e-4  # its own peak lr (warm-up, cosine)
    assert all("binding/selectivity" in r for r in rows)  # the locate stage's losses
    singles = len(read_samples(out / "world" / "grd_single_train.jsonl"))
    asked = len(grounded_detection(read_samples(out / "world" / "grd_single_train.jsonl"), DETECTION_BASE, 0))
    scenes = read_samples(out / "world" / "grd_base_train.jsonl")
    names = sum(s.meta["kind"] == "name" for s in scenes)
    presence = 2 * len(presence_pairs(scenes, DETECTION_BASE, 0))
    n_samples = {d: json.loads((d / "data.json").read_text())["n_samples"] for d in (second, fourth)}
    # its own kinds (the one-object scenes, detection's question on them, the presence questions on the base
    # scenes), else the locate stage's
    assert 0 < asked <= singles and presence > 0
    assert n_samples == {second: singles + asked + presence, fourth: names}
    fourth_rows = [json.loads(r) for r in (fourth / "metrics.jsonl").read_text().splitlines()]
    assert len(fourth_rows) == 1
    # the second phase asks the question alone at every step; the fourth as the locate stage does, 1 step in 2
    firsts = [json.loads(r) for r in (out / "locate" / "metrics.jsonl").read_text().splitlines()]
    assert [r["short_prompts"] for r in firsts + rows + fourth_rows] == [0, 1, 1, 1, 0]
    final = fourth / "checkpoint-1" / "model" / "model.safetensors"
    assert (out / "base" / "model.safetensors").read_bytes() == final.read_bytes()


def test_a_locate_phase_sets_its_aggregation_and_the_presence_loss_follows_the_binding_stages():
    cfg = load_config(
        PretrainConfig,
        None,
        [
            "binding.presence_weight=2",
            "binding.continue_weight=3",
            "locate_more=[{steps: 5, aggregation: token}, {steps: 5}]",
        ],
    )
    aggregation = {section: stage.sft.aggregation for _, section, _, stage in stage_configs(cfg)}
    assert aggregation == {  # the phase's own, else the locate stage's
        "locate": "sequence",
        "locate_more[0]": "token",
        "locate_more[1]": "sequence",
        "align": "sequence",
        "joint": "sequence",
    }
    presence = {name: stage_binding(cfg, name).presence_weight for name in ("locate", "align", "joint")}
    held = {name: stage_binding(cfg, name).continue_weight for name in ("locate", "align", "joint")}
    assert held == {"locate": 3.0, "align": 0.0, "joint": 0.0}
    assert presence == {
        "locate": 2.0,
        "align": 0.0,
        "joint": 0.0,
    }  # binding_stages: the locate stage and its phases


def test_order_seed_changes_only_the_data_order_of_the_sft_stages(tmp_path):
    out = tmp_path / "pre"
    miniature_pretrain(out, "order_seed=7")
    assert json.loads((out / "world" / "world.json").read_text())["seed"] == 0  # the world of `seed`
    write_tiny(tmp_path / "tiny0", "qwen2_5_vl", "1m", seed=0)
    init = (out / "init" / "model.safetensors").read_bytes()
    assert init == (tmp_path / "tiny0" / "model.safetensors").read_bytes()  # the weights of `seed`
    run = yaml.safe_load((out / "locate" / "config.yaml").read_text())["run"]
    assert run["seed"] == 7  # the stage's data order (`rank_indices` follows run.seed)


def test_the_pretraining_files_are_drawn_in_the_world_of_stage_1(tmp_path):
    miniature_pretrain(
        tmp_path / "pre", "n_per_task=16", "locate.run.steps=0", "vision.world.digit_fills=true"
    )
    flat = build_suite(tmp_path / "flat", seed=0, n_pretrain=16, shots=(1,))  # the default world, same seed
    drawn = tmp_path / "pre" / "world"
    samples = read_samples(drawn / "det_base_train.jsonl")
    digits = [any(o.get("digit") for o in s.meta["objects"]) for s in samples]  # a digit other than 0 (solid)
    assert any(digits) and not all(digits)
    for s, has_digit in zip(samples, digits):
        image = s.images[0].split("/")[-1]
        same = (drawn / "images" / image).read_bytes() == (
            flat["det_base_train"].parent / "images" / image
        ).read_bytes()
        assert same != has_digit, s.id  # the same scenes; only the digits are drawn in their patterns


def miniature_pretrain(out, *overrides: str) -> None:
    """`run_pretrain` of the 1m model on 4 samples a task, no stage 1, locate on `name` scenes for 2 steps of 4,
    align and joint skipped unless `overrides` say otherwise."""
    base = ["size=1m", "n_per_task=4", "vision.steps=0", "locate_kinds=[name]", "locate.run.steps=2"]
    base += ["locate.sft.batch_size=4", "align.run.steps=0", "joint.run.steps=0"]
    cfg = load_config(PretrainConfig, None, [f"out_dir={out}", *base, *overrides])
    run_pretrain(replace(cfg, progress=False))


@pytest.mark.slow
def test_a_stage_with_the_binding_loss_runs_on_eager_attention_and_logs_the_selectivity(tmp_path):
    miniature_pretrain(tmp_path / "pre", "binding.weight=1.0")
    run = tmp_path / "pre" / "locate"
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(0 < r["binding/selectivity"] <= 1 for r in rows)
    model = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert model["attn_implementation"] == HELD_EAGER and model["cache_images"] is True
    assert (run / "binding.yaml").exists()
    saved = (run / "checkpoint-2" / "model" / "config.json").read_text()
    assert HELD_EAGER not in saved  # the checkpoint loads as any Qwen-VL
    load_model(run / "checkpoint-2" / "model", device="cpu")


@pytest.mark.slow
def test_the_position_loss_runs_in_the_stages_it_is_given_and_the_binding_loss_in_its_own(tmp_path):
    miniature_pretrain(
        tmp_path / "pre",
        "align.run.steps=2",
        "align.sft.batch_size=4",
        "binding.position_weight=1",
        "binding.position_layer=1",
        "position_stages=[locate, align]",
    )
    for stage, binding in (("locate", True), ("align", False)):
        rows = [json.loads(r) for r in (tmp_path / "pre" / stage / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all(r["position/cell_rmse"] >= 0 for r in rows), stage
        assert all(("binding/selectivity" in r) == binding for r in rows), stage
        saved = yaml.safe_load((tmp_path / "pre" / stage / "binding.yaml").read_text())
        assert saved["position_weight"] == 1.0 and saved["weight"] == (1.0 if binding else 0.0)
    model = yaml.safe_load((tmp_path / "pre" / "align" / "config.yaml").read_text())["model"]
    assert model["attn_implementation"] != HELD_EAGER  # no attention weights read: SDPA


def test_the_base_model_ships_with_the_package():
    assert default_base_model() == SHIPPED_BASE
    model = load_model(SHIPPED_BASE, device="cpu")
    assert model.config.model_type == "qwen2_5_vl" and sum(p.numel() for p in model.parameters()) < 6e6


def test_text_distance_is_written_into_init_and_kept_by_every_stage(tmp_path):
    out = tmp_path / "pre"
    miniature_pretrain(out, "text_distance=150")
    for folder in ("init", "locate/checkpoint-2/model", "base"):
        assert json.loads((out / folder / "config.json").read_text())["text_distance"] == 150
    assert "get_rope_index" in vars(load_model(out / "base", device="cpu").model)  # installed on load
    with pytest.raises(ValueError, match="text_distance: None but .*init/config.json holds 150"):
        miniature_pretrain(out)  # the same run folder without it: refused before anything runs
    with pytest.raises(ValueError, match="text_distance must be a positive int"):
        miniature_pretrain(tmp_path / "other", "text_distance=0")
