"""The shared policy forward: log-probabilities equal a plain transformers forward; token_logprobs."""

import pytest
import torch
from torch.testing import assert_close

from visual_rft.models.forward import completion_logprobs, token_logprobs
from visual_rft.rl.rollout import sample_group


def test_logprobs_equal_a_plain_forward_with_repeated_pixels(
    tiny_model_dir, mixed_size_samples, policy_inputs
):
    model, _, inputs, eos, pad = policy_inputs(tiny_model_dir, mixed_size_samples)
    torch.manual_seed(0)
    r = sample_group(
        model, inputs, group_size=2, max_new_tokens=6, temperature=1.0, eos_token_ids=eos, pad_token_id=pad
    )
    # a sampled <|image_pad|> would confuse the naive forward below (ours keeps it as text): swap it out
    r.completion_ids[r.completion_ids == model.config.image_token_id] = pad
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


def test_token_logprobs_matches_log_softmax_gather():
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(3, 5, 11, generator=g) * 4).requires_grad_(True)
    tokens = torch.randint(0, 11, (3, 5), generator=g)
    ours = token_logprobs(logits, tokens)
    naive = logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    assert_close(ours, naive)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    (g_naive,) = torch.autograd.grad(naive.sum(), logits)
    assert_close(g_ours, g_naive)


def test_token_logprobs_bf16_is_upcast():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 50, generator=g) * 10
    tokens = torch.randint(0, 50, (2, 4), generator=g)
    out = token_logprobs(logits.bfloat16(), tokens)
    assert out.dtype == torch.float32
    ref = logits.bfloat16().float().log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    assert_close(out, ref)


def test_token_logprobs_shapes():
    assert token_logprobs(torch.zeros(0, 3, 7), torch.zeros(0, 3, dtype=torch.long)).shape == (0, 3)
    with pytest.raises(ValueError, match=r"\[N, T, V\]"):
        token_logprobs(torch.zeros(2, 3, 7), torch.zeros(2, 4, dtype=torch.long))


def test_token_logprobs_matches_trl_selective_log_softmax():
    selective_log_softmax = pytest.importorskip("trl.trainer.utils").selective_log_softmax
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 4, 13, generator=g) * 5
    tokens = torch.randint(0, 13, (3, 4), generator=g)
    assert_close(token_logprobs(logits, tokens), selective_log_softmax(logits, tokens))
    assert_close(
        token_logprobs(logits.bfloat16(), tokens),
        selective_log_softmax(logits.bfloat16(), tokens).float(),
        atol=0.1,  # TRL's bf16 path keeps bf16 log-softmax outputs
        rtol=0.02,
    )
