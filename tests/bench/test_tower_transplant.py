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


def test_a_wider_language_model_gets_the_same_image_tokens_in_a_wider_space(load_bench, tmp_path):
    bench = load_bench("tower_transplant")
    trained, processor = build_tiny("qwen2_5_vl", "5m", seed=0)
    trained.save_pretrained(tmp_path / "tower")
    processor.save_pretrained(tmp_path / "tower")
    counts = bench.transplant(tmp_path / "tower", tmp_path / "wide", heads=12, layers=4, hidden=384)
    wider_rows = (384 - 192) * (640 + 1)  # the merger's last map writes 192 more rows (weights and bias)
    assert counts["out"]["vision"] == counts["tower"]["vision"] + wider_rows
    made = AutoModelForImageTextToText.from_pretrained(tmp_path / "wide")
    assert made.config.text_config.hidden_size == 384
    assert made.config.vision_config.out_hidden_size == 384
    x = torch.randn(10, 640)  # ten merged patches entering the merger's last map
    old = trained.model.visual.merger.mlp[2](x)  # (10, 192)
    new = made.model.visual.merger.mlp[2](x)  # (10, 384)
    torch.testing.assert_close(new @ new.T, old @ old.T, rtol=1e-4, atol=1e-3)  # lengths and angles kept
    assert not torch.allclose(new[:, :192], old)  # written in a rotated subspace, not padded
    with pytest.raises(SystemExit, match="narrower than the tower's merger output"):
        bench.transplant(tmp_path / "tower", tmp_path / "narrow", heads=6, layers=4, hidden=96)
