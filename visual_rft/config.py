"""Dataclass configs, loaded from YAML with dotted command-line overrides (`grpo.group_size=4`).

Every field has a docstring. Unknown keys and values of the wrong type are errors that name the key and
the file, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class LoraConfig:
    enabled: bool = False
    """Train LoRA adapters (peft) instead of all weights."""
    r: int = 16
    """LoRA rank."""
    alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: float = 0.05
    """Dropout on the LoRA branch (SFT only: GRPO switches every dropout off, so that its rollout, old,
    reference and policy passes compute the same function)."""
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Module names (of the language model) that get adapters."""


@dataclass
class ModelConfig:
    path: str = ""
    """Local model folder (Hugging Face format). Nothing is downloaded."""
    dtype: str = "auto"
    """How weights load for inference: auto (bf16 on a GPU that supports it, fp32 on CPU), fp32, bf16 or
    fp16. Training uses it only for weights that never change (the reference copy, a LoRA run's frozen
    base); the weights it trains are fp32 (a full fine-tune refuses bf16/fp16), see run.precision."""
    device: str = "auto"
    """auto (cuda when available), cpu, cuda, cuda:1, ..."""
    attn_implementation: str = "auto"
    """Attention kernel: auto (flash_attention_2 on a GPU with the flash-attn package, else sdpa), sdpa,
    eager, flash_attention_2."""
    freeze_vision: bool = False
    """Keep the vision tower (and its merger) frozen."""
    cache_images: bool = False
    """Keep each training image's vision-tower output in memory after its first encoding, so an image seen
    again skips the tower (same values: SFT only; needs a frozen vision side, checked before training).
    Costs tokens x hidden x 4 bytes an image (a 7B model: about 14 MB for a 1,024-token image)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    logprob_chunk_size: int = 512
    """Completion tokens whose vocabulary logits are computed at once when log-probabilities are taken
    (each chunk checkpointed: 512 x 151,936 fp32 logits are 0.3 GB); 0: the full [rows, tokens, vocab]
    logits at once (about 10 GB in fp32 for 16 x 1,024 tokens of a Qwen model)."""
    max_pixels: int = 0
    """Largest image area in pixels: larger images are resized down to it (keeping their aspect, sides
    multiples of the patch x merge size) before the tower sees them; 0: the model folder's own setting
    (its preprocessor_config.json). The paper trains Qwen2-VL at 401408 (= 896 x 448)."""
    share_prefix: bool = True
    """Log-probabilities of a group's G completions run the prompt once and only the completion tokens per
    row, on the prompt's key/value cache (same values and gradients); false: the prompt again for every
    row, kept for bench/grpo_step.py's before/after and the equality tests."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA settings."""


@dataclass
class DataConfig:
    train: str = ""
    """Training JSONL (visual-rft format)."""
    max_samples: int = 0
    """Use only the first N samples (0: all)."""
    shuffle: bool = True
    """Shuffle each epoch (seeded by run.seed)."""


@dataclass
class OptimConfig:
    lr: float = 1e-5
    """Peak learning rate (AdamW)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW betas."""
    warmup_steps: int = 0
    """Linear warm-up from 0 to lr over this many optimizer updates (GRPO makes grpo.mu per step)."""
    schedule: str = "constant"
    """After warm-up: constant, linear (decay to 0) or cosine (decay to 0), over all the run's optimizer
    updates (run.steps, times grpo.mu for GRPO)."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (0: no clipping)."""
    vision_lr: float | None = None
    """Peak learning rate of the vision tower and its merger (a parameter group of their own, same warm-up
    and decay); None: the same as lr. Joint fine-tuning of a pre-trained tower wants it lower than lr."""


@dataclass
class GRPOConfig:
    group_size: int = 8
    """G: completions sampled per prompt."""
    prompts_per_step: int = 2
    """B: prompts per optimizer step (each gives a group of G completions)."""
    temperature: float = 1.0
    """Sampling temperature of the rollout (> 0); the loss's log-probabilities divide the logits by it too."""
    top_p: float = 1.0
    """Nucleus sampling mass of the rollout (1: off); it shapes sampling only, not the log-probabilities
    (as TRL)."""
    max_completion_length: int = 128
    """Most tokens a completion may have."""
    beta: float = 0.04
    """KL penalty weight towards the reference model (0: no reference pass at all)."""
    eps_low: float = 0.2
    """Clip range below 1 for the probability ratio."""
    eps_high: float = 0.2
    """Clip range above 1 for the probability ratio (DAPO's clip-higher when > eps_low)."""
    aggregation: str = "token"
    """How token losses are averaged: token (DAPO), sequence (GRPO) or constant (Dr. GRPO)."""
    scale_advantages: bool = True
    """Divide advantages by the group std (False: Dr. GRPO, mean-centred only)."""
    mu: int = 1
    """Policy updates (optimizer steps) per rollout; > 1 keeps the rollout-time log-probs as the old
    policy. Metrics are means over the mu updates."""
    dynamic_sampling: bool = False
    """Drop groups whose rewards are all equal (they carry no advantage)."""
    micro_batch_size: int = 0
    """Completions per forward/backward chunk (0: all at once); a multiple of group_size."""
    compiled_decode: bool = False
    """CUDA only: the rollout decodes on a static key/value cache with a torch.compile'd step (CUDA graphs
    take the per-token Python overhead out of small batches; the first steps compile). Same tokens as the
    simple loop, which runs on every other device."""
    rewards: dict[str, float] = field(default_factory=dict)
    """Reward name (or package.module:function) -> weight; empty: the task's defaults (weight 1 each)."""


