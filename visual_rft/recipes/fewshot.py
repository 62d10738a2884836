"""Recipe: the paper's comparison on the synthetic world. Base vs SFT vs RFT on the same k examples.

    world   = build_suite(...)                          few-shot pools (nested k-shot files) and test sets
    sft     = SFTTrainer(k-shot examples)               the supervised baseline
    rft     = GRPOTrainer(k-shot examples)              Visual-RFT
    table   = evaluate_models(base, sft, rft on test)   the paper's metrics, side by side
    report  = reward curve PNG + test images with boxes drawn

Both trainers start from the same base model and see the same examples; the compute each gets is stated
with the results (optimizer steps, and sequences through forward + backward).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from visual_rft.checks import check_at_least, config_section
from visual_rft.config import (
    EvalOptions,
    GRPOConfig,
    OptimConfig,
    RunConfig,
    SFTConfig,
    SFTTrainConfig,
    TrainConfig,
    for_run,
)
from visual_rft.data.answer import class_answer, normalize_class
from visual_rft.data.jsonl import read_samples
from visual_rft.eval.completions import read_completions
from visual_rft.eval.runner import check_eval_options, evaluate_models
from visual_rft.recipes.base_model import THINK, default_base_model
from visual_rft.report.plots import draw_prediction, predicted_boxes, reward_curve
from visual_rft.rl.trainer import GRPOTrainer, check_grpo_config, check_rewards
from visual_rft.sft.trainer import SFTTrainer, check_sft_config
from visual_rft.world import SHOTS, WorldConfig, build_suite, world_settings

MODELS = ("base", "sft", "rft")
"""The three models of a few-shot comparison, in table order."""

FILES = {  # task -> (few-shot prefix in the world folder, its test file)
    "detection": ("det_novel", "det_novel_test"),
    "classification": ("cls_fewshot", "cls_fewshot_test"),
    "grounding": ("grd_reason", "grd_reason_test"),
    "open_vocabulary": ("det_ovd", "ovd_test"),  # train on base categories, test on novel and base
}
ANSWERS = {
    "detection": "detection",
    "classification": "classification",
    "grounding": "grounding",
    "open_vocabulary": "detection",
}
"""task -> the task its samples carry (the answers its rewards read)."""

MAX_COMPLETION = 160
"""Longest completion sampled in training and generated in evaluation. A detection answer takes about 30
tokens a box (one token a digit): the world's 4-box answers need up to 128."""

QUIET = RunConfig(tensorboard=False, save_every=0)
"""What every recipe run logs: metrics.jsonl and the final checkpoint, no TensorBoard, no intermediate saves."""


def default_sft() -> SFTTrainConfig:
    """The SFT baseline's settings on k examples."""
    return SFTTrainConfig(
        optim=OptimConfig(lr=2e-4), sft=SFTConfig(batch_size=8, think=THINK), run=replace(QUIET, steps=60)
    )


def default_rft() -> TrainConfig:
    """Visual-RFT's settings on k examples (rewards: the task's defaults, as in the paper)."""
    return TrainConfig(
        optim=OptimConfig(lr=5e-5),
        grpo=GRPOConfig(group_size=8, prompts_per_step=2, beta=0.04, max_completion_length=MAX_COMPLETION),
        run=replace(QUIET, steps=60, sample_every=10),
    )


def default_eval() -> EvalOptions:
    return EvalOptions(batch_size=16, max_new_tokens=MAX_COMPLETION, limit=100)


