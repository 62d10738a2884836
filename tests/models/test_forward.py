"""The shared policy forward: log-probabilities equal a plain transformers forward, chunked or not, for
every model family (Qwen3-VL's deepstack features included)."""

import pytest
import torch
from torch.testing import assert_close

from visual_rft.models.forward import ImageFeatures, completion_logprobs, encode_images
from visual_rft.rl.rollout import sample_group


def _sampled(loaded, group_size=2, max_new_tokens=6):
    """(model, inputs, a Rollout of `group_size` sampled completions per prompt), seeded."""
    model, _, inputs, eos, pad = loaded
    torch.manual_seed(0)
    r = sample_group(
        model,
        inputs,
        group_size=group_size,
        max_new_tokens=max_new_tokens,
        eos_token_ids=eos,
        pad_token_id=pad,
    )
    return model, inputs, r


def test_logprobs_equal_a_plain_forward_with_repeated_pixels(
    tiny_family_dir, mixed_size_samples, policy_inputs
):
    model, inputs, r = _sampled(policy_inputs(tiny_family_dir, mixed_size_samples))
    # a sampled <|image_pad|> would confuse the naive forward below (ours keeps it as text): swap it out
    r.completion_ids[r.completion_ids == model.config.image_token_id] = model.config.text_config.pad_token_id
    ours = completion_logprobs(model, r)  # [4, T]
    # the naive way: every completion carries its own copy of the image through the whole model
    L = inputs["input_ids"].shape[1]
    ids = torch.cat([inputs["input_ids"].repeat_interleave(2, 0), r.completion_ids], 1)
    mask = torch.cat([inputs["attention_mask"].repeat_interleave(2, 0), r.completion_mask], 1)
    mm = torch.cat(
        [inputs["mm_token_type_ids"].repeat_interleave(2, 0), torch.zeros_like(r.completion_ids)], 1
    )
    n0 = int(inputs["image_grid_thw"][0].prod())
    pv = inputs["pixel_values"]
    pixels = torch.cat([pv[:n0], pv[:n0], pv[n0:], pv[n0:]])
    with torch.no_grad():
        logits = model(
            input_ids=ids,
            attention_mask=mask,
            pixel_values=pixels,
            mm_token_type_ids=mm,
            image_grid_thw=inputs["image_grid_thw"].repeat_interleave(2, 0),
        ).logits
    naive = torch.log_softmax(logits[:, L - 1 : -1], -1).gather(-1, r.completion_ids[..., None])[..., 0]
    torch.testing.assert_close(ours * r.completion_mask, naive * r.completion_mask, atol=1e-5, rtol=1e-5)
    images = encode_images(model, r.pixel_values, r.image_grid_thw)
    if model.config.model_type == "qwen3_vl":  # the deepstack features matter: without them, other numbers
        assert len(images.deepstack) == len(model.config.vision_config.deepstack_visual_indexes) > 0
        without = completion_logprobs(model, r, ImageFeatures(images.tokens))  # [4, T]
        assert ((without - naive) * r.completion_mask).abs().max() > 1e-3
    else:
        assert images.deepstack == []


def test_completion_logprobs_chunked_equal_full_logits_on_the_model(
    tiny_family_dir, mixed_size_samples, policy_inputs
):
    """The model path: chunked log-probs (and their gradients in every weight) equal the full-logits path."""
    model, inputs, r = _sampled(policy_inputs(tiny_family_dir, mixed_size_samples))
    params = [p for p in model.parameters() if p.requires_grad]
    results = []
    for chunk_size in (0, 5):  # 0: the full [R, T, V] logits
        logp = completion_logprobs(model, r, temperature=0.7, chunk_size=chunk_size)  # [4, T]
        loss = (logp * r.completion_mask).sum()
        results.append((logp.detach(), torch.autograd.grad(loss, params, allow_unused=True)))
    (full, g_full), (chunked, g_chunked) = results
    assert_close(chunked, full, atol=1e-6, rtol=1e-6)
    worst = 0.0
    for a, b in zip(g_chunked, g_full):
        if a is not None or b is not None:
            # a weight's gradient is a sum over tokens, added up chunk by chunk: fp32 round-off only
            worst = max(worst, float((a - b).abs().max() / b.abs().max().clamp(min=1)))
    assert worst < 2e-6, worst  # measured: 1.4e-6 (the tied embedding, summed over 5-token chunks)


def test_completion_logprobs_rejects_a_zero_temperature(tiny_model_dir, mixed_size_samples, policy_inputs):
    model, _, r = _sampled(policy_inputs(tiny_model_dir, mixed_size_samples), group_size=1, max_new_tokens=2)
    with pytest.raises(ValueError, match="temperature"):
        completion_logprobs(model, r, temperature=0.0)
