"""Make a loaded model trainable: LoRA adapters (peft), a frozen vision tower, gradient checkpointing."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from visual_rft.config import ModelConfig
from visual_rft.models.forward import core_model


def vision_modules(model):
    """The vision tower (with its merger) of a Qwen-VL model, under any wrapper."""
    return core_model(model).model.visual


def prepare_for_training(model, cfg: ModelConfig, adapter: str | Path | None = None):
    """Apply cfg.freeze_vision, cfg.lora and cfg.gradient_checkpointing; returns the model to train.

    `adapter`: a saved LoRA adapter folder to continue from (resuming) instead of fresh adapters.
    """
    if cfg.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if cfg.lora.enabled:
        # adapters on the language model only: "language_model" keeps them out of the vision tower
        targets = rf".*language_model.*\.({'|'.join(cfg.lora.target_modules)})"
        peft_cfg = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=targets,
            bias="none",
        )
        if adapter is not None:
            model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
        else:
            model = get_peft_model(model, peft_cfg)
        if cfg.gradient_checkpointing:
            model.enable_input_require_grads()
    if cfg.freeze_vision:
        for p in vision_modules(model).parameters():
            p.requires_grad_(False)
    model.train()
    return model


def disable_dropout(model):
    """Set every dropout of `model` to 0, in place: nn.Dropout modules (LoRA's included) and the attention
    layers' `attention_dropout` (transformers reads it per layer, in training mode only).

    GRPO's passes (rollout, old policy, reference, policy) must compute one function; eval mode alone would
    also switch gradient checkpointing off (transformers only checkpoints in training mode)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
    return model


def is_lora(model) -> bool:
    return hasattr(model, "peft_config")


def reference_context(model):
    """Context in which `model` computes the reference policy: the base with its adapters disabled.

    Only meaningful with LoRA; a fully fine-tuned model needs a separate frozen copy instead.
    """
    return model.disable_adapter() if is_lora(model) else nullcontext()


@contextmanager
def eval_mode(model):
    """Temporarily switch off dropout (rollouts and reference passes)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def trainable_parameters(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]
