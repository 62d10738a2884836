"""LoRA on the tiny model: adapters in the language model only, frozen vision, reference pass, eval_mode."""

import pytest
import torch

from visual_rft.config import LoraConfig, ModelConfig
from visual_rft.models.inputs import encode_prompts
from visual_rft.models.loading import load_model, load_processor
from visual_rft.models.lora import (
    eval_mode,
    is_lora,
    prepare_for_training,
    reference_context,
    trainable_parameters,
    vision_modules,
)

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _lora_cfg(**kw):
    return ModelConfig(lora=LoraConfig(enabled=True, r=4, alpha=8, dropout=0.0), **kw)


def _logits(model, inputs):
    with torch.no_grad(), eval_mode(model):
        return model(**inputs).logits


def test_lora_adapters_sit_in_the_language_model_only(tiny_model_dir):
    model = prepare_for_training(load_model(tiny_model_dir, device="cpu"), _lora_cfg())
    assert is_lora(model) and model.training
    lora_modules = [n for n, _ in model.named_modules() if n.endswith(".lora_A")]
    # 2 decoder layers x 7 target projections; the vision tower's own gate/up/down_proj get none
    assert len(lora_modules) == 2 * len(TARGETS)
    assert not [n for n in lora_modules if "visual" in n]
    assert all(".language_model.layers." in n for n in lora_modules)
    assert {n.split(".")[-2] for n in lora_modules} == set(TARGETS)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * 2 * len(TARGETS)  # lora_A and lora_B of each
    assert all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert trainable_parameters(model) == [p for p in model.parameters() if p.requires_grad]
    # r = 4: lora_A is [4, in], lora_B is [out, 4]
    q = model.get_base_model().model.language_model.layers[0].self_attn.q_proj
    assert q.lora_A["default"].weight.shape == (4, 96) and q.lora_B["default"].weight.shape == (96, 4)
    assert q.scaling["default"] == 8 / 4


def test_lora_on_chosen_modules_only(tiny_model_dir):
    cfg = ModelConfig(lora=LoraConfig(enabled=True, r=2, target_modules=["q_proj", "v_proj"]))
    model = prepare_for_training(load_model(tiny_model_dir, device="cpu"), cfg)
    names = {n.split(".")[-2] for n, _ in model.named_modules() if n.endswith(".lora_A")}
    assert names == {"q_proj", "v_proj"}


def test_freeze_vision_freezes_exactly_the_vision_tower(tiny_model_dir):
    model = load_model(tiny_model_dir, device="cpu")
    model = prepare_for_training(model, ModelConfig(freeze_vision=True))
    assert not is_lora(model) and model.training
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    vision = {"model.visual." + n for n, _ in vision_modules(model).named_parameters()}
    assert frozen == vision and vision
    assert any(n.startswith("model.visual.merger.") for n in frozen)  # the merger is part of the tower
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("model.visual."))


def test_no_options_leave_everything_trainable(tiny_model_dir):
    model = load_model(tiny_model_dir, device="cpu")
    assert not model.training
    model = prepare_for_training(model, ModelConfig())
    assert model.training and len(trainable_parameters(model)) == len(list(model.parameters()))


def test_gradient_checkpointing_turns_off_the_cache(tiny_model_dir):
    model = prepare_for_training(
        load_model(tiny_model_dir, device="cpu"), _lora_cfg(gradient_checkpointing=True)
    )
    assert model.get_base_model().is_activation_checkpointing
    assert model.get_base_model().config.use_cache is False


def test_reference_context_gives_the_base_models_logits(tiny_model_dir, toy_samples):
    processor = load_processor(tiny_model_dir)
    inputs, _ = encode_prompts(toy_samples[:2], processor, "resized_pixels")
    base = load_model(tiny_model_dir, device="cpu")
    base_logits = _logits(base, inputs)
    model = prepare_for_training(base, _lora_cfg())
    # fresh adapters start as the identity (lora_B = 0): perturb them so the policy differs from the base
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".lora_B." in n:
                p.normal_(0, 0.5)
    policy_logits = _logits(model, inputs)
    assert (policy_logits - base_logits).abs().max() > 1e-3
    with reference_context(model):
        reference_logits = _logits(model, inputs)
    torch.testing.assert_close(reference_logits, base_logits, rtol=1e-5, atol=1e-5)
    # leaving the context switches the adapters back on
    torch.testing.assert_close(_logits(model, inputs), policy_logits, rtol=0, atol=0)


def test_reference_context_without_lora_is_a_no_op(tiny_model_dir):
    model = load_model(tiny_model_dir, device="cpu")
    with reference_context(model) as ctx:
        assert ctx is None


def test_resume_from_a_saved_adapter(tiny_model_dir, tmp_path):
    model = prepare_for_training(load_model(tiny_model_dir, device="cpu"), _lora_cfg())
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".lora_B." in n:
                p.fill_(0.01)
    model.save_pretrained(tmp_path / "adapter")
    saved = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    again = prepare_for_training(
        load_model(tiny_model_dir, device="cpu"), _lora_cfg(), adapter=tmp_path / "adapter"
    )
    restored = {n: p.detach() for n, p in again.named_parameters() if p.requires_grad}
    assert restored.keys() == saved.keys()
    for n in saved:
        torch.testing.assert_close(restored[n], saved[n], rtol=0, atol=0)


@pytest.mark.parametrize("start_training", [True, False])
def test_eval_mode_restores_the_training_flag(tiny_model_dir, start_training):
    model = prepare_for_training(
        load_model(tiny_model_dir, device="cpu"), ModelConfig(lora=LoraConfig(enabled=True))
    )
    model.train(start_training)
    with eval_mode(model) as m:
        assert m is model
        assert not any(mod.training for mod in model.modules())  # LoRA dropout included
    assert model.training is start_training
    assert all(mod.training is start_training for mod in model.modules())


def test_eval_mode_restores_the_flag_after_an_error(tiny_model_dir):
    model = load_model(tiny_model_dir, device="cpu").train()
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("rollout failed")
    assert model.training
