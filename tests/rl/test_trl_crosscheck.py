"""Our GRPO loss and gradients equal TRL GRPOTrainer's on the same tiny model, batch, completions and rewards.

TRL (1.16) runs its real training step (`GRPOTrainer.train()` for one step): its own prompt tokenization, its
own processor call for the pixels, its reward normalisation, its forward passes (the image copied to every
completion, positions computed by the model from the attention mask) and its loss. Only the sampling is
replaced, through TRL's `rollout_func` hook, by fixed completion ids, and the rewards are fixed numbers.
We capture TRL's loss (wrapping `compute_loss`) and its gradients (a callback before the optimizer step,
with clipping off and a learning rate of 0).

Ours: the same samples through `encode_prompts`, a `Rollout` holding the same completion ids, our
`group_advantages`, `completion_logprobs` (image encoded once per prompt, Qwen-VL positions) and
`policy_loss`. Settings matched: TRL's dapo / grpo / dr_grpo = our token / sequence / constant aggregation
(max_len = TRL's max_completion_length), scale_rewards "group" / "none" = scale True / False, and beta 0
or 0.04 with TRL's reference loaded from the model folder and ours computed from the same folder. The
policy's weights are perturbed away from the folder's so that the KL term and its gradient are not zero.

One TRL default is not our method: `use_bias_correction_kl=True` (trl >= 1.x, from DeepSeek-V3.2) multiplies
the k3 KL by the ratio pi/pi_old. On-policy the ratio is 1, so the loss value is unchanged, but the ratio is
differentiable and adds beta * kl * grad(logp) to the gradient (about 1e-5 to 1e-4 of the gradient here,
far above fp32 noise: ours and TRL agree to ~1e-6 without it). The matching TRL setting is
`use_bias_correction_kl=False`; `test_trl_default_kl_is_bias_corrected` pins the difference exactly.

The log-probabilities agree (bit for bit on our CPU): TRL's forward (pixels copied per completion, positions from the
model's own `get_rope_index` over prompt + completion with left padding) and ours (image encoded once,
prompt positions from `get_rope_index`, completion positions continuing from the prompt's largest).
"""

import copy

import pytest
import torch

pytest.importorskip("trl")
pytest.importorskip("datasets")

from PIL import Image, ImageDraw  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from trl import GRPOTrainer  # noqa: E402

from visual_rft.data.types import ClassTarget, Sample  # noqa: E402
from visual_rft.models.forward import Rollout, completion_logprobs, count_images, prompt_positions  # noqa: E402
from visual_rft.models.inputs import encode_prompts  # noqa: E402
from visual_rft.models.loading import load_model, load_processor  # noqa: E402
from visual_rft.rl.advantages import group_advantages  # noqa: E402
from visual_rft.rl.loss import (  # noqa: E402
    aggregate,
    importance_ratio,
    k3_kl,
    loss_stats,
    per_token_loss,
    policy_loss,
)

G, T = 4, 10  # completions per prompt; TRL's max_completion_length
LENGTHS = [10, 3, 7, 10, 5, 10, 1, 8]  # length T: truncated; shorter: ends with <|im_end|>
REWARDS = [1.0, 0.0, 0.5, 0.2, 0.0, 1.0, 1.0, 0.3]
# TRL loss_type -> (our aggregation, TRL scale_rewards, our scale_advantages)
SETTINGS = {
    "dapo": ("token", "group", True),
    "grpo": ("sequence", "group", True),
    "dr_grpo": ("constant", "none", False),
}


@pytest.fixture(scope="module")
def trl_setup(load_bench):
    return load_bench("trl_setup")


