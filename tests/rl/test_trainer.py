import json
from dataclasses import replace

import pytest
import torch

from visual_rft.config import TrainConfig, load_config
from visual_rft.models.forward import completion_logprobs, count_images
from visual_rft.models.inputs import encode_prompts
from visual_rft.models.lora import eval_mode
from visual_rft.rl.trainer import (
    GRPOTrainer,
    check_grpo_config,
    check_rewards,
    mean_over_updates,
    select_groups,
)


def _cfg(model_dir, run_dir, *extra):
    return load_config(
        TrainConfig,
        None,
        [
            f"model.path={model_dir}",
            f"run.output_dir={run_dir}",
            "run.steps=2",
            "run.tensorboard=false",
            "run.progress=false",
            "grpo.group_size=4",
            "grpo.prompts_per_step=2",
            "grpo.max_completion_length=8",
            "optim.lr=1e-3",
            *extra,
        ],
    )


def _weights(model):
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


def test_two_steps_write_metrics_samples_and_a_checkpoint(
    tiny_model_dir, toy_samples, tmp_path, letters_reward
):
    cfg = _cfg(
        tiny_model_dir,
        tmp_path / "run",
        "grpo.mu=2",
        "grpo.micro_batch_size=4",
        "run.sample_every=1",
        'grpo.rewards={"toy_rewards:letters": 1, format: 1}',
    )
    before = _weights(GRPOTrainer(cfg, samples=toy_samples).model)
    trainer = GRPOTrainer(cfg, samples=toy_samples)
    trainer.fit()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for key in (
        "reward/total",
        "reward/format/mean",
        "reward/std_in_group",
        "groups/zero_spread",
        "kl",
        "clip_frac",
        "completion/length",
        "grad_norm",
        "lr",
        "time/rollout",
        "time/reward",
        "time/update",
    ):
        assert key in rows[-1], key
    samples = (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 2 * 4 and "completion" in json.loads(samples[0])
    ckpt = tmp_path / "run" / "checkpoint-2"
    assert (ckpt / "model" / "model.safetensors").exists() and (ckpt / "trainer_state.pt").exists()
    assert (tmp_path / "run" / "config.yaml").exists()
    after = _weights(trainer.model)
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the policy moved


def _one_update(model_dir, run_dir, samples, micro, aggregation, *extra):
    """Same seed, same rollout: one update with the given micro-batch size; returns the gradients."""
    trainer = GRPOTrainer(
        _cfg(
            model_dir,
            run_dir,
            f"grpo.micro_batch_size={micro}",
            "grpo.beta=0.1",
            f"grpo.aggregation={aggregation}",
            "optim.max_grad_norm=0",
            *extra,
        ),
        samples=samples,
    )
    torch.manual_seed(0)
    rollout, _ = trainer.rollout(samples[:2])
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5, 0.3, -0.3, 2.0, -2.0])
    ref = trainer.reference_logprobs(rollout)
    stats = trainer.update(rollout, adv, None, ref)
    return {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}, stats


@pytest.mark.parametrize("aggregation", ["token", "sequence", "constant"])
def test_micro_batches_give_the_same_update(tiny_model_dir, toy_samples, tmp_path, aggregation):
    whole, s1 = _one_update(tiny_model_dir, tmp_path / "a", toy_samples, 0, aggregation)
    parts, s2 = _one_update(tiny_model_dir, tmp_path / "b", toy_samples, 4, aggregation)
    assert s1["loss"] == pytest.approx(s2["loss"], rel=1e-5, abs=1e-7)
    assert whole.keys() == parts.keys() and len(whole) > 10
    for k in whole:
        torch.testing.assert_close(whole[k], parts[k], rtol=1e-4, atol=1e-7)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_model_dir, toy_samples, tmp_path):
    plain, s1 = _one_update(
        tiny_model_dir, tmp_path / "a", toy_samples, 0, "token", "model.freeze_vision=true"
    )
    ckpt, s2 = _one_update(
        tiny_model_dir,
        tmp_path / "b",
        toy_samples,
        0,
        "token",
        "model.freeze_vision=true",
        "model.gradient_checkpointing=true",
    )
    assert not any("visual" in k for k in plain)  # the frozen vision tower gets no gradient
    assert s1["loss"] == pytest.approx(s2["loss"], rel=1e-5, abs=1e-7)
    for k in plain:
        torch.testing.assert_close(plain[k], ckpt[k], rtol=1e-4, atol=1e-7)


