"""bench/content_channels.py: the slowest RoPE frequencies stilled through transformers' own llama3 RoPE."""

import json

import pytest
import torch
from transformers import AutoModelForImageTextToText


def rotary_cos(model_dir, positions: torch.Tensor) -> torch.Tensor:
    """(3 axes, n, head dim) cos of the loaded model's mRoPE at `positions` (3, n): transformers' own module."""
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    rotary = model.model.language_model.rotary_emb
    x = torch.zeros(1, dtype=torch.float32)
    cos, _ = rotary(x, positions[:, None, :])  # (1, n, head dim) after the sections are recomposed
    return cos[0]


def test_the_stilled_channels_turn_by_nearly_nothing_and_the_others_as_before(
    load_bench, tiny_model_dir, tmp_path
):
    bench = load_bench("content_channels")
    config = json.loads((tiny_model_dir / "config.json").read_text())
    rope = bench.content_rope(config["text_config"], still=2, factor=1000.0)
    before = bench.rope_frequencies(config["text_config"])  # (half,) rad a position
    after = bench.rope_frequencies(config["text_config"], rope)
    half = before.numel()
    torch.testing.assert_close(after[: half - 2], before[: half - 2], rtol=1e-6, atol=0)  # the kept ones
    torch.testing.assert_close(after[half - 2 :], before[half - 2 :] / 1000.0)

    bench.write_with_rope(tiny_model_dir, tmp_path / "still", rope)
    written = json.loads((tmp_path / "still" / "config.json").read_text())
    assert written["text_config"]["rope_parameters"]["rope_type"] == "llama3"
    assert written["vision_config"] == config["vision_config"]
    # Image tokens in other cells, and a text token 300 positions on: the stilled channels barely turn.
    positions = torch.tensor([[5, 5, 5, 305], [5, 6, 9, 305], [5, 12, 20, 305]])  # (t, h, w) x 4 tokens
    cos = rotary_cos(tmp_path / "still", positions)  # (4, head dim)
    assert cos[:, half - 2 : half].min() > 0.998  # 305 positions turn them < 0.065 rad
    assert cos[:, half - 3].min() < 0.9  # the last kept one turns as before
    old = rotary_cos(tiny_model_dir, positions)
    assert old[:, half - 2 : half].min() < 0.5  # the source's same channels do turn
    torch.testing.assert_close(cos[:, : half - 2], old[:, : half - 2])


def test_what_cannot_be_stilled_is_named(load_bench, tiny_model_dir, tmp_path):
    bench = load_bench("content_channels")
    text = json.loads((tiny_model_dir / "config.json").read_text())["text_config"]
    half = text["hidden_size"] // text["num_attention_heads"] // 2
    with pytest.raises(SystemExit, match=f"the head has {half} frequencies"):
        bench.content_rope(text, still=half, factor=1000.0)
    rope = bench.content_rope(text, still=1, factor=1000.0)
    with pytest.raises(SystemExit, match="starts from the default RoPE"):
        bench.content_rope(dict(text, rope_parameters=rope), still=1, factor=1000.0)
    with pytest.raises(SystemExit, match=f"three counts .* that sum to {half}"):
        bench.content_rope(text, still=1, factor=1000.0, sections=[2, 2, 2])
    moved = bench.content_rope(text, still=1, factor=1000.0, sections=[2, half - 6, 4])
    assert moved["mrope_section"] == [2, half - 6, 4]
    bench.write_with_rope(tiny_model_dir, tmp_path / "once", rope)
    with pytest.raises(SystemExit, match="already holds a model"):
        bench.write_with_rope(tiny_model_dir, tmp_path / "once", rope)


def test_jitter_coherence_against_hand_values(load_bench):
    bench = load_bench("content_channels")
    freqs = torch.tensor([0.0, 1e-4, 2 * torch.pi / 4, 0.5])  # (4,) rad a position
    kept = bench.jitter_coherence(freqs, most=3)  # moves 0, 1, 2, 3
    assert kept[0].item() == pytest.approx(1.0)  # a still channel keeps its whole match
    assert kept[1].item() == pytest.approx(1.0, abs=1e-6)
    assert kept[2].item() == pytest.approx(0.0, abs=1e-6)  # four moves of a quarter circle cancel
    assert bench.jitter_coherence(freqs[3:], most=1).item() == pytest.approx(
        abs(torch.cos(torch.tensor(0.25))).item()
    )
