"""Group sampling (every model family): greedy groups equal generate, the vision tower runs once per image, masks end at EOS."""

import pytest
import torch

from visual_rft.models.forward import completion_logprobs
from visual_rft.rl.rollout import sample_group, sample_next


def test_greedy_group_equals_generate(tiny_family_dir, mixed_size_samples, policy_inputs):
    model, _, inputs, eos, pad = policy_inputs(tiny_family_dir, mixed_size_samples)
    assert (inputs["attention_mask"] == 0).any()  # left padding is exercised
    r = sample_group(
        model, inputs, group_size=3, max_new_tokens=10, temperature=0, eos_token_ids=eos, pad_token_id=pad
    )
    ref = model.generate(**inputs, max_new_tokens=10, do_sample=False)[:, inputs["input_ids"].shape[1] :]
    for b in range(2):
        for g in range(3):  # every member of a greedy group is the same answer, and it is generate's
            n = int(r.completion_mask[b * 3 + g].sum())
            assert r.completion_ids[b * 3 + g, :n].tolist() == ref[b, :n].tolist()


def test_vision_tower_sees_each_image_once_per_group(tiny_family_dir, toy_samples, policy_inputs):
    model, _, inputs, eos, pad = policy_inputs(tiny_family_dir, toy_samples[:2])
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


def test_masks_end_at_the_first_end_of_turn(tiny_model_dir, toy_samples, policy_inputs):
    model, _, inputs, _, pad = policy_inputs(tiny_model_dir, toy_samples[:2])
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


def test_decoding_uses_the_current_cache_argument(tiny_model_dir, toy_samples, policy_inputs):
    """transformers 5.24 warns on every decoding step given `past_key_values`: the demo printed hundreds."""
    import warnings

    model, _, inputs, eos, pad = policy_inputs(tiny_model_dir, toy_samples[:1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sample_group(model, inputs, group_size=2, max_new_tokens=4, eos_token_ids=eos, pad_token_id=pad)
    assert not [w for w in caught if "past_key_values" in str(w.message)]


def _seeded(model, inputs, eos, pad, **kw):
    torch.manual_seed(0)
    return sample_group(
        model, inputs, group_size=3, max_new_tokens=9, eos_token_ids=eos, pad_token_id=pad, **kw
    )


def test_static_cache_samples_the_same_tokens(tiny_family_dir, mixed_size_samples, policy_inputs):
    """A preallocated cache and one fixed-size mask for all steps: the tokens the growing cache samples."""
    model, _, inputs, _, pad = policy_inputs(tiny_family_dir, mixed_size_samples)
    enders = list(range(0, 400, 7))  # rows end at different steps
    simple = _seeded(model, inputs, enders, pad)
    static = _seeded(model, inputs, enders, pad, static_cache=True)
    assert len(set(simple.completion_mask.sum(1).tolist())) > 1
    assert torch.equal(static.completion_ids, simple.completion_ids)
    assert torch.equal(static.completion_mask, simple.completion_mask)


@pytest.mark.slow
def test_compiled_decode_step_samples_the_same_tokens(tiny_model_dir, mixed_size_samples, policy_inputs):
    """torch.compile'd step on the static cache (inductor on the CPU: about a minute to compile here)."""
    model, _, inputs, eos, pad = policy_inputs(tiny_model_dir, mixed_size_samples)
    simple = _seeded(model, inputs, [-1], pad)
    assert torch.equal(
        _seeded(model, inputs, [-1], pad, compile_step=True).completion_ids, simple.completion_ids
    )


def test_a_group_drawn_from_its_own_generator_does_not_depend_on_its_batch(
    tiny_model_dir, toy_samples, policy_inputs
):
    """With one generator per prompt (the trainer's rollout noise), a prompt's group is the same sampled alone
    or beside another prompt: how prompts are shared out over ranks does not change the completions."""
    model, _, both, eos, pad = policy_inputs(tiny_model_dir, toy_samples[:2])
    _, _, alone, _, _ = policy_inputs(tiny_model_dir, toy_samples[1:2])

    def sample(inputs, seeds):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        kw = dict(group_size=4, max_new_tokens=8, eos_token_ids=eos, pad_token_id=pad)
        return sample_group(model, inputs, generators=gens, **kw)

    pair, single = sample(both, [11, 12]), sample(alone, [12])
    n = single.completion_ids.shape[1]
    assert torch.equal(pair.completion_mask[4:, :n], single.completion_mask)
    assert torch.equal(
        (pair.completion_ids * pair.completion_mask)[4:, :n], single.completion_ids * single.completion_mask
    )
    assert len({tuple(r) for r in single.completion_ids.tolist()}) > 1  # it did sample: the rows differ
    assert not torch.equal(sample(both, [11, 13]).completion_ids[4:], pair.completion_ids[4:])  # another seed
