"""bench/channel_gap.py: the held heads' logit gap at the first digit, split by RoPE channel."""

import torch

from visual_rft.data.jsonl import read_samples
from visual_rft.models.loading import load_model, load_processor
from visual_rft.world import build


def test_the_recorded_logits_are_the_ones_the_model_attends_with(load_bench, tiny_model_dir, tmp_path):
    bench = load_bench("channel_gap")
    probe = load_bench("attention_probe")
    samples = read_samples(build("grounding", tmp_path, 3, seed=2, categories=["pair"], name="pair"))
    processor = load_processor(tiny_model_dir)
    recording = load_model(tiny_model_dir, device="cpu", dtype="fp32", attn_implementation="record_qk")
    eager = load_model(tiny_model_dir, device="cpu", dtype="fp32", attn_implementation="eager")
    layers = recording.config.text_config.num_hidden_layers
    for sample in samples:
        gaps, slow = bench.query_gaps(
            recording, processor, sample, "resized_pixels", slowest=2, layers=layers
        )
        # The same gap from the eager model's attention: log a_i - log a_j = logit_i - logit_j.
        inputs, frame = probe.teacher_forced(eager, processor, sample, "resized_pixels")
        with torch.no_grad():
            attn = torch.stack(eager(**inputs, output_attentions=True).attentions)[:, 0]  # (L, heads, S, S)
        position, image, asked, others = bench.pick_cells(eager, processor, inputs, frame, sample)
        assert asked.any() and others.any()  # a `pair` scene: the asked object and another
        log_attn = attn[:, :, position][..., image].log()  # (L, heads, n_image)
        expected = torch.stack([bench.gap(layer, asked, others) for layer in log_attn])  # (L, heads)
        torch.testing.assert_close(torch.from_numpy(gaps), expected, rtol=1e-4, atol=1e-4)
        assert slow.shape == gaps.shape and not torch.allclose(torch.from_numpy(slow), expected)


def test_channel_gaps_average_the_queries_per_held_head(load_bench, tiny_model_dir, tmp_path):
    bench = load_bench("channel_gap")
    samples = read_samples(build("grounding", tmp_path, 2, seed=3, categories=["pair"], name="pair"))
    r = bench.channel_gaps(tiny_model_dir, samples, slowest=2, layers=1)
    heads = load_model(tiny_model_dir, device="cpu", dtype="fp32").config.text_config.num_attention_heads
    last = load_model(tiny_model_dir, device="cpu", dtype="fp32").config.text_config.num_hidden_layers - 1
    assert r["n"] == 2 and sorted(r["heads"]) == sorted(f"L{last}H{h}" for h in range(heads))
    assert abs(sum(h["gap"] for h in r["heads"].values()) / heads - r["gap"]) < 1e-6
    assert abs(r["share"] - r["gap_slowest"] / r["gap"]) < 1e-5 * abs(r["share"])
