"""The GRPO trainer: rollout -> rewards -> advantages -> clipped policy loss with KL -> optimizer step.

for step in steps:
    batch       = B samples (a deterministic function of seed and step, so resuming is exact)
    rollout     = sample_group(policy, batch, G)       images and prompts encoded once per group
    rewards     = score_completions(rollout)           named rule-based rewards, weighted sum
    advantages  = group_advantages(rewards, G)         normalised within each group
    (dynamic sampling drops groups whose rewards are all equal)
    for each of mu updates:
        logp    = completion_logprobs(policy)          with gradients, at the sampling temperature
        loss    = policy_loss(logp, old_logp, ref_logp, advantages)
        backward, clip, skip if not finite, optimizer step, schedule step
    log metrics (each the mean over the mu updates), write samples, checkpoint

Dropout is switched off in the policy (as TRL's `disable_dropout` and verl do), so the rollout, old-policy,
reference and policy passes compute the same function and the first inner update's ratio is exactly 1.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from visual_rft import rewards as rewards_lib
from visual_rft.checks import check_at_least
from visual_rft.config import TrainConfig
from visual_rft.data.coords import target_to_model
from visual_rft.data.types import Sample
from visual_rft.models.forward import Rollout
from visual_rft.models.inputs import encode_prompts
from visual_rft.models.loading import load_model
from visual_rft.models.lora import disable_dropout, eval_mode, is_lora, reference_context
from visual_rft.rl.advantages import group_advantages, zero_spread_groups
from visual_rft.rl.loss import loss_stats, policy_loss
from visual_rft.rl.rollout import sample_group
from visual_rft.train.base import StepResult, Trainer, check_train_config
from visual_rft.train.data_order import sampling_seed
from visual_rft.train.distributed import PolicyPass, all_sum, gathered, gradient_sync
from visual_rft.train.optim import learning_rates


def select_groups(rollout: Rollout, groups: list[int]) -> Rollout:
    """The rollout restricted to some prompts (and their G completions each)."""
    G = rollout.group_size
    g = torch.tensor(groups, dtype=torch.long)
    rows = (g[:, None] * G + torch.arange(G)).flatten()  # [len(groups) * G]
    # image patches: each prompt owns a consecutive run of images, each image a run of patches
    patches = rollout.image_grid_thw.prod(-1).tolist()  # patches per image
    first_image = np.cumsum([0, *rollout.images_per_prompt])
    first_patch = np.cumsum([0, *patches])
    images = [i for b in groups for i in range(first_image[b], first_image[b + 1])]
    patch_rows = [p for i in images for p in range(first_patch[i], first_patch[i + 1])]
    return replace(
        rollout,
        prompt_ids=rollout.prompt_ids[g],
        prompt_mask=rollout.prompt_mask[g],
        prompt_positions=rollout.prompt_positions[:, g],
        pixel_values=rollout.pixel_values[patch_rows],
        image_grid_thw=rollout.image_grid_thw[images],
        images_per_prompt=[rollout.images_per_prompt[b] for b in groups],
        completion_ids=rollout.completion_ids[rows],
        completion_mask=rollout.completion_mask[rows],
    )


def mean_over_updates(updates: list[dict]) -> dict:
    """The metrics of a step's mu inner updates: each key's mean over the updates that logged it
    ("skipped": the share of them skipped; "loss/first", "loss/last": how the inner loop moved)."""
    keys = dict.fromkeys(k for u in updates for k in u)
    out = {k: float(np.mean([u[k] for u in updates if k in u])) for k in keys}
    if len(updates) > 1:
        out["loss/first"], out["loss/last"] = updates[0]["loss"], updates[-1]["loss"]
    return out


def check_grpo_config(cfg: TrainConfig) -> None:
    """Refuse a config GRPO cannot run, before anything loads (`visual_rft.checks`: a recipe checks its
    RFT section before its first run)."""
    check_train_config(cfg)
    g, m = cfg.grpo, cfg.model
    check_at_least({"grpo.group_size": g.group_size}, 2)  # one completion a group: every advantage is 0
    check_at_least(
        {
            "grpo.prompts_per_step": g.prompts_per_step,
            "grpo.mu": g.mu,
            "grpo.max_completion_length": g.max_completion_length,
        },
        1,
    )
    check_at_least(
        {"grpo.eps_low": g.eps_low, "grpo.eps_high": g.eps_high, "grpo.micro_batch_size": g.micro_batch_size},
        0,
    )
    if g.micro_batch_size % g.group_size:
        raise ValueError(
            f"grpo.micro_batch_size ({g.micro_batch_size}) must be a multiple of grpo.group_size ({g.group_size})"
        )
    if g.aggregation not in ("token", "sequence", "constant"):
        raise ValueError(f"grpo.aggregation must be token, sequence or constant, got {g.aggregation!r}")
    if not math.isfinite(g.beta) or g.beta < 0:
        raise ValueError(f"grpo.beta must be >= 0, got {g.beta}")
    if not g.temperature > 0:
        raise ValueError(f"grpo.temperature must be > 0 (GRPO samples), got {g.temperature}")
    if not 0 < g.top_p <= 1:
        raise ValueError(f"grpo.top_p must be in (0, 1], got {g.top_p}")
    check_rewards(g.rewards)
    if m.cache_images:
        raise ValueError(
            "model.cache_images is an SFT option: GRPO's rollout encodes each image once per group"
        )


def check_rewards(weights: dict[str, float], tasks: set[str] = frozenset()) -> None:
    """`grpo.rewards`: every name a reward (registered, or a user function that imports), every weight a
    number. With the data's `tasks` known and some rewards that read a task's answers given, each must read a
    task the data has, and each task must have one: every reward scores each completion, and one that reads
    another task's answers gives it 0, so a task without its own would train on the format alone."""
    for name, weight in weights.items():
        try:
            rewards_lib.get(name)
        except ValueError as error:
            raise ValueError(f"grpo.rewards: {error}") from error
        if not math.isfinite(weight):
            raise ValueError(f"grpo.rewards.{name}: the weight must be a number, got {weight}")
    kinds = {name: rewards_lib.answer_kind(name) for name in weights}
    read = set(kinds.values()) - {None}
    if not tasks or not read:  # the data unknown yet, or only format / user rewards: names only
        return
    for name, kind in kinds.items():
        if kind and kind not in tasks:
            raise ValueError(
                f"grpo.rewards.{name} reads {kind} answers, and the data has none ({', '.join(sorted(tasks))})"
            )
    unread = sorted(tasks - read)
    if unread:
        raise ValueError(
            f"grpo.rewards: none reads the answers of the data's {', '.join(unread)} samples, which would "
            "train on the format alone; add one, or leave grpo.rewards empty for each task's defaults"
        )