@dataclass
class SFTConfig:
    batch_size: int = 8
    """Samples per optimizer step."""
    micro_batch_size: int = 0
    """Samples per forward/backward chunk (0: the whole batch)."""
    think: str = ""
    """Text put in <think></think> before the answer ('': no think part); `{problem}`: the sample's question."""
    grounding_think: str = ""
    """The think of grounding samples ('': `think`'s); `{region}`: the box's place (`data.answer.REGION_SLOT`)."""
    detection_think: str = ""
    """The think of detection samples ('': `think`'s); `{region}`: its boxes' places in order (RESULTS.md section 47)."""
    aggregation: str = "token"
    """How answer-token losses are averaged: token (every token of the batch alike: long detection answers
    outweigh short class names) or sequence (each answer's mean, then the mean over answers)."""
    short_prompts: float = 0.0
    """Share of steps, spread evenly, whose prompts are the questions alone, without the coordinate and format
    instructions (`data.prompts.build_prompt`'s `short`): such a step is shorter and the answer is taught all the
    same (a cheaper pre-training step, RESULTS.md section 37). 0: every prompt in full, as evaluation asks."""
    short_keeps_positions: bool = False
    """In a short step, give the template's last tokens and the answer the RoPE positions they have after the
    full prompt (the instructions' positions skipped, not their tokens): the answer as far from the image as
    evaluation puts it."""
    position_jitter: int = 0
    """Move each sample's text after the image, answer included, a random 0..N RoPE positions on (0: none)."""


@dataclass
class RunConfig:
    output_dir: str = "runs/train"
    """Run folder: checkpoints, metrics.jsonl, samples.jsonl, TensorBoard events."""
    steps: int = 100
    """Optimizer steps to train."""
    seed: int = 0
    """Seed of everything random (data order, sampling, initialisation of adapters)."""
    precision: str = "auto"
    """How training computes: fp32, bf16-mixed (autocast to bf16, fp32 master weights and optimizer
    state) or fp16-mixed (the same with a gradient scaler); auto: bf16-mixed on a CUDA device with bf16,
    fp32 otherwise. Checkpoints are saved in fp32 either way."""
    log_every: int = 1
    """Write metrics every N steps (0: never)."""
    save_every: int = 50
    """Checkpoint every N steps (and at the end); 0: only at the end."""
    keep_last: int = 2
    """Checkpoints to keep (0: every one)."""
    sample_every: int = 10
    """Write sample completions with their rewards every N steps (0: never)."""
    tensorboard: bool = True
    """Also log to TensorBoard."""
    progress: bool = True
    """Show a progress bar with ETA."""


@dataclass
class DistributedConfig:
    strategy: str = "auto"
    """How the processes of `accelerate launch --num_processes N` share the work: auto (fsdp2 when the
    accelerate launch config says `distributed_type: FSDP`, else ddp), ddp (each rank holds the
    whole model, gradients averaged by torch's DistributedDataParallel; one process: no wrapper at all) or
    fsdp2 (FSDP2's fully_shard: parameters, gradients and optimizer state sharded over the ranks, per
    decoder layer and vision block; the reference too; for models that do not fit one device; runs with
    one process as well). Either way each rank takes its own grpo.prompts_per_step (sft.batch_size): the
    global batch is N times that."""


@dataclass
class TrainConfig:
    """`vrft train`: GRPO reinforcement fine-tuning."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    run: RunConfig = field(default_factory=RunConfig)
    dist: DistributedConfig = field(default_factory=DistributedConfig)


@dataclass
class SFTTrainConfig:
    """`vrft sft`: the supervised baseline on the same data."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4))
    sft: SFTConfig = field(default_factory=SFTConfig)
    run: RunConfig = field(default_factory=RunConfig)
    dist: DistributedConfig = field(default_factory=DistributedConfig)