@dataclass
class FewShotConfig:
    task: str = "detection"
    """detection (novel categories), classification (few-shot shades), grounding (reasoning kinds) or
    open_vocabulary (train on base categories, evaluate on novel and base ones)."""
    shots: int = 2
    """Examples per class / category / kind: 1, 2, 4, 8 or 16."""
    seed: int = 0
    """Seed of the training runs (the world and its splits are fixed by world_seed)."""
    world_seed: int = 0
    """Seed of the synthetic world."""
    world: WorldConfig = field(default_factory=WorldConfig)
    """How the world's scenes are drawn; the base model's pre-training world's settings (e.g. world.digit_fills=true
    for a base pre-trained with `vision.world.digit_fills=true`). An existing world folder must match them."""
    base_model: str = ""
    """The model both methods start from; empty: the shipped base checkpoint."""
    world_dir: str = ""
    """Where the world lives (built there when missing); empty: OUT/world."""
    out_dir: str = "runs/fewshot"
    """Run folder: world/, sft/, rft/, eval/, report PNGs, results.json."""
    sft: SFTTrainConfig = field(default_factory=default_sft)
    """The SFT baseline (`vrft sft`'s config); model.path, data, run.output_dir and run.seed are set per run."""
    rft: TrainConfig = field(default_factory=default_rft)
    """Visual-RFT (`vrft train`'s config); model.path, data, run.output_dir and run.seed are set per run."""
    eval: EvalOptions = field(default_factory=default_eval)
    """The evaluation of base, SFT and RFT (`vrft eval`'s options; limit: test queries evaluated)."""
    eval_base: bool = True
    """Also evaluate the base model (a benchmark that runs many seeds evaluates it once instead)."""
    progress: bool = True
    """Progress bars (of SFT, RFT and the evaluation alike)."""


def ensure_world(world_dir: Path, seed: int, cfg: WorldConfig | None = None) -> Path:
    """The world's few-shot pools and test sets (no pre-training sets), built once; a world already there
    must have been drawn with the same seed and settings (worlds built before world.json kept them pass)."""
    index = world_dir / "world.json"
    if not index.exists():
        build_suite(world_dir, seed=seed, n_pretrain=0, cfg=cfg)
        return world_dir
    built = json.loads(index.read_text())
    if "config" not in built:  # built before world.json kept its seed and settings: nothing to check
        return world_dir
    have = {"seed": built["seed"], **built["config"]}
    wanted = {"seed": seed, **world_settings(cfg)}
    for key, value in wanted.items():
        if have.get(key) != value:
            raise ValueError(
                f"{index}: the world there was drawn with {key}={have.get(key)!r}, this run asks for "
                f"{value!r}; use another folder or the settings it was built with"
            )
    return world_dir


def held_out_file(world: Path, task: str) -> Path:
    """The task's test file in `world`, there: a world folder without it (its own files, or one built by an
    older version) is refused, naming the file, before anything trains or is evaluated."""
    return world_file(world / f"{FILES[task][1]}.jsonl", task)


def task_files(world: Path, task: str, shots: int) -> tuple[Path, Path]:
    """The task's k-shot training file and its test file in `world`, both there (see `held_out_file`)."""
    return world_file(world / f"{FILES[task][0]}_{shots}shot.jsonl", task), held_out_file(world, task)


