"""What the binding loss costs a training step: plain SFT (SDPA attention) against SFT plus the binding loss
(eager attention, whose weights it reads), side by side in one process on the same model and batches.

    python bench/binding_step.py --model runs/bind/locate/checkpoint-1500/model \
        --data runs/bind/world/grd_base_train.jsonl runs/bind/world/grd_single_train.jsonl --out runs/binding_step

The locate stage's settings (tower frozen, batch 16, lr 1e-3); a few warm-up steps, then the mean of --steps
steps each. Writes OUT/binding_step.json.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from visual_rft.config import for_run
from visual_rft.data.jsonl import read_samples
from visual_rft.recipes.binding import BindingConfig, BindingSFTTrainer
from visual_rft.recipes.pretrain import default_locate
from visual_rft.report.machine import machine

VARIANTS = {"sft (sdpa)": ("sdpa", 0.0), "sft + binding (eager)": ("eager", 1.0)}


def step_time(model: Path, samples, out: Path, attn: str, weight: float, steps: int, warmup: int, batch: int):
    """(seconds per training step of one variant, the mean over `steps` after `warmup`; the last step's metrics)."""
    cfg = for_run(default_locate(), model, out, seed=0, progress=False)
    cfg = replace(
        cfg, model=replace(cfg.model, attn_implementation=attn), sft=replace(cfg.sft, batch_size=batch)
    )
    trainer = BindingSFTTrainer(cfg, BindingConfig(weight=weight), samples=samples)
    trainer.model.train()
    for s in range(warmup):
        trainer.step(s)
    t0 = time.perf_counter()
    for s in range(warmup, warmup + steps):
        result = trainer.step(s)
    return (time.perf_counter() - t0) / steps, result.metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument(
        "--data", type=Path, nargs="+", required=True, help="world grounding files (meta.objects)"
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    samples = [s for path in args.data for s in read_samples(path)]
    result = {"machine": machine("transformers"), "batch": args.batch, "steps": args.steps}
    result |= {"s_per_step": {}, "last_metrics": {}}
    for name, (attn, weight) in VARIANTS.items():
        result["s_per_step"][name], result["last_metrics"][name] = step_time(
            args.model, samples, args.out / "run", attn, weight, args.steps, args.warmup, args.batch
        )
        print(f"{name}: {result['s_per_step'][name]:.3f} s a step")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "binding_step.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