@dataclass
class EvalOptions:
    """`vrft eval`: how to run an evaluation (key=value on its command line; the `eval` section of recipes)."""

    batch_size: int = 8
    """Prompts generated together."""
    max_new_tokens: int = 256
    """The most tokens generated per sample."""
    min_new_tokens: int = 0
    """The fewest tokens generated per sample (for benchmarks)."""
    temperature: float = 0.0
    """0: greedy decoding (the default); above 0: sampling at this temperature."""
    top_p: float = 1.0
    """Nucleus sampling mass, when sampling."""
    seed: int = 0
    """Random seed (sampling only)."""
    dtype: str = "auto"
    """Model dtype: auto (bf16 on a GPU that has it, else fp32), fp32, bf16, fp16."""
    device: str = "auto"
    """cuda, cpu, cuda:1, ... or auto."""
    categories: str = "file"
    """Which detection queries to ask: file, present, all, or a path to an existence map (module docstring)."""
    sort: bool = True
    """Batch prompts of similar length together (less padding; the result is the same)."""
    progress: bool = True
    """Show a progress bar with ETA."""
    limit: int | None = None
    """Evaluate only the first `limit` samples of the file (quick checks)."""
    max_pixels: int = 0
    """Largest image area in pixels (as model.max_pixels); 0: each model folder's own setting (a checkpoint
    saves the one it was trained with)."""


class ConfigError(ValueError):
    pass


def _coerce(value, hint, key: str, where: str):
    """Check (and lightly convert) one value against its type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            if arm is type(None) and value is None:
                return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{key}' must be a mapping, got {value!r}")
        return _build(hint, value, f"{key}.", where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where}: '{key}' must be one of {list(typing.get_args(hint))}, got {value!r}")
        return value
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: '{key}' must be {hint.__name__}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: '{key}' must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_coerce(v, item, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{key}' must be a mapping, got {value!r}")
        _, item = typing.get_args(hint)
        return {str(k): _coerce(v, item, f"{key}.{k}", where) for k, v in value.items()}
    return value


def _build(cls, raw: dict, prefix: str = "", where: str = "config", base=None):
    """`base` (default: `cls()`) with the values of `raw` set; a nested section starts from `base`'s own
    value of it, so a recipe's defaults for a trainer section survive an override of one of its keys."""
    base = cls() if base is None else base
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known: {', '.join(names)}"
            raise ConfigError(f"{where}: unknown key '{prefix}{key}'{hint}")
        current = getattr(base, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            kwargs[key] = _build(type(current), value, f"{prefix}{key}.", where, current)
        else:
            kwargs[key] = _coerce(value, hints[key], f"{prefix}{key}", where)
    return dataclasses.replace(base, **kwargs)


def _set_dotted(tree: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{k}' is not a section")
    node[keys[-1]] = value


def _hint_at(cls, dotted: str):
    """The type hint of a dotted key of dataclass `cls` (None when the key is unknown)."""
    hint = cls
    for key in dotted.split("."):
        if typing.get_origin(hint) is dict:
            hint = typing.get_args(hint)[1]
        elif dataclasses.is_dataclass(hint):
            hint = typing.get_type_hints(hint).get(key)
        else:
            return None
    return hint


def _override_value(cls, dotted: str, text: str):
    """The value of `key=text`: YAML, except that a text field takes the text as written (a think text
    holding ": " or "#" stays text); quote it ('...' or "...") to have YAML read it."""
    hint = _hint_at(cls, dotted)
    quoted = len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""
    if hint is str and not quoted:
        return text
    return yaml.safe_load(text) if text.strip() else ""


def load_config(cls, path: str | Path | None = None, overrides: list[str] = ()):
    """Build a config of dataclass `cls` from a YAML file (optional) and `key.sub=value` overrides."""
    raw: dict = {}
    where = str(path) if path else "config"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        key, text = item.split("=", 1)
        _set_dotted(raw, key.strip(), _override_value(cls, key.strip(), text))
    where = f"{where} (with overrides)" if overrides else where
    return _build(cls, raw, "", where)


def for_run(trainer_cfg, model_path, output_dir, seed: int, progress: bool):
    """A `TrainConfig` / `SFTTrainConfig` with one run's model folder, run folder, seed and progress bar
    (what a recipe sets per run; everything else stays as configured)."""
    return dataclasses.replace(
        trainer_cfg,
        model=dataclasses.replace(trainer_cfg.model, path=str(model_path)),
        run=dataclasses.replace(trainer_cfg.run, output_dir=str(output_dir), seed=seed, progress=progress),
    )


def to_dict(config) -> dict:
    """The config as plain data (for saving next to a run)."""
    return dataclasses.asdict(config)


def save_config(config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
