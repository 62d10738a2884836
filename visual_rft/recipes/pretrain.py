"""Recipe: pre-train the base model, a tiny Qwen2.5-VL, in stages as real VLMs are built.

    init    = write_tiny(size)                              random weights, the real architecture
    vision  = train_vision(init)                            stage 1: the tower learns to see, on dense exact
                                                            targets from the world's masks (throw-away heads)
    locate  = SFT(vision, one-object grounding, tower frozen) the language model learns to read where a lone
                                                            object is (its box, from the RoPE of its tokens)
    locate2 = SFT(locate, ...), locate3, ...                `locate_more`: the locate stage continued in
                                                            phases, each its own steps, lr, sample kinds
                                                            and short prompts
    align   = SFT(locate, base tasks, vision tower frozen)   stage 2: the language model learns to read it
    joint   = SFT(align, base tasks, vision at a lower lr)  stage 3: everything, the vision side gently
    base    = joint's last checkpoint                        shipped in visual_rft/assets/base-5m (ship=true)

The base model plays the part Qwen2-VL-2B plays in the paper: good at what it was trained on (base classes,
base detection categories, simple grounding), imperfect on the few-shot ones (new shade-colour-shape
compositions, novel colour-shape categories, grounding that needs reasoning). Its answers use the
think/answer format with a fixed think text. Every stage resumes where it stopped (stage 1 from its
checkpoint, the SFT stages from their last checkpoint); a stage with 0 steps is skipped. With
`binding.weight` > 0 the stages of `binding_stages` add the binding loss (`recipes/binding.py`: the language
model's heads held on the object the question names while the answer writes its box; RESULTS.md section 14).

    vrft world pretrain out_dir=runs/pretrain ship=true
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from visual_rft.checks import check_share, config_section
from visual_rft.config import ModelConfig, OptimConfig, RunConfig, SFTConfig, SFTTrainConfig, for_run
from visual_rft.models.attention import HELD_EAGER
from visual_rft.models.text_distance import check_text_distance, folder_text_distance, write_text_distance
from visual_rft.models.tiny import SIZES, write_tiny
from visual_rft.recipes.base_model import SHIPPED_BASE, THINK
from visual_rft.recipes.binding import BindingConfig, BindingSFTTrainer, check_binding
from visual_rft.recipes.pretrain_samples import (
    DERIVED_KINDS,
    SAMPLE_KINDS,
    locate_samples,
    mix_samples,
    stage_parts,
)
from visual_rft.recipes.vision_tower import VisionStageConfig, check_vision_stage, train_vision
from visual_rft.sft.trainer import check_sft_config
from visual_rft.train.checkpoint import latest_checkpoint
from visual_rft.world import build_suite


def default_locate() -> SFTTrainConfig:
    """Before the mix: the tower frozen, the language model at lr 1e-3 on grounding (`locate_kinds`). From a
    lone object the box comes after a plateau of some 750 steps (RESULTS.md section 11); in scenes of several
    objects only with the binding loss, which teaches the heads to pick the named object (section 14: 10% of
    the `name` boxes after 1,500 steps, 3% without it after 2,000). The frozen tower's tokens are cached:
    each image is encoded once, not at each of its 8 passes."""
    return SFTTrainConfig(
        model=ModelConfig(freeze_vision=True, cache_images=True),
        optim=OptimConfig(lr=1e-3, warmup_steps=30, schedule="cosine"),
        sft=SFTConfig(batch_size=16, think=THINK, aggregation="sequence"),
        run=RunConfig(steps=1500, save_every=500, tensorboard=False),
    )


def default_align() -> SFTTrainConfig:
    """Stage 2: the tower frozen (its tokens cached: each image is encoded once); the language model at lr 1e-3
    (cosine), each answer weighted alike."""
    return SFTTrainConfig(
        model=ModelConfig(freeze_vision=True, cache_images=True),
        optim=OptimConfig(lr=1e-3, warmup_steps=30, schedule="cosine"),
        sft=SFTConfig(batch_size=16, think=THINK, aggregation="sequence"),
        run=RunConfig(steps=300, save_every=100, tensorboard=False),
    )


def default_joint() -> SFTTrainConfig:
    """Stage 3: everything trains, the vision tower and merger at a tenth of the language model's rate."""
    return SFTTrainConfig(
        optim=OptimConfig(lr=5e-4, vision_lr=5e-5, warmup_steps=30, schedule="cosine"),
        sft=SFTConfig(batch_size=16, think=THINK, aggregation="sequence"),
        run=RunConfig(steps=400, save_every=200, tensorboard=False),
    )


