from visual_rft.models.loading import load_model
from visual_rft.recipes.fewshot import default_base_model
from visual_rft.recipes.pretrain import SHIPPED_BASE, PretrainConfig, run_pretrain


def test_pretrain_miniature(tmp_path):
    base = run_pretrain(
        PretrainConfig(
            out_dir=str(tmp_path / "pre"), size="1m", n_per_task=4, steps=2, batch_size=4, progress=False
        )
    )
    assert (base / "model.safetensors").exists() and base == tmp_path / "pre" / "base"
    rows = (tmp_path / "pre" / "sft" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2
    assert load_model(base, device="cpu").config.model_type == "qwen2_5_vl"


def test_the_base_model_ships_with_the_package():
    assert default_base_model() == SHIPPED_BASE
    model = load_model(SHIPPED_BASE, device="cpu")
    assert model.config.model_type == "qwen2_5_vl" and sum(p.numel() for p in model.parameters()) < 6e6