def world_file(path: Path, task: str) -> Path:
    """`path`, a file of the task's world folder; refused, naming it, when it is not there."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the world folder has no such file ({task}); build the world in a new folder "
            "(`vrft world build`, or leave world_dir empty)"
        )
    return path


def check_methods(cfg: FewShotConfig) -> None:
    """Refuse what the trainers and the evaluation would refuse, and shot counts the world has no file for,
    before the world is drawn, the base evaluated or SFT run (the bench calls it for every task)."""
    if cfg.task not in FILES:
        raise ValueError(f"task must be one of {sorted(FILES)}, got {cfg.task!r}")
    if cfg.shots not in SHOTS:
        raise ValueError(f"shots: the world has k-shot files for k in {list(SHOTS)}, not {cfg.shots}")
    with config_section("sft"):
        check_sft_config(cfg.sft)
        check_at_least({"run.steps": cfg.sft.run.steps}, 1)  # its last checkpoint is evaluated
    with config_section("rft"):
        check_grpo_config(cfg.rft)
        check_at_least({"run.steps": cfg.rft.run.steps}, 1)
        check_rewards(cfg.rft.grpo.rewards, {ANSWERS[cfg.task]})
    with config_section("eval"):
        check_eval_options(cfg.eval)


def run_fewshot(cfg: FewShotConfig) -> dict:
    """Run base / SFT / RFT on one task at one shot count; returns (and writes) the results."""
    check_methods(cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(cfg.base_model) if cfg.base_model else default_base_model()
    world = ensure_world(Path(cfg.world_dir) if cfg.world_dir else out / "world", cfg.world_seed, cfg.world)
    train_file, test_set = task_files(world, cfg.task, cfg.shots)
    train = read_samples(train_file)
    sft_cfg = for_run(cfg.sft, base, out / "sft", cfg.seed, cfg.progress)
    rft_cfg = for_run(cfg.rft, base, out / "rft", cfg.seed, cfg.progress)
    timings = {}

    t0 = time.perf_counter()
    SFTTrainer(sft_cfg, samples=train).fit()
    timings["sft_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    GRPOTrainer(rft_cfg, samples=train).fit()
    timings["rft_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    models = {
        **({"base": base} if cfg.eval_base else {}),
        "sft": out / "sft" / f"checkpoint-{sft_cfg.run.steps}" / "model",
        "rft": out / "rft" / f"checkpoint-{rft_cfg.run.steps}" / "model",
    }
    options = replace(cfg.eval, progress=cfg.progress)
    metrics = evaluate_models(models, test_set, out / "eval", options)
    timings["eval_s"] = time.perf_counter() - t0

    results = {
        "config": asdict(cfg),
        "base_model": str(base),
        "budget": budget(cfg, len(train)),
        "timings": timings,
        "metrics": metrics,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    write_pictures(out, cfg.task)
    return results


def budget(cfg: FewShotConfig, examples: int) -> dict:
    """The compute each method gets: optimizer steps, and sequences through forward + backward."""
    sft, rft = cfg.sft, cfg.rft
    return {
        "examples": examples,
        "sft": {"steps": sft.run.steps, "sequences": sft.run.steps * sft.sft.batch_size, "lr": sft.optim.lr},
        "rft": {
            "steps": rft.run.steps,
            "sequences": rft.run.steps * rft.grpo.prompts_per_step * rft.grpo.group_size,
            "sampled": True,
            "lr": rft.optim.lr,
        },
    }


def headline(task: str) -> str:
    return {
        "detection": "detection.mAP",
        "classification": "classification.accuracy",
        "grounding": "grounding.giou",
        "open_vocabulary": "detection.mAP_novel",
    }[task]


def metric(metrics: dict, dotted: str) -> float:
    """A metric by its dotted name; a one-task evaluation keeps it at the top ("mAP", not "detection.mAP").
    A metric that could not be computed (None: e.g. no base categories in the test set) reads as 0."""
    task, name = dotted.split(".", 1)  # "grounding.acc@0.5": the name may hold dots
    value = metrics[task][name] if task in metrics else metrics[name]
    return float(value or 0.0)


def write_pictures(out: Path, task: str, n: int = 4) -> list[Path]:
    """reward_curve.png, and the first n test images with RFT's and the base's predictions."""
    paths = [reward_curve(out / "rft" / "metrics.jsonl", out / "reward_curve.png")]
    if task == "classification":
        return paths
    task = "detection" if task == "open_vocabulary" else task
    for name in ("base", "rft"):
        if not (out / "eval" / name).is_dir():
            continue
        records = [r for r in read_completions(out / "eval" / name / "completions.jsonl") if r.asked][:n]
        for i, r in enumerate(records):
            boxes = predicted_boxes(r.completion, task, r.frame)
            paths.append(draw_prediction(r.sample.image, r.sample.target, boxes, out / f"test{i}_{name}.png"))
    return paths


def answers_table(eval_dir: Path, n: int = 6) -> str:
    """Classification: the first `n` test images: the true class and each model's answer (a tick where it is right)."""
    said = {
        m: {
            r.sample.id: class_answer(r.completion or "")
            for r in read_completions(eval_dir / m / "completions.jsonl")
        }
        for m in MODELS
    }
    rows = ["| test image | truth | " + " | ".join(MODELS) + " |", "|---|---|" + "---|" * len(MODELS)]
    for r in [r for r in read_completions(eval_dir / "base" / "completions.jsonl") if r.asked][:n]:
        truth = normalize_class(r.sample.target.label)
        marks = []
        for m in MODELS:
            answer = said[m].get(r.sample.id) or ""
            marks.append(f"{answer or '(none)'} {'✓' if normalize_class(answer) == truth else '✗'}")
        rows.append(f"| {Path(r.sample.images[0]).name} | {truth} | " + " | ".join(marks) + " |")
    return "\n".join(rows) + "\n"