class GRPOTrainer(Trainer):
    """GRPO on top of `Trainer` (data, model, optimizer, resume, loop): adds the reference and `step`."""

    name = "grpo"
    check_config = staticmethod(check_grpo_config)

    def __init__(self, cfg: TrainConfig, samples: list[Sample] | None = None, resume: bool = False):
        super().__init__(cfg, samples, resume)
        # rollout, old, reference and policy passes must see one network: no dropout anywhere
        disable_dropout(self.model)
        g, m = cfg.grpo, cfg.model
        self.reference = None
        if g.beta > 0 and not is_lora(self.model):  # full fine-tuning: a frozen copy of the starting weights
            self.reference = load_model(
                m.path, dtype=m.dtype, device=str(self.device), attn_implementation=m.attn_implementation
            ).requires_grad_(False)
        # the reference's pass: sharded like the policy under fsdp2 (frozen, so never wrapped in DDP)
        self.reference_pass = None
        if self.reference is not None:
            ref = PolicyPass(self.reference, chunk_size=m.logprob_chunk_size, **self.pass_options())
            self.reference_pass = self.wrap(ref) if self.strategy == "fsdp2" else ref

    def check_samples(self, samples: list[Sample]) -> None:
        check_rewards(self.cfg.grpo.rewards, {s.task for s in samples})

    def updates_per_step(self) -> int:
        return self.cfg.grpo.mu

    def pass_options(self) -> dict:
        return {"temperature": self.cfg.grpo.temperature, "share_prefix": self.cfg.model.share_prefix}

    # ------------------------------------------------------------------ the algorithm's steps

    def noise(self, step: int, n: int) -> list[torch.Generator]:
        """One generator per prompt of this rank's batch, seeded by (seed, step, the prompt's index in the
        global batch): a group's completions are the same whichever rank samples it."""
        first = self.world.rank * n
        seeds = [sampling_seed(self.cfg.run.seed, step, first + b) for b in range(n)]
        return [torch.Generator(self.device).manual_seed(s) for s in seeds]

    def rollout(self, batch: list[Sample], step: int = 0):
        inputs, frames = encode_prompts(batch, self.processor, self.convention)
        inputs = inputs.to(self.device)
        g = self.cfg.grpo
        with eval_mode(self.model), gathered(self.policy_pass), self.precision.autocast():
            rollout = sample_group(
                self.model,
                inputs,
                group_size=g.group_size,
                max_new_tokens=g.max_completion_length,
                temperature=g.temperature,
                top_p=g.top_p,
                eos_token_ids=self.eos_ids,
                pad_token_id=self.pad_id,
                compile_step=g.compiled_decode and self.device.type == "cuda",
                generators=self.noise(step, len(batch)),
            )
        return rollout, frames

    def score_completions(self, texts: list[str], batch: list[Sample], frames) -> tuple[torch.Tensor, dict]:
        """[B*G] total rewards, and each reward's values, with targets in the model's coordinates."""
        G = self.cfg.grpo.group_size
        rows = [(s, f) for s, f in zip(batch, frames) for _ in range(G)]
        total = [0.0] * len(rows)
        per_reward: dict[str, list[float | None]] = {}
        for task in sorted({s.task for s in batch}):
            idx = [i for i, (s, _) in enumerate(rows) if s.task == task]
            weights = self.cfg.grpo.rewards or rewards_lib.task_defaults(task)
            solutions = [target_to_model(rows[i][0].target, rows[i][1]) for i in idx]
            totals, values = rewards_lib.score([texts[i] for i in idx], solutions, weights)
            for j, i in enumerate(idx):
                total[i] = totals[j]
            for name, vals in values.items():
                col = per_reward.setdefault(name, [None] * len(rows))
                for j, i in enumerate(idx):
                    col[i] = vals[j]
        return torch.tensor(total, dtype=torch.float32), per_reward

    def logprobs(self, rollout: Rollout, pass_=None) -> torch.Tensor:
        """[R, T] completion log-probabilities, as every pass (reference, old, policy) takes them: through
        a `PolicyPass` (the policy's by default: DDP's or FSDP2's wrapper when there is one), at the
        rollout's sampling temperature (logits / T, as TRL does; top-p only shapes the sampling), in the
        run's compute precision (`run.precision`: bf16 under autocast, as the rollout sampled)."""
        with self.precision.autocast():
            return (pass_ or self.policy_pass)(rollout)

    def reference_logprobs(self, rollout: Rollout) -> torch.Tensor | None:
        if self.cfg.grpo.beta == 0:
            return None  # no reference pass at all
        with torch.no_grad():
            if self.reference_pass is not None:
                return self.logprobs(rollout, self.reference_pass)
            with reference_context(self.model):  # LoRA: the base model is the reference
                return self.logprobs(rollout)

    def update(self, rollout: Rollout, advantages, old_logp, ref_logp, weight: float = 1.0) -> dict:
        """One optimizer step over the rollout, in micro-batches of whole groups. Skips non-finite steps.
        The loss is normalised by the global batch's tokens (or rows), summed over ranks by the gradient
        all-reduce; `weight` 0: this rank contributes nothing but takes part in the all-reduce."""
        g, world = self.cfg.grpo, self.world
        G = g.group_size
        n_groups = rollout.completion_ids.shape[0] // G
        per_chunk = max(1, (g.micro_batch_size or n_groups * G) // G)
        total_tokens = all_sum(rollout.completion_mask.sum() * int(weight), world).clamp(min=1)
        total_rows = int(all_sum(torch.tensor(n_groups * G * int(weight)), world)) or 1
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, finite, stats = 0.0, True, []
        for start in range(0, n_groups, per_chunk):
            groups = list(range(start, min(n_groups, start + per_chunk)))
            rows = slice(start * G, (start + len(groups)) * G)
            part = select_groups(rollout, groups)
            last = start + per_chunk >= n_groups
            with gradient_sync(self.policy_pass, last):
                logp = self.logprobs(part)  # [R, T]
            old = old_logp[rows] if old_logp is not None else logp.detach()  # [R, T]
            ref = ref_logp[rows] if ref_logp is not None else None
            mask = part.completion_mask  # [R, T]
            loss = policy_loss(
                logp,
                old,
                ref,
                advantages[rows],
                mask,
                eps_low=g.eps_low,
                eps_high=g.eps_high,
                beta=g.beta,
                aggregation=g.aggregation,
                max_len=g.max_completion_length,
            )
            # chunks are weighted so that the sum (over chunks and ranks) is the loss of the global batch
            share = mask.sum() / total_tokens if g.aggregation == "token" else len(groups) * G / total_rows
            loss = loss * share * weight
            if not torch.isfinite(loss):
                finite = False
                if world.size == 1:
                    break  # (several ranks: the non-finite gradients reach every rank, all skip the step)
            with gradient_sync(self.policy_pass, last):
                self.precision.backward(loss * world.size if world.size > 1 else loss)  # DDP averages
            loss_sum += loss.item()
            stats.append(
                loss_stats(
                    logp.detach(), old, ref, advantages[rows], mask, eps_low=g.eps_low, eps_high=g.eps_high
                )
            )
        grad_norm, skipped = self.precision.step(
            self.optimizer, self.params, self.cfg.optim.max_grad_norm, finite
        )
        out = {"loss": loss_sum if finite else float("nan"), "grad_norm": grad_norm, "skipped": int(skipped)}
        for key in ("kl", "kl_old", "clip_frac", "ratio_mean"):  # means over the micro-batches
            vals = [s[key] for s in stats if key in s]
            if vals:
                out[key] = float(np.mean(vals))
        return out

    def world_keeps(self, keep: list[int]) -> bool:
        """Whether this rank has kept groups, or no rank has (then every rank skips the update alike)."""
        kept = int(all_sum(torch.tensor(len(keep)), self.world))  # a collective: every rank calls it
        return bool(keep) or not kept

    def step(self, step: int) -> StepResult:
        g = self.cfg.grpo
        G = g.group_size
        batch = self.rank_batch(step, g.prompts_per_step)

        t0 = time.perf_counter()
        rollout, frames = self.rollout(batch, step)
        texts = self.processor.batch_decode(
            rollout.completion_ids.masked_fill(rollout.completion_mask == 0, self.pad_id),
            skip_special_tokens=True,
        )
        t1 = time.perf_counter()
        rewards, per_reward = self.score_completions(texts, batch, frames)  # [B*G]
        advantages = group_advantages(rewards, G, scale=g.scale_advantages).to(self.device)  # [B*G]
        flat = zero_spread_groups(rewards, G)  # [B]
        t2 = time.perf_counter()

        keep = [b for b in range(len(batch)) if not (g.dynamic_sampling and bool(flat[b]))]
        metrics = {
            "reward/total": float(rewards.mean()),
            "reward/std_in_group": float(rewards.view(-1, G).std(dim=1).nan_to_num(0).mean()),
            "groups/zero_spread": float(flat.float().mean()),
            "groups/dropped": len(batch) - len(keep),
            "completion/length": float(rollout.completion_mask.sum(1).float().mean()),
        }
        values = {k: [x for x in v if x is not None] for k, v in per_reward.items()}
        metrics.update(rewards_lib.reward_metrics(texts, values))
        weight = 1.0
        if self.world.size > 1 and g.dynamic_sampling and not self.world_keeps(keep):
            keep, weight = (
                [0],
                0.0,
            )  # another rank trains: this one joins the gradient all-reduce with nothing
        if keep:
            part = rollout if len(keep) == len(batch) else select_groups(rollout, keep)
            rows = torch.tensor([b * G + j for b in keep for j in range(G)], device=self.device)
            adv = advantages[rows]
            ref_logp = self.reference_logprobs(part)
            old_logp = None
            if g.mu > 1:
                with torch.no_grad():
                    old_logp = self.logprobs(part)
            updates = []
            for _ in range(g.mu):
                updates.append(self.update(part, adv, old_logp, ref_logp, weight))
                self.scheduler.step()  # the schedule counts optimizer updates (optim.warmup_steps)
            metrics.update(mean_over_updates(updates))
        else:
            metrics.update({"skipped": 1, "loss": 0.0})
            for _ in range(g.mu):  # the schedule stays a function of the step (resuming is exact)
                self.scheduler.step()
        t3 = time.perf_counter()
        metrics.update(
            {
                **learning_rates(self.optimizer, self.scheduler),
                "time/rollout": t1 - t0,
                "time/reward": t2 - t1,
                "time/update": t3 - t2,
            }
        )
        samples = [
            {
                "id": batch[0].id,
                "completion": texts[j],
                "reward": float(rewards[j]),
                **{k: v[j] for k, v in per_reward.items()},
            }
            for j in range(G)
        ]
        return StepResult(metrics, samples, {"reward": metrics["reward/total"], "kl": metrics.get("kl", 0.0)})


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Run GRPO as configured; returns the run folder."""
    return GRPOTrainer(cfg, resume=resume).fit()