@pytest.fixture(scope="module")
def world(tiny_model_dir, tmp_path_factory):
    """Two prompts of different lengths (left padding), fixed completions, a perturbed policy."""
    folder = tmp_path_factory.mktemp("crosscheck")
    samples = []
    for i, (colour, size, extra) in enumerate((("red", (56, 56), ""), ("blue", (112, 84), " Look closely."))):
        im = Image.new("RGB", size, "white")
        ImageDraw.Draw(im).ellipse((5, 5, 40, 40), fill=colour)
        im.save(folder / f"{i}.png")
        samples.append(
            Sample(
                f"s{i}",
                [str(folder / f"{i}.png")],
                "classification",
                "What colour is the circle?" + extra,
                ClassTarget(colour),
            )
        )
    processor = load_processor(tiny_model_dir)
    tok = processor.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    special = set(tok.all_special_ids) | set(tok.get_added_vocab().values())
    ordinary = torch.tensor([i for i in range(len(tok)) if i not in special])  # no image or end tokens
    gen = torch.Generator().manual_seed(0)
    completions = []
    for n in LENGTHS:
        ids = ordinary[torch.randint(len(ordinary), (n,), generator=gen)].tolist()
        if n < T:
            ids[-1] = end
        completions.append(ids)
    policy = load_model(tiny_model_dir, device="cpu")
    with torch.no_grad():  # move the policy away from the reference (the folder's weights)
        for p in policy.parameters():
            p.add_(0.05 * p.std().nan_to_num(0.0) * torch.randn(p.shape, generator=gen))
    return {
        "dir": tiny_model_dir,
        "samples": samples,
        "processor": processor,
        "completions": completions,
        "policy": policy,
        "pad": tok.pad_token_id,
    }


def run_trl(world, trl_setup, loss_type, beta, tmp_path, bias_correction_kl=False):
    """One TRL training step on the fixed batch: (loss, {name: grad}, the loss's inputs, trainer)."""
    _, scale_rewards, _ = SETTINGS[loss_type]
    model = copy.deepcopy(world["policy"])
    args = trl_setup.grpo_config(
        tmp_path,
        prompts=2,
        group_size=G,
        max_completion_length=T,
        beta=beta,
        loss_type=loss_type,
        scale_rewards=scale_rewards,
        learning_rate=0.0,
        max_grad_norm=0.0,
        use_bias_correction_kl=bias_correction_kl,
    )
    dataset = trl_setup.trl_dataset(world["samples"], world["processor"], "resized_pixels")

    def fixed_reward(completions, **kwargs):
        return list(REWARDS)

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[fixed_reward],
        args=args,
        train_dataset=dataset,
        processing_class=world["processor"],
        rollout_func=trl_setup.fixed_rollout(world["completions"]),
    )
    seen = {}
    compute_loss = trainer.compute_loss

    def capture_loss(model, inputs, *a, **kw):  # capture only: TRL's own compute_loss runs unchanged
        loss = compute_loss(model, inputs, *a, **kw)
        seen["loss"], seen["inputs"] = loss.detach().clone(), inputs
        return loss

    class CaptureGrads(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            seen["grads"] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    trainer.compute_loss = capture_loss
    trainer.add_callback(CaptureGrads())
    trainer.train()
    return seen["loss"], seen["grads"], seen["inputs"], trainer


def run_ours(world, loss_type, beta, loss_fn=policy_loss):
    """Our loss on the same batch: (loss, {name: grad}, rollout, advantages, ref_logp, stats)."""
    aggregation, _, scale = SETTINGS[loss_type]
    model = copy.deepcopy(world["policy"])
    inputs, _ = encode_prompts(world["samples"], world["processor"], "resized_pixels")
    ids = torch.full((len(LENGTHS), T), world["pad"], dtype=torch.long)  # [N, T]
    mask = torch.zeros((len(LENGTHS), T), dtype=torch.long)  # [N, T]
    for i, c in enumerate(world["completions"]):
        ids[i, : len(c)] = torch.tensor(c)
        mask[i, : len(c)] = 1
    rollout = Rollout(
        inputs["input_ids"],
        inputs["attention_mask"],
        prompt_positions(model, inputs),
        inputs["pixel_values"],
        inputs["image_grid_thw"],
        ids,
        mask,
        group_size=G,
        images_per_prompt=count_images(model, inputs["input_ids"]),
    )
    advantages = group_advantages(torch.tensor(REWARDS), G, scale=scale)  # [N]
    ref_logp = None
    if beta > 0:
        with torch.no_grad():
            ref_logp = completion_logprobs(load_model(world["dir"], device="cpu"), rollout)  # [N, T]
    model.train()
    logp = completion_logprobs(model, rollout)  # [N, T]
    loss = loss_fn(
        logp, logp.detach(), ref_logp, advantages, mask, beta=beta, aggregation=aggregation, max_len=T
    )
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    stats = loss_stats(logp.detach(), logp.detach(), ref_logp, advantages, mask)
    return loss.detach(), grads, rollout, advantages, ref_logp, stats


def row_order(trl_ids, our_ids):
    """TRL shuffles the rows of its batch: for each of TRL's rows, the index of the same completion in ours."""
    ours = [tuple(r) for r in our_ids.tolist()]
    return torch.tensor([ours.index(tuple(r)) for r in trl_ids.tolist()])


@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("loss_type", list(SETTINGS))
def test_loss_and_gradients_equal_trl(world, trl_setup, loss_type, beta, tmp_path):
    trl_loss, trl_grads, trl_inputs, trainer = run_trl(world, trl_setup, loss_type, beta, tmp_path)
    loss, grads, rollout, advantages, ref_logp, stats = run_ours(world, loss_type, beta)

    # the same batch: prompt tokens (TRL repeats each prompt G times), completions, advantages
    order = row_order(trl_inputs["completion_ids"], rollout.completion_ids)
    assert sorted(order.tolist()) == list(range(len(LENGTHS)))
    prompts = rollout.prompt_ids.repeat_interleave(G, 0)[order]
    assert (rollout.prompt_mask == 0).any()  # left padding is exercised
    assert torch.equal(
        trl_inputs["prompt_ids"] * trl_inputs["prompt_mask"], prompts * (prompts != world["pad"])
    )
    assert torch.equal(trl_inputs["completion_mask"], rollout.completion_mask[order])
    torch.testing.assert_close(trl_inputs["advantages"], advantages[order], rtol=1e-6, atol=1e-6)

    if beta > 0:  # TRL's reference log-probs (pixels copied per completion) equal ours (encoded once)
        mask = rollout.completion_mask[order]
        torch.testing.assert_close(
            trl_inputs["ref_per_token_logps"] * mask, ref_logp[order] * mask, rtol=1e-5, atol=1e-5
        )
        assert stats["kl"] > 1e-4  # the policy differs from the reference: the KL term is exercised
        assert trainer.state.log_history[0]["kl"] == pytest.approx(stats["kl"], rel=1e-4)

    torch.testing.assert_close(loss, trl_loss, rtol=1e-5, atol=1e-7)
    assert set(grads) == set(trl_grads) == {n for n, p in world["policy"].named_parameters()}
    for name, grad in grads.items():
        torch.testing.assert_close(
            grad, trl_grads[name], rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}"
        )


