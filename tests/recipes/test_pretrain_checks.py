"""recipes/pretrain.py's checks: a config the recipe cannot run is refused, naming the field, before the world
is drawn (`check_pretrain`)."""

from dataclasses import replace

import pytest

from visual_rft.config import load_config
from visual_rft.models.tiny import SIZES, write_tiny
from visual_rft.recipes.binding import BindingConfig
from visual_rft.recipes.pretrain import (
    LocatePhase,
    PretrainConfig,
    check_pretrain,
    run_pretrain,
)


@pytest.mark.parametrize("field", ["locate_kinds", "mix_kinds"])
def test_an_unknown_sample_kind_is_refused_before_any_work(tmp_path, field):
    cfg = PretrainConfig(out_dir=str(tmp_path / "pre"), **{field: ["single", "relation"]}, progress=False)
    with pytest.raises(ValueError, match=rf"{field}: \['relation'\]"):
        run_pretrain(cfg)
    assert not (tmp_path / "pre").exists()  # nothing built, nothing trained


def test_an_unknown_kind_for_the_binding_loss_is_refused_before_any_work(tmp_path):
    cfg = PretrainConfig(out_dir=str(tmp_path / "pre"), binding=BindingConfig(weight=1.0, kinds=["nme"]))
    with pytest.raises(ValueError, match=r"binding.kinds: \['nme'\]"):
        run_pretrain(replace(cfg, progress=False))
    assert not (tmp_path / "pre").exists()


@pytest.mark.parametrize("field", ["locate_kinds", "mix_kinds"])
def test_no_sample_kind_for_a_stage_with_steps_is_refused_before_any_work(tmp_path, field):
    cfg = PretrainConfig(out_dir=str(tmp_path / "pre"), **{field: []}, progress=False)
    with pytest.raises(ValueError, match=f"{field} is empty"):
        run_pretrain(cfg)
    assert not (tmp_path / "pre").exists()


def test_a_classification_share_outside_0_1_is_refused_before_any_work(tmp_path):
    cfg = PretrainConfig(out_dir=str(tmp_path / "pre"), locate_classification=1.5, progress=False)
    with pytest.raises(ValueError, match=r"locate_classification: 1.5"):
        run_pretrain(cfg)
    assert not (tmp_path / "pre").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("locate.sft.short_prompts=1.5", r"locate: sft.short_prompts: 1.5 is not a share"),
        ("align.sft.aggregation=mean", r"align: sft.aggregation must be token or sequence"),
        ("joint.run.precision=bf16", r"joint: run.precision must be auto or one of"),
        ("size=10m", r"size: '10m' is not one of \['1m', '20m', '5m'\]"),
        ("binding.heads=[6]", r"binding.heads: \[6\] are not heads of a 6-head layer"),
        ("binding.layers=[4]", r"binding.layers: \[4\] are not layers of a 4-layer language model"),
        (
            "binding.position_weight=1 binding.position_layer=0",
            r"binding.position_layer: 0 is not a layer 1..3",
        ),
        ("align.model.freeze_vision=false", r"align: model.cache_images=true needs model.freeze_vision"),
        ("vision.batch_size=0", r"vision: batch_size must be >= 1, got 0"),
        ("vision.detection_share=2", r"vision: detection_share: 2.0 is not a share"),
        ("vision.lr=-1e-3", r"vision: lr must be a number >= 0, got -0.001"),
        ("vision.save_every=-500", r"vision: save_every must be >= 0, got -500"),
        ("vision.corner_weight=-1", r"vision: corner_weight must be >= 0"),
    ],
)
def test_a_stage_config_that_sft_would_refuse_is_refused_before_the_first_stage(tmp_path, override, message):
    cfg = load_config(PretrainConfig, None, [f"out_dir={tmp_path / 'pre'}", *override.split()])
    with pytest.raises(ValueError, match=message):
        run_pretrain(replace(cfg, progress=False))
    assert not (tmp_path / "pre").exists()


def test_the_binding_is_checked_as_each_stage_runs_it():
    """A 2-layer model has no layer 2 to probe: refused where the position loss is on, not where it is off."""
    on = load_config(PretrainConfig, None, ["size=1m", "binding.position_weight=1"])
    with pytest.raises(ValueError, match=r"^locate: binding.position_layer: 2 is not a layer 1..1"):
        check_pretrain(on)
    check_pretrain(replace(on, position_stages=[]))
    check_pretrain(
        replace(on, locate=replace(on.locate, run=replace(on.locate.run, steps=0)), locate_more=[])
    )


def test_the_binding_heads_are_checked_against_an_init_that_is_already_there(tmp_path):
    """An init written by hand (here twelve heads a layer, not the 5m's six) is what the stages train."""
    write_tiny(tmp_path / "pre" / "init", "qwen2_5_vl", replace(SIZES["5m"], heads=12))
    cfg = load_config(PretrainConfig, None, [f"out_dir={tmp_path / 'pre'}", "binding.heads=[11, 12]"])
    with pytest.raises(ValueError, match=r"binding.heads: \[12\] are not heads of a 12-head layer"):
        run_pretrain(replace(cfg, progress=False))
    assert not (tmp_path / "pre" / "world").exists()


@pytest.mark.parametrize("field", ["binding_stages", "position_stages"])
def test_an_unknown_binding_or_position_stage_is_refused_before_any_work(tmp_path, field):
    cfg = PretrainConfig(out_dir=str(tmp_path / "pre"), **{field: ["locate", "vision"]}, progress=False)
    with pytest.raises(ValueError, match=rf"{field}: \['vision'\]"):
        run_pretrain(cfg)
    assert not (tmp_path / "pre").exists()


@pytest.mark.parametrize(
    "phase, message",
    [
        ("{steps: 5, kinds: [single, relation]}", r"locate_more\[1\].kinds: \['relation'\]"),
        ("{steps: 5, lr: 0}", r"locate_more\[1\]: steps 5 and lr 0.0"),
        ("{steps: -1}", r"locate_more\[1\]: steps -1"),
        ("{steps: 5, short_prompts: 1.5}", r"locate_more\[1\].short_prompts: 1.5 is not a share"),
        ("{steps: 5, aggregation: answer}", r"locate_more\[1\]: sft.aggregation must be token or sequence"),
    ],
)
def test_a_bad_locate_phase_is_refused_before_any_work(tmp_path, phase, message):
    overrides = [f"out_dir={tmp_path / 'pre'}", f"locate_more=[{{steps: 5}}, {phase}]"]
    cfg = load_config(PretrainConfig, None, overrides)
    with pytest.raises(ValueError, match=message):
        run_pretrain(replace(cfg, progress=False))
    assert not (tmp_path / "pre").exists()


def test_a_locate_phase_without_kinds_needs_the_locate_stage_to_have_some(tmp_path):
    cfg = PretrainConfig(
        out_dir=str(tmp_path / "pre"), locate_kinds=[], locate_more=[LocatePhase(steps=3)], progress=False
    )
    cfg = replace(cfg, locate=replace(cfg.locate, run=replace(cfg.locate.run, steps=0)))
    with pytest.raises(ValueError, match=r"locate_more\[0\].kinds is empty"):
        run_pretrain(cfg)
    assert not (tmp_path / "pre").exists()


def test_a_skipped_vision_stage_is_not_checked(tmp_path):
    cfg = load_config(
        PretrainConfig, None, [f"out_dir={tmp_path / 'pre'}", "vision.steps=0", "vision.batch_size=0"]
    )
    check_pretrain(cfg)  # the stage does not run: its settings do not matter
