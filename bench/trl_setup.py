"""Build TRL's `GRPOTrainer` (trl 1.16) on our tiny model and data: shared by `bench/grpo_step.py` and the tests.

Everything goes through TRL's public surface: `GRPOConfig` options, a `datasets.Dataset` with the columns
TRL reads (`prompt` conversational with an image part, `image` a PIL image, `solution` for our rewards), and
for fixed completions TRL's own `rollout_func` hook. Nothing in TRL is patched here.

- `trl_dataset(samples, processor, convention)`: our samples as TRL's dataset; the prompt text is the one
  our trainer builds (`visual_rft.data.prompts.messages`), so both trainers see the same tokens.
- `grpo_config(out_dir, ...)`: a `GRPOConfig` for one process on the CPU in fp32, one optimizer step per
  generation batch (`steps_per_generation = gradient_accumulation_steps = 1`), no gradient checkpointing.
- `fixed_rollout(completions)`: a `rollout_func` that returns the given completion ids instead of sampling.
- `classification_trainer(model, processor, samples, ...)`: TRL's GRPOTrainer on classification samples with
  our rewards, every completion exactly ``completion_length`` tokens (``min_new_tokens``), and
  `timed_train(trainer, warmup)`: the seconds between consecutive steps' ends (the whole step) after
  ``warmup`` steps. `bench/grpo_step.py` and `bench/gpu_step.py` time TRL with them.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is marked experimental in trl 1.16

from datasets import Dataset  # noqa: E402

from visual_rft import rewards  # noqa: E402
from visual_rft.data.answer import answer_body  # noqa: E402
from visual_rft.data.coords import target_to_model  # noqa: E402
from visual_rft.data.prompts import messages  # noqa: E402
from visual_rft.models.inputs import frames_for, open_images  # noqa: E402


def trl_dataset(samples, processor, convention: str) -> Dataset:
    """Columns `prompt` (our chat messages, an image part then the text), `image` (PIL) and `solution`.

    `solution` is the Visual-RFT solution string of the target in the model's coordinates.
    """
    images = [open_images(s) for s in samples]
    frames = frames_for(images, convention, processor)
    rows = {"prompt": [], "image": [], "solution": []}
    for sample, imgs, frame in zip(samples, images, frames):
        if len(imgs) != 1:
            raise ValueError(f"sample {sample.id}: TRL's `image` column holds one image, got {len(imgs)}")
        rows["prompt"].append(messages(sample, frame))
        rows["image"].append(imgs[0])
        rows["solution"].append(f"<answer>{answer_body(target_to_model(sample.target, frame))}</answer>")
    return Dataset.from_dict(rows)


def grpo_config(
    out_dir,
    *,
    prompts: int,
    group_size: int,
    max_completion_length: int,
    beta: float,
    loss_type: str = "dapo",
    scale_rewards: str = "group",
    temperature: float = 1.0,
    learning_rate: float = 1e-6,
    max_grad_norm: float = 1.0,
    max_steps: int = 1,
    **extra,
):
    """TRL's config for `prompts` prompts x `group_size` completions per optimizer step, fp32 on the CPU."""
    from trl import GRPOConfig

    options = dict(
        output_dir=str(out_dir),
        per_device_train_batch_size=prompts * group_size,
        num_generations=group_size,
        steps_per_generation=1,
        gradient_accumulation_steps=1,
        num_iterations=1,
        max_completion_length=max_completion_length,
        beta=beta,
        loss_type=loss_type,
        scale_rewards=scale_rewards,
        temperature=temperature,
        learning_rate=learning_rate,
        max_grad_norm=max_grad_norm,
        max_steps=max_steps,
        shuffle_dataset=False,
        activation_checkpointing=False,
        use_cpu=True,
        bf16=False,
        fp16=False,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
    )
    options.update(extra)  # any other GRPOConfig option, or one of the above overridden
    return GRPOConfig(**options)


def fixed_rollout(completions: list[list[int]]):
    """A TRL `rollout_func` that tokenizes the prompts as TRL does and returns `completions` (one per row)."""

    def rollout_func(prompts, trainer):
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompt rows but {len(completions)} fixed completions")
        tokenized = trainer.processing_class.apply_chat_template(
            conversation=prompts, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return {
            "prompt_ids": tokenized["input_ids"],
            "completion_ids": [list(c) for c in completions],
            "logprobs": None,
        }

    return rollout_func


def classification_trainer(
    model,
    processor,
    samples,
    out_dir,
    convention: str,
    *,
    prompts,
    group_size,
    completion_length,
    beta,
    steps,
    **extra,
):
    """TRL's GRPOTrainer (DAPO loss, lr 1e-6, clip 1.0, `steps` steps) on classification `samples` with our
    cls + format rewards through TRL's adapter; `extra`: GRPOConfig options (use_cpu=False, bf16=True...)."""
    from trl import GRPOTrainer

    funcs, weights = rewards.trl_rewards(rewards.task_defaults("classification"))
    config = grpo_config(
        out_dir,
        prompts=prompts,
        group_size=group_size,
        max_completion_length=completion_length,
        beta=beta,
        loss_type="dapo",
        learning_rate=1e-6,
        max_grad_norm=1.0,
        max_steps=steps,
        reward_weights=weights,
        generation_kwargs={"min_new_tokens": completion_length},
        **extra,
    )
    dataset = trl_dataset(samples, processor, convention)
    return GRPOTrainer(
        model=model, reward_funcs=funcs, args=config, train_dataset=dataset, processing_class=processor
    )


def timed_train(trainer, warmup: int, each_step=None) -> dict:
    """Train; {"step_s": seconds between consecutive step ends after `warmup` steps, "completion_length":
    TRL's logged mean completion length of those steps}. `each_step()` is called at every step's end."""
    from transformers import PrinterCallback, TrainerCallback

    marks = []

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **kw):
            marks.append(time.perf_counter())

        def on_step_end(self, *a, **kw):
            if each_step is not None:
                each_step()  # before the mark: a CUDA synchronisation goes here
            marks.append(time.perf_counter())

    trainer.add_callback(Clock())
    trainer.remove_callback(PrinterCallback)  # the per-step log dicts stay in log_history
    trainer.train()
    steps = [b - a for a, b in zip(marks, marks[1:])]
    logged = [
        e["completions/mean_length"] for e in trainer.state.log_history if "completions/mean_length" in e
    ]
    return {"step_s": steps[warmup:], "completion_length": logged[warmup:]}