def test_a_non_finite_loss_skips_the_update(tiny_model_dir, toy_samples, tmp_path):
    trainer = GRPOTrainer(_cfg(tiny_model_dir, tmp_path / "run", "grpo.beta=0"), samples=toy_samples)
    rollout, _ = trainer.rollout(toy_samples[:2])
    before = _weights(trainer.model)
    stats = trainer.update(rollout, torch.full((8,), float("nan")), None, None)
    assert stats["skipped"] == 1
    assert all(torch.equal(before[k], v) for k, v in _weights(trainer.model).items())
    stats = trainer.update(rollout, torch.ones(8), None, None)  # and the run goes on
    assert stats["skipped"] == 0


def test_beta_zero_builds_no_reference(tiny_model_dir, toy_samples, tmp_path):
    trainer = GRPOTrainer(_cfg(tiny_model_dir, tmp_path / "run", "grpo.beta=0"), samples=toy_samples)
    assert trainer.reference is None
    rollout, _ = trainer.rollout(toy_samples[:2])
    assert trainer.reference_logprobs(rollout) is None
    assert "kl" not in trainer.step(0).metrics


def test_lora_reference_is_the_base_with_adapters_off(tiny_model_dir, toy_samples, tmp_path):
    from visual_rft.models.loading import load_model

    cfg = _cfg(
        tiny_model_dir,
        tmp_path / "run",
        "model.lora.enabled=true",
        "model.lora.r=4",
        "optim.lr=0.05",
        "model.freeze_vision=true",
    )
    trainer = GRPOTrainer(cfg, samples=toy_samples)
    assert trainer.reference is None  # no second copy of the model
    assert all("lora_" in n for n, p in trainer.model.named_parameters() if p.requires_grad)
    rollout, _ = trainer.rollout(toy_samples[:2])
    trainer.update(rollout, torch.tensor([1.0, -1.0] * 4), None, trainer.reference_logprobs(rollout))
    base = load_model(tiny_model_dir, device="cpu")
    with torch.no_grad():
        expected = completion_logprobs(base, rollout)
        policy = completion_logprobs(trainer.model, rollout)
    ref = trainer.reference_logprobs(rollout)
    torch.testing.assert_close(ref, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(policy, expected, atol=1e-4)  # the adapters did change the policy


def test_dynamic_sampling_drops_flat_groups(tiny_model_dir, toy_samples, tmp_path):
    # an untrained model never writes the format: every group's rewards are all 0
    trainer = GRPOTrainer(
        _cfg(tiny_model_dir, tmp_path / "run", "grpo.dynamic_sampling=true"), samples=toy_samples
    )
    before = _weights(trainer.model)
    m = trainer.step(0).metrics
    assert m["groups/zero_spread"] == 1.0 and m["groups/dropped"] == 2 and m["skipped"] == 1
    assert all(torch.equal(before[k], v) for k, v in _weights(trainer.model).items())


def test_select_groups_keeps_images_with_their_prompts(tiny_model_dir, toy_samples, tmp_path):
    # images of different sizes (so each owns a different number of patches) and a prompt with two images
    from PIL import Image

    sizes = [[(112, 84)], [(56, 84), (140, 112)], [(84, 168)], [(112, 112)]]
    samples = []
    for b, (base, wanted) in enumerate(zip(toy_samples, sizes)):
        paths = []
        for j, size in enumerate(wanted):
            path = tmp_path / f"p{b}-{j}.png"
            Image.open(toy_samples[(b + j) % len(toy_samples)].image).resize(size).save(path)
            paths.append(str(path))
        samples.append(replace(base, images=paths, width=wanted[0][0], height=wanted[0][1]))
    trainer = GRPOTrainer(_cfg(tiny_model_dir, tmp_path / "run", "grpo.beta=0"), samples=samples)
    rollout, _ = trainer.rollout(samples)
    G = rollout.group_size
    assert rollout.images_per_prompt == [1, 2, 1, 1]
    assert len({tuple(t) for t in rollout.image_grid_thw.tolist()}) == 5  # five different patch counts
    with torch.no_grad():
        full = completion_logprobs(trainer.model, rollout)  # [4*G, T]
        for groups in ([1], [2, 0], [3], [0, 1, 3], [3, 1]):
            part = select_groups(rollout, groups)
            direct, _ = encode_prompts([samples[b] for b in groups], trainer.processor, trainer.convention)
            torch.testing.assert_close(part.pixel_values, direct["pixel_values"], rtol=0, atol=0)
            assert torch.equal(part.image_grid_thw, direct["image_grid_thw"]), groups
            assert part.images_per_prompt == count_images(trainer.model, direct["input_ids"]), groups
            rows = [b * G + i for b in groups for i in range(G)]
            got = completion_logprobs(trainer.model, part)
            torch.testing.assert_close(got, full[rows], rtol=1e-5, atol=1e-5)


def test_bad_settings_are_clear_errors(tiny_model_dir, toy_samples, tmp_path):
    with pytest.raises(ValueError, match="multiple of grpo.group_size"):
        GRPOTrainer(_cfg(tiny_model_dir, tmp_path, "grpo.micro_batch_size=3"), samples=toy_samples)
    with pytest.raises(ValueError, match="aggregation"):
        GRPOTrainer(_cfg(tiny_model_dir, tmp_path, "grpo.aggregation=mean"), samples=toy_samples)
    with pytest.raises(ValueError, match=r"grpo.beta must be >= 0, got -0.1"):
        GRPOTrainer(_cfg(tiny_model_dir, tmp_path, "grpo.beta=-0.1"), samples=toy_samples)


@pytest.mark.parametrize(
    "override, message",
    [
        ("grpo.group_size=1", r"grpo.group_size must be >= 2, got 1"),
        ("grpo.group_size=0", r"grpo.group_size must be >= 2, got 0"),  # before the modulo
        ("grpo.prompts_per_step=0", r"grpo.prompts_per_step must be >= 1"),
        ("grpo.mu=0", r"grpo.mu must be >= 1"),
        ("grpo.max_completion_length=0", r"grpo.max_completion_length must be >= 1"),
        ("grpo.eps_low=-0.2", r"grpo.eps_low must be >= 0"),
        ("grpo.top_p=0", r"grpo.top_p must be in \(0, 1\]"),
        ("grpo.rewards={iuo: 1}", r"grpo.rewards: unknown reward 'iuo'"),
        ('grpo.rewards={"no_such_module:f": 1}', r"grpo.rewards: reward 'no_such_module:f': cannot import"),
        ("grpo.rewards={iou: .nan}", r"grpo.rewards.iou: the weight must be a number"),
        ("optim.schedule=cosin", r"optim.schedule must be one of"),  # the shared sections too
    ],
)
def test_a_bad_grpo_setting_is_refused_by_name_before_anything_loads(override, message):
    with pytest.raises(ValueError, match=message):
        check_grpo_config(load_config(TrainConfig, None, [override]))


def test_rewards_must_read_the_datas_tasks_and_each_task_needs_one(letters_reward):
    check_rewards({"cls": 1.0, "format": 1.0, letters_reward: 1.0}, {"classification"})
    mixed = {"classification", "detection"}
    check_rewards({"cls": 1.0, "iou": 1.0, "confidence": 1.0, "format": 1.0}, mixed)  # each task its own
    check_rewards({"format": 1.0, letters_reward: 1.0}, mixed)  # none reads a task's answers: names only
    check_rewards({"iou": 1.0}, set())  # the data's tasks not known yet: names only
    with pytest.raises(ValueError, match=r"none reads the answers of the data's detection samples"):
        check_rewards({"cls": 1.0, "format": 1.0}, mixed)
    with pytest.raises(
        ValueError, match=r"grpo.rewards.grounding reads grounding answers, and the data has none"
    ):
        check_rewards({"cls": 1.0, "iou": 1.0, "grounding": 1.0}, mixed)


def test_the_trainer_refuses_rewards_that_leave_a_task_unread_before_the_model_loads(
    tiny_model_dir, toy_samples, tmp_path, monkeypatch
):
    import visual_rft.train.base as base

    loads = []
    monkeypatch.setattr(base, "load_model", lambda *a, **k: loads.append(a))
    assert {s.task for s in toy_samples} == {"classification", "detection"}
    with pytest.raises(ValueError, match=r"none reads the answers of the data's detection samples"):
        GRPOTrainer(_cfg(tiny_model_dir, tmp_path, "grpo.rewards={cls: 1, format: 1}"), samples=toy_samples)
    assert loads == []


# ---------------------------------------------------------------- the passes agree with the rollout

SMALL = ("run.steps=4", "grpo.group_size=2", "grpo.max_completion_length=6")


class Recording(GRPOTrainer):
    """The real trainer, keeping each inner update's metrics and the learning rate it ran at."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.updates, self.lrs = [], []

    def update(self, *args):
        self.lrs.append(self.optimizer.param_groups[0]["lr"])
        self.updates.append(super().update(*args))
        return self.updates[-1]


def _rollout(trainer, samples):
    torch.manual_seed(0)
    rollout, _ = trainer.rollout(samples[:2])
    return rollout


def test_logprobs_are_taken_at_the_sampling_temperature(tiny_model_dir, toy_samples, tmp_path):
    trainer = GRPOTrainer(_cfg(tiny_model_dir, tmp_path, *SMALL, "grpo.temperature=0.5"), samples=toy_samples)
    r = _rollout(trainer, toy_samples)
    with torch.no_grad():
        ours = trainer.logprobs(r)  # [4, T]
        full = completion_logprobs(trainer.model, r, chunk_size=0)  # [4, T] at T = 1
        sharp = completion_logprobs(trainer.model, r, temperature=0.5, chunk_size=0)
    m = r.completion_mask.bool()
    torch.testing.assert_close(ours[m], sharp[m], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(ours[m], full[m])  # T = 0.5 is another distribution than T = 1


def test_no_dropout_in_any_pass_even_with_lora_dropout(tiny_model_dir, toy_samples, tmp_path):
    """With LoRA dropout 0.5, the policy pass (train mode) equals the rollout's (eval mode) bit for bit,
    so the first of mu updates starts at ratio 1 exactly."""
    cfg = _cfg(
        tiny_model_dir, tmp_path, *SMALL, "model.lora.enabled=true", "model.lora.dropout=0.5", "grpo.mu=2"
    )
    trainer = Recording(cfg, samples=toy_samples)
    with torch.no_grad():  # adapters that do something (fresh ones start at B = 0: dropout would not show)
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    assert trainer.model.training
    r = _rollout(trainer, toy_samples)
    train_mode = [trainer.logprobs(r).detach() for _ in range(2)]
    with eval_mode(trainer.model), torch.no_grad():
        rollout_mode = trainer.logprobs(r)
    assert torch.equal(train_mode[0], train_mode[1]) and torch.equal(train_mode[0], rollout_mode)
    trainer.step(0)
    first = trainer.updates[0]
    assert first["kl_old"] == 0.0 and first["ratio_mean"] == pytest.approx(1.0, abs=1e-7)


def test_every_inner_update_is_logged_and_the_warmup_counts_updates(tiny_model_dir, toy_samples, tmp_path):
    cfg = _cfg(tiny_model_dir, tmp_path, *SMALL, "grpo.mu=2", "optim.warmup_steps=4", "grpo.beta=0")
    trainer = Recording(cfg, samples=toy_samples)
    metrics = trainer.step(0).metrics
    assert len(trainer.updates) == 2
    for key in ("loss", "grad_norm", "kl_old", "clip_frac"):
        assert metrics[key] == pytest.approx(sum(u[key] for u in trainer.updates) / 2), key
    assert metrics["loss/first"] == trainer.updates[0]["loss"]
    assert metrics["loss/last"] == trainer.updates[1]["loss"]
    # warm-up over 4 optimizer updates: the updates ran at 0 and 1/4 of lr, and after 2 updates lr is 2/4
    assert trainer.lrs == pytest.approx([0.0, 0.25e-3])
    assert metrics["lr"] == pytest.approx(0.5e-3)
    trainer.step(1)
    assert trainer.lrs[2:] == pytest.approx([0.5e-3, 0.75e-3])


def test_mean_over_updates():
    got = mean_over_updates([{"loss": 1.0, "skipped": 0, "kl": 2.0}, {"loss": 3.0, "skipped": 1}])
    assert got == {"loss": 2.0, "skipped": 0.5, "kl": 2.0, "loss/first": 1.0, "loss/last": 3.0}
    assert mean_over_updates([{"loss": 1.0}]) == {"loss": 1.0}


def test_a_zero_temperature_is_refused_before_the_model_loads(tiny_model_dir, toy_samples, tmp_path):
    with pytest.raises(ValueError, match="grpo.temperature"):
        GRPOTrainer(_cfg(tmp_path / "no-model", tmp_path, "grpo.temperature=0"), samples=toy_samples)