def bias_corrected_kl_loss(logp, old_logp, ref_logp, advantages, mask, *, beta, aggregation, max_len):
    """TRL's default KL (use_bias_correction_kl=True): the k3 KL multiplied by the ratio pi/pi_old, built from
    our pieces. The ratio is 1 on-policy, so the value is our loss, but its gradient adds beta * kl * grad(logp)."""
    ratio = importance_ratio(logp, old_logp)  # [N, T]
    token = per_token_loss(logp, old_logp, None, advantages, eps_low=0.2, eps_high=0.2, beta=0.0)  # [N, T]
    token = token + beta * k3_kl(logp, ref_logp) * ratio  # [N, T]
    return aggregate(token, mask.to(logp.dtype), aggregation, max_len)


def test_trl_default_kl_is_bias_corrected(world, trl_setup, tmp_path):
    """TRL 1.16 defaults to use_bias_correction_kl=True (DeepSeek-V3.2's unbiased KL gradient). Same loss value,
    another gradient: ours (the plain k3 KL, as in the paper's GRPO) differs from it by beta * kl * grad(logp),
    and adding exactly that term to ours reproduces TRL's default gradients."""
    trl_loss, trl_grads, _, _ = run_trl(world, trl_setup, "dapo", 0.04, tmp_path, bias_correction_kl=True)
    loss, grads, *_ = run_ours(world, "dapo", 0.04)
    torch.testing.assert_close(loss, trl_loss, rtol=1e-5, atol=1e-7)
    differ = [n for n in grads if not torch.allclose(grads[n], trl_grads[n], rtol=1e-4, atol=1e-6)]
    assert differ  # plain k3 gradients are not TRL's default ones
    loss, grads, *_ = run_ours(world, "dapo", 0.04, loss_fn=bias_corrected_kl_loss)
    torch.testing.assert_close(loss, trl_loss, rtol=1e-5, atol=1e-7)
    for name, grad in grads.items():
        torch.testing.assert_close(
            grad, trl_grads[name], rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}"
        )
