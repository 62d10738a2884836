"""What both trainers do the same way: load the data and the model, set up the optimizer, resume, loop.

A trainer subclasses `Trainer` and writes `step(step) -> StepResult`; `fit()` runs the steps with logging,
samples and checkpoints. Nothing else is hidden here.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

import numpy as np
import torch

from visual_rft.checks import check_at_least, check_rate, config_section
from visual_rft.config import DataConfig, save_config
from visual_rft.data.jsonl import DataError, check_file, check_image, read_samples
from visual_rft.data.types import Sample
from visual_rft.models.loading import (
    check_model_folder,
    coord_convention,
    load_model,
    load_processor,
    model_family,
    resolve_device,
    resolve_dtype,
)
from visual_rft.models.lora import prepare_for_training, trainable_parameters, vision_modules
from visual_rft.train.checkpoint import latest_checkpoint, load_trainer_state, save_checkpoint
from visual_rft.train.data_order import rank_indices
from visual_rft.train.distributed import (
    PolicyPass,
    barrier,
    check_resume_world,
    full_states,
    is_sharded,
    join_world,
    load_full_optimizer_state,
    reduce_metrics,
    resolve_strategy,
    wrap_for_training,
)
from visual_rft.train.log import RunLogger
from visual_rft.train.optim import SCHEDULES, build_optimizer, build_scheduler
from visual_rft.train.precision import Precision, check_master_weights, policy_dtype, resolve_precision


def load_training_samples(data: DataConfig, samples: list[Sample] | None = None) -> list[Sample]:
    """The training samples (from `data.train`, or `samples` as given), checked BEFORE any model loads:
    every bad record (file:line: field, as `vrft data check` reports them, images opened) in one error."""
    if samples is None:
        if not data.train:
            raise ValueError("data.train: no training file given (data.train=PATH.jsonl)")
        _, errors = check_file(data.train)
        if errors:
            what = f"{len(errors)} bad record(s), nothing was trained; fix them first (`vrft data check {data.train}`)"
            raise DataError(_listed(what, [str(e) for e in errors]))
        samples = read_samples(data.train)
    else:
        bad = []
        for i, sample in enumerate(samples):
            try:
                check_image(sample)
            except DataError as e:
                bad.append(f"sample {i} ({sample.id}): field '{e.field}': {e.reason}")
        if bad:
            raise DataError(_listed(f"{len(bad)} bad sample(s), nothing was trained", bad))
    if data.max_samples:
        samples = samples[: data.max_samples]
    if not samples:
        raise ValueError(f"{data.train or 'data'}: no training samples")
    return samples


def _listed(what: str, lines: list[str], most: int = 20) -> str:
    """`what:` and the first `most` lines under it (then '...')."""
    return f"{what}:\n" + "\n".join(lines[:most]) + ("\n..." if len(lines) > most else "")


def data_record(data: DataConfig, samples: list[Sample]) -> dict:
    """What a run trained on, written to data.json: the file, the count, a fingerprint of the ids in order."""
    ids = "\n".join(s.id for s in samples)
    return {
        "train": data.train or None,
        "n_samples": len(samples),
        "ids_sha256": sha256(ids.encode()).hexdigest(),
    }


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def device_memory(device: torch.device) -> dict:
    """On a CUDA device: the step's peak allocated and reserved memory (GB), then the peak is reset;
    nothing elsewhere (a CPU has no allocator statistics worth logging)."""
    if device.type != "cuda":
        return {}
    gb = 2**30
    out = {
        "memory/peak_allocated_gb": torch.cuda.max_memory_allocated(device) / gb,
        "memory/reserved_gb": torch.cuda.memory_reserved(device) / gb,
    }
    torch.cuda.reset_peak_memory_stats(device)
    return out


@dataclass
class StepResult:
    metrics: dict
    """Scalars for metrics.jsonl and TensorBoard."""
    samples: list[dict] = field(default_factory=list)
    """Example completions for samples.jsonl."""
    postfix: dict = field(default_factory=dict)
    """The few numbers shown on the progress bar."""


def check_train_config(cfg) -> None:
    """The sections every trainer's config has (`TrainConfig`, `SFTTrainConfig`: run, model, optim, data, dist),
    by name and range, before anything loads (`visual_rft.checks`); what needs the device (bf16 on this GPU) is
    checked once it is known."""
    run, m, o = cfg.run, cfg.model, cfg.optim
    cpu = torch.device("cpu")  # the names alone: a GPU without bf16 is refused once it is known
    resolve_precision(run.precision, cpu)
    resolve_strategy(cfg.dist.strategy, run.precision)
    policy_dtype(m.dtype, m.lora.enabled)  # a full fine-tune keeps fp32 master weights
    with config_section("model.dtype"):
        resolve_dtype(m.dtype, cpu)
    if o.schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {sorted(SCHEDULES)}, got {o.schedule!r}")
    check_rate(o.lr, "optim.lr")  # 0: the loss without updates (tests measure that)
    if o.vision_lr is not None and not (o.vision_lr >= 0 and math.isfinite(o.vision_lr)):
        raise ValueError(f"optim.vision_lr must be >= 0 (or unset: optim.lr), got {o.vision_lr}")
    if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
        raise ValueError(f"optim.betas must be two numbers in [0, 1), got {o.betas}")
    check_at_least(
        {
            "run.steps": run.steps,
            "optim.warmup_steps": o.warmup_steps,
            "data.max_samples": cfg.data.max_samples,
            "model.logprob_chunk_size": m.logprob_chunk_size,  # 0: no chunking
            "run.save_every": run.save_every,  # 0: at the end only
            "run.keep_last": run.keep_last,  # 0: every checkpoint
            "run.log_every": run.log_every,  # 0: no metrics
            "run.sample_every": run.sample_every,  # 0: no samples
        },
        0,
    )


class Trainer:
    """Holds data, processor, model, optimizer and schedule; resumes from the run folder's last checkpoint.
    Under several processes (`accelerate launch`) each rank holds one; rank 0 alone writes the run folder."""

    name = "train"

    check_config = staticmethod(check_train_config)
    """The trainer's config check, run first of all (a subclass's adds its own sections)."""

    def __init__(self, cfg, samples: list[Sample] | None = None, resume: bool = False):
        self.cfg = cfg
        self.check_config(cfg)  # before anything loads
        run, m = cfg.run, cfg.model
        self.strategy = resolve_strategy(cfg.dist.strategy, run.precision)
        self.world = join_world(m.device, self.strategy)
        device = str(self.world.device) if self.world.device is not None else m.device
        self.precision = Precision(run.precision, resolve_device(device))  # bad values fail here
        train_dtype = policy_dtype(m.dtype, m.lora.enabled)
        seed_everything(run.seed)
        try:  # before the data's images are opened
            check_model_folder(m.path)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"model.path: {error}") from error
        self.samples = load_training_samples(cfg.data, samples)
        self.check_samples(self.samples)
        self.run_dir = Path(run.output_dir)
        ckpt = latest_checkpoint(self.run_dir) if resume else None
        check_resume_world(ckpt, self.world)
        self.processor = load_processor(m.path, m.max_pixels)
        self.convention = coord_convention(model_family(m.path))
        lora = m.lora.enabled
        model = load_model(
            ckpt / "model" if (ckpt and not lora) else m.path,
            dtype=train_dtype,
            device=device,
            attn_implementation=m.attn_implementation,
        )
        self.model = prepare_for_training(model, m, adapter=ckpt / "model" if (ckpt and lora) else None)
        self.device = next(self.model.parameters()).device
        # the pass that trains: through DDP when there are several processes, sharded under fsdp2 (before
        # the optimizer is built: sharding replaces the parameters), the same pass otherwise
        self.policy_pass = self.wrap(
            PolicyPass(self.model, chunk_size=m.logprob_chunk_size, **self.pass_options())
        )
        self.params = trainable_parameters(self.model)
        check_master_weights(self.params)
        self.optimizer = build_optimizer(self.params, cfg.optim, vision_modules(self.model).parameters())
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, run.steps * self.updates_per_step())
        self.start_step = 0
        if ckpt:
            load = None
            if is_sharded(self.policy_pass):
                load = lambda state: load_full_optimizer_state(self.optimizer, state)  # noqa: E731
            state = load_trainer_state(ckpt, self.optimizer, self.scheduler, self.precision, load)
            self.start_step = state["step"]
        tok = self.processor.tokenizer
        self.pad_id = tok.pad_token_id
        self.eos_ids = sorted({tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id} - {None})

    def check_samples(self, samples: list[Sample]) -> None:
        """A subclass's check of its config against the training samples, before the model loads."""

    def updates_per_step(self) -> int:
        """Optimizer updates per training step (the schedule's unit is one update)."""
        return 1

    def wrap(self, pass_: PolicyPass):
        """A pass as this run's strategy runs it (DDP, FSDP2, or as it is)."""
        return wrap_for_training(pass_, self.world, self.strategy, self.precision.compute_dtype)

    def pass_options(self) -> dict:
        """completion_logprobs' keywords of the pass that trains, beyond the chunk size."""
        return {}

    def rank_batch(self, step: int, per_rank: int) -> list[Sample]:
        """This rank's samples of step `step` (the whole batch with one process; see data_order)."""
        cfg, w = self.cfg, self.world
        idx = rank_indices(step, per_rank, len(self.samples), cfg.run.seed, cfg.data.shuffle, w.rank, w.size)
        return [self.samples[i] for i in idx]

    def step(self, step: int) -> StepResult:
        raise NotImplementedError

    def save(self, step: int) -> Path | None:
        """Rank 0 writes the checkpoint (DDP: every rank holds the same weights and optimizer state; FSDP2:
        the whole states are gathered from the shards first, by every rank)."""
        path, states = None, (None, None)
        if is_sharded(self.policy_pass):
            states = full_states(self.model, self.optimizer)
        if self.world.main:
            path = save_checkpoint(
                self.run_dir,
                step,
                self.model,
                self.processor,
                self.optimizer,
                self.scheduler,
                extra={"world_size": self.world.size, "strategy": self.strategy},
                keep_last=self.cfg.run.keep_last,
                precision=self.precision,
                model_state=states[0],
                optimizer_state=states[1],
            )
        barrier(self.world)
        return path

    def fit(self, stop_after: int | None = None) -> Path:
        """Train from the start step to run.steps (or stop after `stop_after` steps). Returns the run folder."""
        run = self.cfg.run
        logger = self.open_run() if self.world.main else None
        self.model.train()
        for done, step in enumerate(range(self.start_step, run.steps), start=1):
            result = self.step(step)
            result.metrics.update(device_memory(self.device))
            n = step + 1
            if run.log_every and n % run.log_every == 0:
                metrics = reduce_metrics(result.metrics, self.world)  # every rank takes part
                if logger:
                    logger.log(n, metrics, result.postfix)
            if logger and run.sample_every and n % run.sample_every == 0 and result.samples:
                logger.samples(n, result.samples)  # rank 0's samples
            if (run.save_every and n % run.save_every == 0) or n == run.steps:
                self.save(n)
            if logger:
                logger.advance()
            if stop_after is not None and done >= stop_after:
                break
        if logger:
            logger.close()
        return self.run_dir

    def open_run(self) -> RunLogger:
        """The run folder (config.yaml, data.json) and its logger: rank 0's alone."""
        run = self.cfg.run
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.run_dir / "config.yaml")
        (self.run_dir / "data.json").write_text(
            json.dumps(data_record(self.cfg.data, self.samples), indent=1)
        )
        return RunLogger(
            self.run_dir,
            total_steps=run.steps,
            start_step=self.start_step,
            tensorboard=run.tensorboard,
            progress=run.progress,
            desc=self.name,
        )
