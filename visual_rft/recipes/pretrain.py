"""Recipe: pre-train the base model, a tiny Qwen2.5-VL, by SFT on the synthetic world's BASE tasks.

The base model plays the part Qwen2-VL-2B plays in the paper: decent on what it was trained on (base
classes, base detection categories, simple grounding), imperfect on the few-shot ones (new shades, novel
colour-shape categories, grounding that needs reasoning). Its answers use the think/answer format with a
fixed think text. The result ships in `visual_rft/assets/base-5m/` so that the demo starts at once.

    vrft world pretrain out_dir=runs/pretrain           # ~30 min on a 2-core CPU (see README)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import visual_rft
from visual_rft.config import SFTTrainConfig, load_config

SHIPPED_BASE = Path(visual_rft.__file__).parent / "assets" / "base-5m"
"""Where the shipped base checkpoint lives inside the package."""


@dataclass
class PretrainConfig:
    out_dir: str = "runs/pretrain"
    """Run folder: world/, init/ (the random model), sft/ (checkpoints), base/ (the final model)."""
    size: str = "5m"
    """Tiny model size: 1m, 5m or 20m."""
    seed: int = 0
    """Seed of the world, the initial weights and the data order."""
    n_per_task: int = 2000
    """Pre-training samples per base task (classification, detection, grounding)."""
    steps: int = 1500
    """SFT optimizer steps."""
    batch_size: int = 16
    """SFT samples per step."""
    lr: float = 1e-3
    """Peak learning rate (cosine decay after 50 warm-up steps)."""
    ship: bool = False
    """Also copy the result to the package's shipped location (visual_rft/assets/base-5m)."""
    progress: bool = True
    """Progress bar."""


def run_pretrain(cfg: PretrainConfig) -> Path:
    """Build the world's base tasks, train, and return the base model folder."""
    from visual_rft.data.jsonl import read_samples
    from visual_rft.models.tiny import write_tiny
    from visual_rft.recipes.fewshot import THINK
    from visual_rft.sft.trainer import SFTTrainer
    from visual_rft.world import build_suite

    out = Path(cfg.out_dir)
    paths = build_suite(out / "world", seed=cfg.seed, n_pretrain=cfg.n_per_task, shots=(1,))
    samples = [
        s for key in ("cls_base_train", "det_base_train", "grd_base_train") for s in read_samples(paths[key])
    ]
    init = write_tiny(out / "init", "qwen2_5_vl", cfg.size, seed=cfg.seed)
    sft = load_config(
        SFTTrainConfig,
        None,
        [
            f"model.path={init}",
            f"run.output_dir={out}/sft",
            f"run.steps={cfg.steps}",
            f"run.seed={cfg.seed}",
            f"sft.batch_size={cfg.batch_size}",
            f"optim.lr={cfg.lr}",
            "optim.warmup_steps=50",
            "optim.schedule=cosine",
            f"sft.think={THINK}",
            "run.save_every=500",
            "run.tensorboard=false",
            f"run.progress={str(cfg.progress).lower()}",
        ],
    )
    SFTTrainer(sft, samples=samples).fit()
    base = out / "base"
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(out / "sft" / f"checkpoint-{cfg.steps}" / "model", base)
    if cfg.ship:
        shutil.rmtree(SHIPPED_BASE, ignore_errors=True)
        shutil.copytree(base, SHIPPED_BASE)
    return base