@dataclass
class LocatePhase:
    """A continuation of the locate stage: a run of its own (warm-up, then cosine to 0) from the previous
    phase's last model, with the locate stage's settings (batch, frozen tower, losses, data order) but these."""

    steps: int = 1000
    """Optimizer steps (0: the phase is skipped)."""
    lr: float = 5e-4
    """Peak learning rate."""
    kinds: list[str] = field(default_factory=list)
    """What it trains on, as `locate_kinds` ([]: the locate stage's kinds)."""
    short_prompts: float | None = None
    """Its `sft.short_prompts`, the share of steps that ask the question alone (None: the locate stage's). Cut
    them once the pick has formed: after 3,200 full steps the boxes stay the default's in two sample orders;
    from the first step one order of two loses 40% of its held-out boxes (RESULTS.md sections 37-38); 4,000
    short steps keep the trained kinds' boxes, but in one order a kind never trained (`extreme`) writes <think>
    where <answer> belongs on a fifth of its answers (section 39)."""
    aggregation: str | None = None
    """Its `sft.aggregation` (None: the locate stage's). "token" for a detection phase: under "sequence" the
    token that decides a box or "No Objects" weighs 1/49 of a present answer and 1/20 of an absent one, and the
    base answers "No Objects" to what it knows is there (RESULTS.md section 43); the threshold then follows the
    phase's mix (section 44)."""


@dataclass
class PretrainConfig:
    out_dir: str = "runs/pretrain"
    """Run folder: world/, init/, vision/, locate/ (locate2/, ... with `locate_more`), align/, joint/ (each
    stage's run) and base/ (the final model)."""
    size: str = "5m"
    """Tiny model size: 1m, 5m or 20m."""
    seed: int = 0
    """Seed of the world, the initial weights, the scenes of stage 1 and the data order."""
    order_seed: int | None = None
    """Seed of the SFT stages' data order alone (None: `seed`): the same world and weights in another order,
    to tell a change's effect from one run's course."""
    n_per_task: int = 2000
    """Pre-training samples per base task (classification, detection, grounding, one-object grounding):
    the locate stage trains on the last, stages 2 and 3 on all four."""
    vision: VisionStageConfig = field(default_factory=lambda: VisionStageConfig(steps=1000))
    """Stage 1, the vision tower alone (steps=0: skipped, the tower starts from random weights)."""
    locate: SFTTrainConfig = field(default_factory=default_locate)
    """Grounding, between stage 1 and stage 2 (`vrft sft`'s config; the same fields are set here)."""
    locate_kinds: list[str] = field(default_factory=lambda: ["single", "name"])
    """What the locate stage trains on: "single" (one-object scenes), any of GROUNDING_BASE_KINDS (grounding
    in scenes of several objects), "detection" (the base detection samples: every instance of a category,
    in reading order, among other objects), "detection_single" and "detection_name" (detection's question on
    the scenes of the one-object and `name` samples: present, one box, or not; `grounded_detection`), "presence"
    (on each base grounding scene, detection's question for a base category it shows, every instance's box,
    and for one it does not; `presence_pairs`) and "classification" (the base classes, so that the language
    model keeps reading colour and shape while it learns position): every pre-training sample of those kinds
    (`recipes/pretrain_samples.py`)."""
    locate_more: list[LocatePhase] = field(default_factory=list)
    """Phases after the locate stage, run in order into locate2/, locate3/, ... (a curriculum: RESULTS.md
    section 18 continued a 3,000-step stage at lr 5e-4, then taught `extreme` at 3e-4). They add the binding
    and position losses when the locate stage does."""
    locate_classification: float = 1.0
    """With "classification" in `locate_kinds`: the share of the base classification samples the locate stage
    takes, the file's first ones (1: all `n_per_task`; 0.15 of 2,000 beside the 3,000 default grounding samples
    makes 9% of the stage)."""
    mix_kinds: list[str] = field(default_factory=lambda: [k for k in SAMPLE_KINDS if k not in DERIVED_KINDS])
    """What align and joint train on, of the kinds `locate_kinds` names (default: every sample of
    `build_suite`'s pre-training files, each base task's `n_per_task`; not the DERIVED_KINDS' questions)."""
    align: SFTTrainConfig = field(default_factory=default_align)
    """Stage 2 (`vrft sft`'s config); model.path, run.output_dir, run.seed and run.progress are set here."""
    joint: SFTTrainConfig = field(default_factory=default_joint)
    """Stage 3 (`vrft sft`'s config); the same fields are set here."""
    binding: BindingConfig = field(default_factory=lambda: BindingConfig(weight=1.0))
    """The binding loss (`recipes/binding.py`: chosen heads' attention held on the asked object's cells while
    the answer writes its box) in the stages of `binding_stages`; weight 0: off. Weight 1 in align and joint
    too costs classification (37% against 95%), 0.1 there changes little (RESULTS.md section 14)."""
    binding_stages: list[str] = field(default_factory=lambda: ["locate"])
    """The SFT stages (locate, align, joint) that add the binding loss when its weight is above 0."""
    position_stages: list[str] = field(default_factory=lambda: ["locate"])
    """The SFT stages that add the position loss (`recipes/position.py`) when `binding.position_weight` is
    above 0: each image token's cell and its object's box linearly readable entering `binding.position_layer`
    (RESULTS.md section 16)."""
    text_distance: int | None = None
    """Every answer this many RoPE positions after the image (`models/text_distance.py`), written into init/'s
    config and so kept by every stage's model and the base; None: where each prompt's length puts it (world
    classification 74, grounding 96-107, detection 143). An init/ already there must hold the same."""
    ship: bool = False
    """Also copy the result to the package's shipped location (visual_rft/assets/base-5m)."""
    progress: bool = True
    """Progress bars."""


