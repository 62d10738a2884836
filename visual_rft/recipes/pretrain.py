"""Recipe: pre-train the base model, a tiny Qwen2.5-VL, by SFT on the synthetic world's BASE tasks.

The base model plays the part Qwen2-VL-2B plays in the paper: decent on what it was trained on (base
classes, base detection categories, simple grounding), imperfect on the few-shot ones (new shades, novel
colour-shape categories, grounding that needs reasoning). Its answers use the think/answer format with a
fixed think text. The result ships in `visual_rft/assets/base-5m/` so that the demo starts at once.

    vrft world pretrain out_dir=runs/pretrain           # ~30 min on a 2-core CPU (see README)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from visual_rft.config import OptimConfig, RunConfig, SFTConfig, SFTTrainConfig
from visual_rft.data.jsonl import read_samples
from visual_rft.models.tiny import write_tiny
from visual_rft.recipes.base_model import SHIPPED_BASE, THINK
from visual_rft.sft.trainer import SFTTrainer
from visual_rft.world import build_suite


def default_sft() -> SFTTrainConfig:
    """1,500 steps of 16 at lr 1e-3 (cosine after 50 warm-up steps), answers with the fixed think text."""
    return SFTTrainConfig(
        optim=OptimConfig(lr=1e-3, warmup_steps=50, schedule="cosine"),
        sft=SFTConfig(batch_size=16, think=THINK),
        run=RunConfig(steps=1500, save_every=500, tensorboard=False),
    )


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
    sft: SFTTrainConfig = field(default_factory=default_sft)
    """The SFT run (`vrft sft`'s config); model.path, run.output_dir, run.seed and run.progress are set here."""
    ship: bool = False
    """Also copy the result to the package's shipped location (visual_rft/assets/base-5m)."""
    progress: bool = True
    """Progress bar."""


def run_pretrain(cfg: PretrainConfig) -> Path:
    """Build the world's base tasks, train, and return the base model folder."""
    out = Path(cfg.out_dir)
    paths = build_suite(out / "world", seed=cfg.seed, n_pretrain=cfg.n_per_task, shots=(1,))
    samples = [
        s for key in ("cls_base_train", "det_base_train", "grd_base_train") for s in read_samples(paths[key])
    ]
    init = write_tiny(out / "init", "qwen2_5_vl", cfg.size, seed=cfg.seed)
    sft = replace(
        cfg.sft,
        model=replace(cfg.sft.model, path=str(init)),
        run=replace(cfg.sft.run, output_dir=str(out / "sft"), seed=cfg.seed, progress=cfg.progress),
    )
    SFTTrainer(sft, samples=samples).fit()
    base = out / "base"
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(out / "sft" / f"checkpoint-{sft.run.steps}" / "model", base)
    if cfg.ship:
        shutil.rmtree(SHIPPED_BASE, ignore_errors=True)
        shutil.copytree(base, SHIPPED_BASE)
    return base
