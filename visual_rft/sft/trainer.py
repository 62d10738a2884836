"""Supervised fine-tuning (SFT) on the same JSONL as RFT: the baseline of the paper's comparison.

Each sample's target is rendered as the answer the rewards expect (`answer.answer_text`: boxes in the
model's convention with confidence 1, class names, the grounding box), with an optional fixed <think> part,
followed by the end-of-turn token. The loss is the mean negative log-likelihood of those answer tokens only.
Prompt and answer travel as a one-completion `Rollout`, so SFT and GRPO compute log-probabilities through
the same code (`completion_logprobs`: images encoded once, Qwen-VL positions).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from visual_rft.checks import check_at_least, check_share
from visual_rft.config import SFTTrainConfig
from visual_rft.data.answer import REGION_SLOT, answer_text
from visual_rft.data.types import DetectionTarget, GroundingTarget, Sample
from visual_rft.models.forward import (
    Rollout,
    completion_logprobs,
    count_images,
    prompt_positions,
    shift_after_image,
)
from visual_rft.models.image_cache import ImageCache, check_cacheable
from visual_rft.models.inputs import encode_prompts, instruction_gaps
from visual_rft.train.base import StepResult, Trainer, check_train_config
from visual_rft.train.data_order import position_offsets
from visual_rft.train.distributed import all_sum, gradient_sync
from visual_rft.train.optim import learning_rates


def answer_tokens(texts: list[str], tokenizer, end_id: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """([B, T] answer ids ending with the end-of-turn token, right-padded; [B, T] mask)."""
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] + [end_id] for t in texts]
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)  # [B, T]
    mask = torch.zeros((len(rows), T), dtype=torch.long)  # [B, T]
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def check_sft_config(cfg: SFTTrainConfig) -> None:
    """Refuse a config SFT cannot run, before anything loads (`visual_rft.checks`: a recipe checks each stage's)."""
    check_train_config(cfg)
    s, m = cfg.sft, cfg.model
    if s.aggregation not in ("token", "sequence"):
        raise ValueError(f"sft.aggregation must be token or sequence, got {s.aggregation!r}")
    check_at_least({"sft.batch_size": s.batch_size}, 1)
    check_at_least({"sft.micro_batch_size": s.micro_batch_size, "sft.position_jitter": s.position_jitter}, 0)
    check_share(s.short_prompts, "sft.short_prompts")
    if REGION_SLOT in s.think:
        raise ValueError(
            f"sft.think: {REGION_SLOT} stands for a grounding or detection answer's boxes, which classification "
            "answers lack; put it in sft.grounding_think or sft.detection_think"
        )
    if m.cache_images and not (m.freeze_vision or m.lora.enabled):
        raise ValueError(
            "model.cache_images=true needs model.freeze_vision=true (or a LoRA run): a tower that trains "
            "changes its tokens"
        )


class SFTTrainer(Trainer):
    name = "sft"
    check_config = staticmethod(check_sft_config)

    def __init__(self, cfg: SFTTrainConfig, samples: list[Sample] | None = None, resume: bool = False):
        super().__init__(cfg, samples, resume)
        self.end_id = self.processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.image_cache = None
        """A frozen tower's output per image (`model.cache_images`), else None: the pass encodes every batch."""
        if cfg.model.cache_images:
            check_cacheable(self.model)
            self.image_cache = ImageCache()

    def pass_options(self) -> dict:
        return {"logprobs": completion_logprobs}

    def batch(
        self, samples: list[Sample], short: bool = False, jitter: list[int] | None = None
    ) -> tuple[Rollout, list[str]]:
        """Prompts (`short`: the questions alone) and their reference answers as a one-completion rollout;
        `jitter`: per sample, RoPE positions to move its text after the image by (`sft.position_jitter`)."""
        inputs, frames = encode_prompts(samples, self.processor, self.convention, short)
        inputs = inputs.to(self.device)
        positions = prompt_positions(self.model, inputs)  # [3, B, L]
        if short and self.cfg.sft.short_keeps_positions:  # the answer where the full prompt puts it
            gaps, tail = instruction_gaps(samples, frames, self.processor)
            positions[:, :, -tail:] += torch.tensor(gaps, device=positions.device)[None, :, None]
        if jitter is not None:
            positions = shift_after_image(positions, inputs["mm_token_type_ids"], jitter)  # [3, B, L]
        texts = [answer_text(s, f, self.think_for(s)) for s, f in zip(samples, frames)]
        ids, mask = answer_tokens(texts, self.processor.tokenizer, self.end_id, self.pad_id)
        rollout = Rollout(
            prompt_ids=inputs["input_ids"],
            prompt_mask=inputs["attention_mask"],
            prompt_positions=positions,
            pixel_values=inputs["pixel_values"],
            image_grid_thw=inputs["image_grid_thw"],
            completion_ids=ids.to(self.device),
            completion_mask=mask.to(self.device),
            group_size=1,
            images_per_prompt=count_images(self.model, inputs["input_ids"]),
        )
        if self.image_cache is not None:
            paths = [str(p) for s in samples for p in s.images]
            with self.precision.autocast():  # as the pass would have computed them
                rollout.images = self.image_cache.features(
                    self.model, paths, rollout.pixel_values, rollout.image_grid_thw
                )
        return rollout, texts

    def short_step(self, step: int) -> bool:
        """Whether `step`'s prompts are the questions alone: `sft.short_prompts` of the steps, spread evenly
        (at 0.8, four steps in every five, the first of each five in full)."""
        share = self.cfg.sft.short_prompts
        return math.floor((step + 1) * share) > math.floor(step * share)

    def jitter(self, step: int, start: int, n: int) -> list[int] | None:
        """`sft.position_jitter`'s offsets for the n samples of `step` from `start` on in this rank's batch
        (`data_order.position_offsets`: the same for any number of ranks or micro-batches, and on resuming);
        None without jitter."""
        most = self.cfg.sft.position_jitter
        if not most:
            return None
        B = self.cfg.sft.batch_size
        first = self.world.rank * B + start  # the first sample's index in the global batch
        return position_offsets(self.cfg.run.seed, step, B * self.world.size, most)[first : first + n]

    def think_for(self, sample: Sample) -> str | None:
        """The think text of a sample's answer (None: no think part)."""
        sft = self.cfg.sft
        if isinstance(sample.target, GroundingTarget) and sft.grounding_think:
            return sft.grounding_think
        if isinstance(sample.target, DetectionTarget) and sft.detection_think:
            return sft.detection_think
        return sft.think or None

    def auxiliary_loss(
        self, rollout: Rollout, samples: list[Sample], texts: list[str]
    ) -> torch.Tensor | None:
        """A loss added to the answer NLL of one micro-batch, taken from the forward it just ran (a subclass's;
        recipes/binding.py holds attention to the asked object); None: the NLL alone."""
        return None

    def auxiliary_metrics(self) -> dict[str, float]:
        """The last `auxiliary_loss`'s numbers for the log (averaged over the step's micro-batches)."""
        return {}

    def step(self, step: int) -> StepResult:
        cfg, world = self.cfg, self.world
        B = cfg.sft.batch_size  # per rank: the global batch is world.size x B
        micro = cfg.sft.micro_batch_size or B
        batch = self.rank_batch(step, B)
        short = self.short_step(step)
        self.optimizer.zero_grad(set_to_none=True)
        local_tokens = 0
        chunks = []
        for start in range(0, B, micro):
            part = batch[start : start + micro]
            rollout, texts = self.batch(part, short, self.jitter(step, start, len(part)))
            chunks.append((rollout, part, texts))
            local_tokens += int(rollout.completion_mask.sum())
        total_tokens = int(all_sum(torch.tensor(local_tokens), world))  # of the global batch
        loss_sum, correct, extra, finite = 0.0, 0, {}, True
        for i, (rollout, part, texts) in enumerate(chunks):
            last = i == len(chunks) - 1  # gradients are all-reduced on the last micro-batch
            with gradient_sync(self.policy_pass, last), self.precision.autocast():
                logp = self.policy_pass(rollout)  # [b, T]
            mask = rollout.completion_mask  # [b, T]
            if cfg.sft.aggregation == "token":  # mean NLL over all answer tokens of the global batch
                loss = -(logp * mask).sum() / total_tokens
            else:  # each answer's mean NLL, averaged over the global batch's answers
                loss = -((logp * mask).sum(1) / mask.sum(1)).sum() / (B * world.size)
            loss_sum += loss.item()  # the answers' NLL, what the log calls loss
            aux = self.auxiliary_loss(rollout, part, texts)  # a mean over this chunk, or None
            if aux is not None:
                loss = loss + aux * len(part) / B
                finite = finite and math.isfinite(aux.item())  # a non-finite one skips the update too
            with gradient_sync(self.policy_pass, last):
                self.precision.backward(loss * world.size if world.size > 1 else loss)  # DDP averages
            correct += int(((logp.detach().exp() > 0.5) | (mask == 0)).all(dim=1).sum())
            for k, v in self.auxiliary_metrics().items():
                extra[k] = extra.get(k, 0.0) + v / len(chunks)
        # a non-finite loss or gradient skips the update, and the log says so
        grad_norm, skipped = self.precision.step(
            self.optimizer, self.params, cfg.optim.max_grad_norm, finite and math.isfinite(loss_sum)
        )
        self.scheduler.step()
        metrics = {
            "loss": loss_sum,
            "grad_norm": grad_norm,
            "skipped": int(skipped),
            "answer_tokens": local_tokens,
            **learning_rates(self.optimizer, self.scheduler),
            # share of answers whose every token already has probability > 0.5 (greedy would copy it)
            "answers_memorised": correct / B,
            "short_prompts": int(short),
            **extra,
        }
        return StepResult(metrics, postfix={"loss": loss_sum})


def train_sft(cfg: SFTTrainConfig, resume: bool = False) -> Path:
    """Run SFT as configured; returns the run folder."""
    return SFTTrainer(cfg, resume=resume).fit()