def check_pretrain(cfg: PretrainConfig) -> None:
    """Refuse a config the recipe cannot run, naming the field: sample kinds, phases, shares, the size, and each
    SFT stage's config and binding as the stage will run them (against init/'s model when it is there)."""
    kinds_of = {  # field: (its sample kinds, the steps of the stages that train on them)
        "locate_kinds": (cfg.locate_kinds, [cfg.locate.run.steps]),
        "mix_kinds": (cfg.mix_kinds, [cfg.align.run.steps, cfg.joint.run.steps]),
        **{
            f"locate_more[{i}].kinds": (p.kinds or cfg.locate_kinds, [p.steps])
            for i, p in enumerate(cfg.locate_more)
        },
        "binding.kinds": (cfg.binding.kinds, [0]),  # may be empty: every kind
    }
    for name, (kinds, steps) in kinds_of.items():
        unknown = set(kinds) - set(SAMPLE_KINDS)
        if unknown:
            raise ValueError(f"{name}: {sorted(unknown)} are not sample kinds ({', '.join(SAMPLE_KINDS)})")
        if not kinds and any(steps):
            raise ValueError(f"{name} is empty: its stages have steps to train and nothing to train on")
    for i, phase in enumerate(cfg.locate_more):
        if phase.steps < 0 or not phase.lr > 0:
            raise ValueError(f"locate_more[{i}]: steps {phase.steps} and lr {phase.lr} must be >= 0 and > 0")
        if phase.short_prompts is not None:
            check_share(phase.short_prompts, f"locate_more[{i}].short_prompts")
    check_share(cfg.locate_classification, "locate_classification")
    for name, stages in (("binding_stages", cfg.binding_stages), ("position_stages", cfg.position_stages)):
        unknown = set(stages) - {"locate", "align", "joint"}
        if unknown:
            raise ValueError(f"{name}: {sorted(unknown)} are not SFT stages (locate, align, joint)")
    if cfg.size not in SIZES:
        raise ValueError(f"size: {cfg.size!r} is not one of {sorted(SIZES)}")
    check_text_distance(cfg.text_distance, "text_distance")
    init = Path(cfg.out_dir) / "init"
    held = folder_text_distance(init) if (init / "config.json").exists() else cfg.text_distance
    if held != cfg.text_distance:
        raise ValueError(f"text_distance: {cfg.text_distance} but {init}/config.json holds {held}")
    if cfg.vision.steps:
        with config_section("vision"):
            check_vision_stage(cfg.vision)
    dims = language_dims(Path(cfg.out_dir) / "init", cfg.size)
    for _, section, name, stage in stage_configs(cfg):
        with config_section(section):
            check_sft_config(stage)
            if stage.run.steps:
                check_binding(stage_binding(cfg, name), *dims)


