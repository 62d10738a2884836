import torch

from visual_rft.models.inputs import encode_prompts
from visual_rft.models.loading import load_model, load_processor
from visual_rft.rl.rollout import completion_logprobs, sample_group, sample_next


def _setup(model_dir, samples):
    model, processor = load_model(model_dir, device="cpu"), load_processor(model_dir)
    inputs, _ = encode_prompts(samples, processor, "resized_pixels")
    tok = processor.tokenizer
    return model, processor, inputs, [tok.convert_tokens_to_ids("<|im_end|>")], tok.pad_token_id


def _mixed_sizes(toy_samples, tmp_path):
    """Two samples whose images differ in size (so prompts differ in length and need left padding)."""
    from PIL import Image

    big = tmp_path / "big.png"
    Image.open(toy_samples[1].image).resize((112, 84)).save(big)
    s1 = toy_samples[1]
    return [toy_samples[0], type(s1)(s1.id, [str(big)], s1.task, s1.problem + " Look closely.", s1.target)]


def test_greedy_group_equals_generate(tiny_model_dir, toy_samples, tmp_path):
    samples = _mixed_sizes(toy_samples, tmp_path)
    model, _, inputs, eos, pad = _setup(tiny_model_dir, samples)
    assert (inputs["attention_mask"] == 0).any()  # left padding is exercised
    r = sample_group(
        model, inputs, group_size=3, max_new_tokens=10, temperature=0, eos_token_ids=eos, pad_token_id=pad
    )
    ref = model.generate(**inputs, max_new_tokens=10, do_sample=False)[:, inputs["input_ids"].shape[1] :]
    for b in range(2):
        for g in range(3):  # every member of a greedy group is the same answer, and it is generate's
            n = int(r.completion_mask[b * 3 + g].sum())
            assert r.completion_ids[b * 3 + g, :n].tolist() == ref[b, :n].tolist()


def test_logprobs_equal_a_plain_forward_with_repeated_pixels(tiny_model_dir, toy_samples, tmp_path):
    samples = _mixed_sizes(toy_samples, tmp_path)
    model, _, inputs, eos, pad = _setup(tiny_model_dir, samples)
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


def test_vision_tower_sees_each_image_once_per_group(tiny_model_dir, toy_samples):
    model, _, inputs, eos, pad = _setup(tiny_model_dir, toy_samples[:2])
    seen = []
    model.model.visual.register_forward_hook(lambda m, args, kw_or_out=None: seen.append(1))
    grids = []
    orig = model.model.get_image_features

    def counting(pixel_values, image_grid_thw, **kw):
        grids.append(image_grid_thw.shape[0])
        return orig(pixel_values, image_grid_thw, **kw)

    model.model.get_image_features = counting
    r = sample_group(model, inputs, group_size=8, max_new_tokens=4, eos_token_ids=eos, pad_token_id=pad)
    completion_logprobs(model, r)
    assert grids == [2, 2]  # rollout + log-probs: 2 images each time, not 2 x 8
    assert len(seen) == 2


def test_masks_end_at_the_first_end_of_turn(tiny_model_dir, toy_samples):
    model, _, inputs, _, pad = _setup(tiny_model_dir, toy_samples[:2])
    enders = list(range(0, 400, 3))  # many "end" tokens: rows stop at different steps
    torch.manual_seed(1)
    r = sample_group(model, inputs, group_size=8, max_new_tokens=12, eos_token_ids=enders, pad_token_id=pad)
    lengths = set()
    for ids, mask in zip(r.completion_ids.tolist(), r.completion_mask.tolist()):
        n = sum(mask)
        assert mask == [1] * n + [0] * (len(mask) - n)
        ended = [i for i, t in enumerate(ids[:n]) if t in enders]
        assert ended in ([n - 1], []) and (ended or n == len(mask))
        assert all(t == pad for t in ids[n:])
        lengths.add(n)
    assert len(lengths) > 1


def test_sample_next():
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]])
    assert sample_next(logits, 0.0, 1.0).tolist() == [1, 0]
    torch.manual_seed(0)
    for _ in range(20):  # a tiny nucleus keeps only the most likely token
        assert sample_next(logits, 1.0, 0.01).tolist() == [1, 0]
    counts = torch.stack([sample_next(logits, 1.0, 1.0) for _ in range(400)])
    assert set(counts[:, 0].tolist()) == {0, 1, 2}
