"""bench/tower_transplant.py: a trained tower under a language model of another shape."""

import pytest
import torch
from transformers import AutoModelForImageTextToText

from visual_rft.models.tiny import build_tiny


def test_the_tower_is_copied_exactly_and_the_language_model_takes_the_new_heads(load_bench, tmp_path):
    bench = load_bench("tower_transplant")
    trained, processor = build_tiny("qwen2_5_vl", "5m", seed=0)
    with torch.no_grad():  # a tower unlike the factory's: the copy is not its own initialisation again
        for p in trained.model.visual.parameters():
            p.add_(torch.randn_like(p))
    trained.save_pretrained(tmp_path / "tower")
    processor.save_pretrained(tmp_path / "tower")
    counts = bench.transplant(tmp_path / "tower", tmp_path / "out", heads=12, layers=4)
    assert counts["out"] == counts["tower"]  # twelve heads of 16: the same weights as six of 32
    made = AutoModelForImageTextToText.from_pretrained(tmp_path / "out")
    assert made.config.text_config.num_attention_heads == 12
    copied = made.model.visual.state_dict()
    for name, weight in trained.model.visual.state_dict().items():
        torch.testing.assert_close(copied[name], weight, rtol=0, atol=0, msg=name)
    with pytest.raises(SystemExit, match="already holds a model"):
        bench.transplant(tmp_path / "tower", tmp_path / "out", heads=12, layers=4)
