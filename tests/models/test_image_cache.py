import json

import pytest
import torch

from visual_rft.config import SFTTrainConfig, TrainConfig, load_config
from visual_rft.models.forward import encode_images
from visual_rft.models.image_cache import ImageCache, check_cacheable
from visual_rft.models.inputs import encode_prompts
from visual_rft.rl.trainer import GRPOTrainer
from visual_rft.sft.trainer import SFTTrainer


def test_cached_features_equal_the_towers_in_any_order(tiny_family_dir, mixed_size_samples, policy_inputs):
    """Images of two sizes, served new, then cached, then mixed with a new one, in another order: the
    features are what one call of the tower on that batch gives (Qwen3-VL's deepstack features too)."""
    model, processor, _, _, _ = policy_inputs(tiny_family_dir, mixed_size_samples)
    a, b = mixed_size_samples
    cache = ImageCache()
    for batch, hits in (([a], 0), ([b, a], 1), ([a, b, a], 4)):  # hits so far
        inputs, _ = encode_prompts(batch, processor, "resized_pixels")
        paths = [s.image for s in batch]
        with torch.no_grad():
            want = encode_images(model, inputs["pixel_values"], inputs["image_grid_thw"])
        got = cache.features(model, paths, inputs["pixel_values"], inputs["image_grid_thw"])
        assert cache.hits == hits
        assert got.tokens.shape == want.tokens.shape
        torch.testing.assert_close(got.tokens, want.tokens, rtol=0, atol=1e-6)
        assert len(got.deepstack) == len(want.deepstack)
        for g, w in zip(got.deepstack, want.deepstack):
            torch.testing.assert_close(g, w, rtol=0, atol=1e-6)
    assert not got.tokens.requires_grad


def _sft(tiny_model_dir, tmp_path, name, *overrides):
    return load_config(
        SFTTrainConfig,
        None,
        [
            f"model.path={tiny_model_dir}",
            f"run.output_dir={tmp_path / name}",
            "sft.batch_size=4",
            "run.steps=4",
            "optim.lr=3e-3",
            "run.progress=false",
            "run.tensorboard=false",
            "run.save_every=0",
            *overrides,
        ],
    )


def test_sft_with_the_cache_trains_as_without_it_and_runs_the_tower_once_an_image(
    tiny_model_dir, toy_samples, tmp_path
):
    """4 steps of 4 on 4 samples (each image seen 4 times), the tower frozen: the same losses and weights
    with the cache as without, and the tower ran on each image once."""
    samples = toy_samples[:4]
    losses, weights, tower_images = {}, {}, {}
    for name, cache in (("plain", "false"), ("cached", "true")):
        cfg = _sft(tiny_model_dir, tmp_path, name, "model.freeze_vision=true", f"model.cache_images={cache}")
        trainer = SFTTrainer(cfg, samples=samples)
        calls = []
        visual = trainer.model.model.visual
        hook = visual.register_forward_hook(
            lambda m, args, kw, out, calls=calls: calls.append(len(kw["grid_thw"])), with_kwargs=True
        )
        trainer.fit()
        hook.remove()
        tower_images[name] = sum(calls)
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        losses[name] = [json.loads(x)["loss"] for x in lines]
        weights[name] = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    assert tower_images == {"plain": 16, "cached": 4}
    assert losses["cached"] == pytest.approx(losses["plain"], rel=1e-5, abs=1e-6)
    assert losses["plain"][-1] < losses["plain"][0]  # it trained
    for k, w in weights["plain"].items():
        torch.testing.assert_close(weights["cached"][k], w, rtol=1e-4, atol=1e-6)


def test_the_cache_is_refused_where_the_tower_trains(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="model.cache_images=true needs model.freeze_vision"):
        SFTTrainer(_sft(tiny_model_dir, tmp_path, "x", "model.cache_images=true"), samples=[])
    assert not (tmp_path / "x").exists()
    cfg = load_config(
        TrainConfig,
        None,
        [f"model.path={tiny_model_dir}", "model.freeze_vision=true", "model.cache_images=true"],
    )
    with pytest.raises(ValueError, match="model.cache_images is an SFT option"):
        GRPOTrainer(cfg, samples=[])


def test_check_cacheable_names_a_training_parameter_of_the_tower(tiny_model_dir):
    from visual_rft.models.loading import load_model

    model = load_model(tiny_model_dir, device="cpu")
    with pytest.raises(ValueError, match="first: "):
        check_cacheable(model)
    for p in model.model.visual.parameters():
        p.requires_grad_(False)
    check_cacheable(model)