def run_pretrain(cfg: PretrainConfig) -> Path:
    """Run the stages that have not run yet and return the base model folder."""
    check_pretrain(cfg)  # before the world is drawn
    out = Path(cfg.out_dir)
    paths = build_suite(
        out / "world", seed=cfg.seed, n_pretrain=cfg.n_per_task, shots=(1,), cfg=cfg.vision.world
    )
    parts = stage_parts(paths, cfg.seed)
    samples = mix_samples(parts, cfg.mix_kinds)
    located = locate_samples(parts, cfg.locate_kinds, cfg.locate_classification)
    model = out / "init"
    if not (model / "config.json").exists():
        write_tiny(model, "qwen2_5_vl", cfg.size, seed=cfg.seed)
        write_text_distance(model, cfg.text_distance)
    if cfg.vision.steps:
        model = train_vision(model, out / "vision", replace(cfg.vision, seed=cfg.seed, progress=cfg.progress))
    phases = [
        locate_samples(parts, p.kinds or cfg.locate_kinds, cfg.locate_classification) for p in cfg.locate_more
    ]
    for (folder, _, name, stage), data in zip(stage_configs(cfg), [located, *phases, samples, samples]):
        if stage.run.steps:
            model = sft_stage(stage, model, out / folder, cfg, data, stage_binding(cfg, name))
    base = out / "base"
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(model, base)
    if cfg.ship:
        shutil.rmtree(SHIPPED_BASE, ignore_errors=True)
        shutil.copytree(base, SHIPPED_BASE)
    return base


def stage_configs(cfg: PretrainConfig) -> list[tuple[str, str, str, SFTTrainConfig]]:
    """(run folder, its section on a command line, the stage its losses follow, config) of each SFT stage in
    order: locate, each of `locate_more` (locate2/, locate3/, ...), align, joint."""
    phases = [
        (f"locate{i + 2}", f"locate_more[{i}]", "locate", locate_phase(cfg.locate, p))
        for i, p in enumerate(cfg.locate_more)
    ]
    return [
        ("locate", "locate", "locate", cfg.locate),
        *phases,
        ("align", "align", "align", cfg.align),
        ("joint", "joint", "joint", cfg.joint),
    ]


def stage_binding(cfg: PretrainConfig, name: str) -> BindingConfig:
    """The binding config of a stage: its losses on in the stages of `binding_stages` / `position_stages`."""
    held, placed = name in cfg.binding_stages, name in cfg.position_stages
    return replace(
        cfg.binding,
        weight=cfg.binding.weight if held else 0.0,
        pick_weight=cfg.binding.pick_weight if held else 0.0,
        presence_weight=cfg.binding.presence_weight if held else 0.0,
        continue_weight=cfg.binding.continue_weight if held else 0.0,
        position_weight=cfg.binding.position_weight if placed else 0.0,
    )


def language_dims(init: Path, size: str) -> tuple[int, int]:
    """(layers, heads a layer) of the language model the stages will train: init/'s when it is there (an init
    written by hand may differ from its size's), else the size's."""
    config = init / "config.json"
    if not config.exists():
        return SIZES[size].layers, SIZES[size].heads
    text = json.loads(config.read_text())["text_config"]
    return text["num_hidden_layers"], text["num_attention_heads"]


def locate_phase(locate: SFTTrainConfig, phase: LocatePhase) -> SFTTrainConfig:
    """The locate stage's config with a phase's steps, peak lr, short prompts and aggregation."""
    short = locate.sft.short_prompts if phase.short_prompts is None else phase.short_prompts
    aggregation = phase.aggregation or locate.sft.aggregation
    return replace(
        locate,
        optim=replace(locate.optim, lr=phase.lr),
        run=replace(locate.run, steps=phase.steps),
        sft=replace(locate.sft, short_prompts=short, aggregation=aggregation),
    )


def sft_stage(
    stage: SFTTrainConfig, model: Path, run_dir: Path, cfg: PretrainConfig, samples, binding: BindingConfig
) -> Path:
    """One SFT stage from `model` into `run_dir` (resumed from its last checkpoint), with the binding loss
    when its weight is above 0 (eager attention in the layers whose weights it reads); returns the stage's
    last model."""
    order = cfg.seed if cfg.order_seed is None else cfg.order_seed
    stage = for_run(stage, model, run_dir, order, cfg.progress)
    if binding.reads_attention:
        stage = replace(stage, model=replace(stage.model, attn_implementation=HELD_EAGER))
    final = run_dir / f"checkpoint-{stage.run.steps}" / "model"
    if not final.is_dir():  # a finished stage is not run again
        resume = latest_checkpoint(run_dir) is not None
        BindingSFTTrainer(stage, binding, samples=samples, resume=resume).fit()
    return final
