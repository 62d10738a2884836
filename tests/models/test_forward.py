"""The shared policy forward: log-probabilities equal a plain transformers forward, chunked or not, for
every model family (Qwen3-VL's deepstack features included)."""

import pytest
import torch
from torch.testing import assert_close

from visual_rft.models.forward import ImageFeatures, completion_logprobs, encode_images, shift_after_image
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


def _two_image_samples(mixed_size_samples, tmp_path):
    """Two prompts of different lengths (left padding): one with two images of different sizes, one with one."""
    from PIL import Image

    first, second = mixed_size_samples
    wide = tmp_path / "wide.png"
    Image.open(first.image).resize((84, 56)).save(wide)
    two = type(first)(
        "two", [first.image, str(wide)], first.task, "Which colours are the circles?", first.target
    )
    return [two, second]


def _lora_model(model):
    """LoRA adapters with a random B (peft starts B at zero, where the gradient of A would vanish)."""
    from visual_rft.config import LoraConfig, ModelConfig
    from visual_rft.models.lora import prepare_for_training

    model = prepare_for_training(model, ModelConfig(lora=LoraConfig(enabled=True, r=4, alpha=8, dropout=0.0)))
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)
    return model


def _values_and_grads(model, r, share_prefix, chunk_size=5):
    params = [p for p in model.parameters() if p.requires_grad]
    logp = completion_logprobs(model, r, temperature=0.7, chunk_size=chunk_size, share_prefix=share_prefix)
    weights = torch.linspace(-1, 1, logp.numel()).view_as(logp)  # a loss that weighs every token differently
    grads = torch.autograd.grad((logp * weights * r.completion_mask).sum(), params, allow_unused=True)
    return logp.detach(), grads


def _assert_grads_close(a_grads, b_grads, tol=1e-5):
    worst, compared = 0.0, 0
    for a, b in zip(a_grads, b_grads):
        assert (a is None) == (b is None)
        if a is not None:
            worst = max(worst, float((a - b).abs().max() / b.abs().max().clamp(min=1e-3)))
            compared += 1
    assert compared > 0 and worst < tol, worst


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_shared_prefix_equals_per_row_values_and_gradients(
    tiny_family_dir, mixed_size_samples, tmp_path, policy_inputs, lora
):
    """The prompt once per group (cache expanded to G) = the prompt again for every row: log-probs and the
    gradient of every trainable weight (vision tower included when fully fine-tuned), fp32, for prompts of
    different lengths, two images in one of them, in chunks and as full logits."""
    samples = _two_image_samples(mixed_size_samples, tmp_path)
    model, inputs, r = _sampled(policy_inputs(tiny_family_dir, samples), group_size=3, max_new_tokens=7)
    assert r.images_per_prompt == [2, 1] and bool((r.prompt_mask[:, 0] == 0).any())  # padded, 2 images
    assert bool(r.completion_mask[:, -1].eq(0).any()) or r.completion_ids.shape[1] == 7
    if lora:
        model = _lora_model(model)
    model.train()  # as in the update (no dropout in these models' configs)
    per_row, g_per_row = _values_and_grads(model, r, share_prefix=False)
    shared, g_shared = _values_and_grads(model, r, share_prefix=True)
    assert_close(shared * r.completion_mask, per_row * r.completion_mask, atol=1e-5, rtol=1e-5)
    _assert_grads_close(g_shared, g_per_row)
    full_logits, _ = _values_and_grads(model, r, share_prefix=True, chunk_size=0)
    assert_close(full_logits, shared, atol=1e-6, rtol=1e-6)


def test_shared_prefix_runs_each_prompt_once(tiny_model_dir, mixed_size_samples, policy_inputs):
    """What the decoder sees: B prompt rows once, then R rows of T-1 completion tokens (not R x (L + T))."""
    model, inputs, r = _sampled(policy_inputs(tiny_model_dir, mixed_size_samples), group_size=4)
    seen = []
    language_model = model.model.language_model
    hook = language_model.register_forward_pre_hook(
        lambda m, args, kw: seen.append(tuple(kw["inputs_embeds"].shape[:2])), with_kwargs=True
    )
    completion_logprobs(model, r, share_prefix=True)
    completion_logprobs(model, r, share_prefix=False)
    hook.remove()
    (B, L), T = r.prompt_ids.shape, r.completion_ids.shape[1]
    assert seen == [(B, L), (B * 4, T - 1), (B * 4, L + T)]


def test_shared_prefix_on_micro_batches_of_whole_groups(tiny_qwen3_dir, mixed_size_samples, policy_inputs):
    """Each group alone (the update's micro-batches) gives the rows it gives in the whole batch."""
    from visual_rft.rl.trainer import select_groups

    model, inputs, r = _sampled(policy_inputs(tiny_qwen3_dir, mixed_size_samples), group_size=3)
    with torch.no_grad():
        whole = completion_logprobs(model, r, chunk_size=4)  # [6, T]
        parts = [completion_logprobs(model, select_groups(r, [b]), chunk_size=4) for b in (0, 1)]
    assert_close(torch.cat(parts) * r.completion_mask, whole * r.completion_mask, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_shared_prefix_under_activation_checkpointing(
    tiny_family_dir, mixed_size_samples, tmp_path, policy_inputs, lora
):
    """Checkpointed layers keep the prompt's cache (transformers drops a cache there unless told): still the
    prompt once, and the per-row values and gradients, through the backward's recomputation."""
    samples = _two_image_samples(mixed_size_samples, tmp_path)
    model, inputs, r = _sampled(policy_inputs(tiny_family_dir, samples), group_size=3)
    if lora:
        model = _lora_model(model)
    core = model.get_base_model() if lora else model
    core.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    seen = []
    hook = core.model.language_model.register_forward_pre_hook(
        lambda m, args, kw: seen.append(tuple(kw["inputs_embeds"].shape[:2])), with_kwargs=True
    )
    shared, g_shared = _values_and_grads(model, r, share_prefix=True)
    hook.remove()
    assert seen == [tuple(r.prompt_ids.shape), (r.completion_ids.shape[0], r.completion_ids.shape[1] - 1)]
    core.activation_checkpointing_disable()
    per_row, g_per_row = _values_and_grads(model, r, share_prefix=False)
    assert_close(shared * r.completion_mask, per_row * r.completion_mask, atol=1e-5, rtol=1e-5)
    _assert_grads_close(g_shared, g_per_row)


def test_shift_after_image_moves_each_rows_text_after_its_image_and_end_marker():
    # row 0: a token, 2 image tokens, <|vision_end|>, 2 text tokens; row 1: 2 pads, 1 image token, the marker,
    # 2 text tokens; row 2: text alone
    types = torch.tensor([[0, 1, 1, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    positions = torch.arange(6).repeat(3, 3, 1)  # [3, 3, 6]
    moved = shift_after_image(positions, types, [10, 3, 5])
    assert moved[0].tolist() == [[0, 1, 2, 3, 14, 15], [0, 1, 2, 3, 7, 8], [5, 6, 7, 8, 9, 10]]
    assert torch.equal(moved[0], moved[2])  # every mRoPE axis alike
