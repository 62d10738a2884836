from dataclasses import replace

import pytest

from visual_rft.config import load_config
from visual_rft.models.loading import load_model
from visual_rft.recipes.base_model import SHIPPED_BASE, THINK, default_base_model
from visual_rft.recipes.pretrain import PretrainConfig, run_pretrain


@pytest.mark.slow
def test_pretrain_miniature(tmp_path):
    cfg = load_config(
        PretrainConfig,
        None,
        [f"out_dir={tmp_path / 'pre'}", "size=1m", "n_per_task=4", "sft.run.steps=2", "sft.sft.batch_size=4"],
    )
    assert cfg.sft.sft.think == THINK and cfg.sft.optim.schedule == "cosine"  # the recipe's defaults stay
    base = run_pretrain(replace(cfg, progress=False))
    assert (base / "model.safetensors").exists() and base == tmp_path / "pre" / "base"
    rows = (tmp_path / "pre" / "sft" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2
    assert load_model(base, device="cpu").config.model_type == "qwen2_5_vl"


def test_the_base_model_ships_with_the_package():
    assert default_base_model() == SHIPPED_BASE
    model = load_model(SHIPPED_BASE, device="cpu")
    assert model.config.model_type == "qwen2_5_vl" and sum(p.numel() for p in model.parameters()) < 6e6
