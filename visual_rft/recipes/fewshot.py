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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from visual_rft.config import SFTTrainConfig, TrainConfig, load_config
from visual_rft.data.jsonl import read_samples

FILES = {  # task -> (few-shot prefix in the world folder, its test file)
    "detection": ("det_novel", "det_novel_test"),
    "classification": ("cls_fewshot", "cls_fewshot_test"),
    "grounding": ("grd_reason", "grd_reason_test"),
    "open_vocabulary": ("det_ovd", "ovd_test"),  # train on base categories, test on novel and base
}
THINK = "Let me look at the image."
"""The fixed reasoning text the base model was pre-trained to write (and SFT keeps writing)."""


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
    base_model: str = ""
    """The model both methods start from; empty: the shipped base checkpoint."""
    world_dir: str = ""
    """Where the world lives (built there when missing); empty: OUT/world."""
    out_dir: str = "runs/fewshot"
    """Run folder: world/, sft/, rft/, eval/, report PNGs, results.json."""
    sft_steps: int = 60
    """SFT optimizer steps."""
    sft_batch_size: int = 8
    """SFT samples per step."""
    sft_lr: float = 2e-4
    """SFT learning rate."""
    rft_steps: int = 60
    """GRPO optimizer steps."""
    group_size: int = 8
    """GRPO group size G."""
    prompts_per_step: int = 2
    """GRPO prompts per step."""
    rft_lr: float = 5e-5
    """GRPO learning rate."""
    beta: float = 0.04
    """GRPO KL weight."""
    rft_rewards: dict[str, float] = field(default_factory=dict)
    """GRPO rewards, name -> weight (see `visual_rft.rewards.registry`); empty: the task's defaults, as in
    the paper. E.g. {cls: 1, cls_words: 1, format: 1} adds partial credit for classification."""
    max_completion_length: int = 160
    """Longest completion sampled in training and generated in evaluation. A detection answer takes
    about 30 tokens a box (one token a digit): the world's 4-box answers need up to 128."""
    test_limit: int = 100
    """Test samples evaluated (0: the whole test file)."""
    eval_base: bool = True
    """Also evaluate the base model (a benchmark that runs many seeds evaluates it once instead)."""
    progress: bool = True
    """Progress bars."""


def default_base_model() -> Path:
    """The base checkpoint shipped with the package (see `vrft world pretrain`)."""
    from visual_rft.recipes.pretrain import SHIPPED_BASE

    if not (SHIPPED_BASE / "config.json").exists():
        raise FileNotFoundError(
            f"{SHIPPED_BASE}: the shipped base model is missing; build it with `vrft world pretrain`"
        )
    return SHIPPED_BASE


def ensure_world(world_dir: Path, seed: int) -> Path:
    """The world's few-shot pools and test sets (no pre-training sets), built once."""
    from visual_rft.world import build_suite

    if not (world_dir / "world.json").exists():
        build_suite(world_dir, seed=seed, n_pretrain=0)
    return world_dir


def run_fewshot(cfg: FewShotConfig) -> dict:
    """Run base / SFT / RFT on one task at one shot count; returns (and writes) the results."""
    from visual_rft.eval.runner import EvalOptions, evaluate_models
    from visual_rft.rl.trainer import GRPOTrainer
    from visual_rft.sft.trainer import SFTTrainer

    if cfg.task not in FILES:
        raise ValueError(f"task must be one of {sorted(FILES)}, got {cfg.task!r}")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = Path(cfg.base_model) if cfg.base_model else default_base_model()
    world = ensure_world(Path(cfg.world_dir) if cfg.world_dir else out / "world", cfg.world_seed)
    prefix, test_name = FILES[cfg.task]
    train = read_samples(world / f"{prefix}_{cfg.shots}shot.jsonl")
    common = [
        f"model.path={base}",
        f"run.seed={cfg.seed}",
        "run.tensorboard=false",
        "run.save_every=0",
        f"run.progress={str(cfg.progress).lower()}",
    ]
    timings = {}

    t0 = time.perf_counter()
    sft_cfg = load_config(
        SFTTrainConfig,
        None,
        [
            *common,
            f"run.output_dir={out}/sft",
            f"run.steps={cfg.sft_steps}",
            f"sft.batch_size={cfg.sft_batch_size}",
            f"optim.lr={cfg.sft_lr}",
            f"sft.think={THINK}",
        ],
    )
    SFTTrainer(sft_cfg, samples=train).fit()
    timings["sft_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rft_cfg = load_config(
        TrainConfig,
        None,
        [
            *common,
            f"run.output_dir={out}/rft",
            f"run.steps={cfg.rft_steps}",
            f"grpo.group_size={cfg.group_size}",
            f"grpo.prompts_per_step={cfg.prompts_per_step}",
            f"optim.lr={cfg.rft_lr}",
            f"grpo.beta={cfg.beta}",
            f"grpo.rewards={json.dumps(cfg.rft_rewards)}",
            f"grpo.max_completion_length={cfg.max_completion_length}",
            "run.sample_every=10",
        ],
    )
    GRPOTrainer(rft_cfg, samples=train).fit()
    timings["rft_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    models = {
        **({"base": base} if cfg.eval_base else {}),
        "sft": out / "sft" / f"checkpoint-{cfg.sft_steps}" / "model",
        "rft": out / "rft" / f"checkpoint-{cfg.rft_steps}" / "model",
    }
    options = EvalOptions(
        batch_size=16,
        max_new_tokens=cfg.max_completion_length,
        limit=cfg.test_limit or None,
        progress=cfg.progress,
    )
    metrics = evaluate_models(models, world / f"{test_name}.jsonl", out / "eval", options)
    timings["eval_s"] = time.perf_counter() - t0

    budget = {
        "examples": len(train),
        "sft": {"steps": cfg.sft_steps, "sequences": cfg.sft_steps * cfg.sft_batch_size},
        "rft": {
            "steps": cfg.rft_steps,
            "sequences": cfg.rft_steps * cfg.prompts_per_step * cfg.group_size,
            "sampled": True,
        },
    }
    results = {
        "config": asdict(cfg),
        "base_model": str(base),
        "budget": budget,
        "timings": timings,
        "metrics": metrics,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    write_pictures(out, cfg.task)
    return results


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
    from visual_rft.eval.completions import read_completions
    from visual_rft.report.plots import draw_prediction, predicted_boxes, reward_curve

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
