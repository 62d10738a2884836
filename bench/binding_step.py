"""What the binding loss costs a training step, and what the locate stage's two savings give back, side by side
in one process on the same model and batches: plain SFT (SDPA attention); SFT plus the binding loss with
eager attention in every layer (how it ran at first); with eager attention in the held layers only
(`HELD_EAGER`, SDPA elsewhere); that with the frozen tower's tokens cached (`model.cache_images`, the
locate stage's default); that with the position loss added (`binding.position_weight=1`, at the input of
--position-layer); and that with four steps in five, or every step, asking the questions alone
(`sft.short_prompts`), four in five also at the full prompt's positions (`sft.short_keeps_positions`).
Several --model folders (a language model of another width or heads, `tower_transplant.py`) are timed in the
same process; --variants picks some of VARIANTS.

    python bench/binding_step.py --model runs/bind/locate/checkpoint-1500/model \
        --data runs/bind/world/grd_base_train.jsonl runs/bind/world/grd_single_train.jsonl --out runs/binding_step
    python bench/binding_step.py --model runs/dfill_s1/base runs/w384/init --variants 4 --data ... --out ...

The locate stage's settings (tower frozen, batch 16, lr 1e-3); a few warm-up steps, then the timed steps run
once untimed (which fills the cache: the steady state of a stage that sees each image 8 times), then the
mean of the same --steps steps each, every (model, variant) taking its turn step by step, so that a machine that
slows part-way (this one's speed moved by a quarter between two runs minutes apart) slows them alike. Writes
OUT/binding_step.json: {model: {"parameters", "s_per_step": {variant: seconds}, "last_metrics": {variant: the
last step's metrics}}}.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from visual_rft.config import for_run
from visual_rft.data.jsonl import read_samples
from visual_rft.models.attention import HELD_EAGER
from visual_rft.models.loading import load_model
from visual_rft.models.tiny import count_parameters
from visual_rft.recipes.binding import BindingConfig, BindingSFTTrainer
from visual_rft.recipes.pretrain import default_locate
from visual_rft.report.machine import machine


class Variant(NamedTuple):
    """One locate-stage setting to time."""

    attention: str
    """The attention implementation."""
    binding: float = 0.0
    """The binding loss's weight."""
    cache: bool = False
    """Cache the frozen tower's tokens."""
    position: float = 0.0
    """The position loss's weight."""
    short: float = 0.0
    """The share of steps with short prompts."""
    keep_positions: bool = False
    """Short prompts at the full prompt's positions."""


FULL = Variant(HELD_EAGER, binding=1.0, cache=True, position=1.0)
"""The locate stage's losses, the tower cached."""
VARIANTS = {
    "sft (sdpa)": Variant("sdpa"),
    "sft + binding (eager)": Variant("eager", binding=1.0),
    "sft + binding (held eager)": Variant(HELD_EAGER, binding=1.0),
    "sft + binding (held eager, tower cached)": Variant(HELD_EAGER, binding=1.0, cache=True),
    "sft + binding + position (held eager, tower cached)": FULL,
    "the same, short prompts 4 steps in 5": FULL._replace(short=0.8),
    "the same, short prompts every step": FULL._replace(short=1.0),
    "the same, short prompts 4 steps in 5 at the full prompt's positions": FULL._replace(
        short=0.8, keep_positions=True
    ),
}


def variant_trainer(
    model: Path, samples, out: Path, variant: Variant, batch: int, position_layer: int = 2
) -> BindingSFTTrainer:
    """A trainer of one variant on the locate stage's settings, writing into `out`."""
    cfg = for_run(default_locate(), model, out, seed=0, progress=False)
    cfg = replace(
        cfg,
        model=replace(cfg.model, attn_implementation=variant.attention, cache_images=variant.cache),
        sft=replace(
            cfg.sft,
            batch_size=batch,
            short_prompts=variant.short,
            short_keeps_positions=variant.keep_positions,
        ),
    )
    binding = BindingConfig(
        weight=variant.binding, position_weight=variant.position, position_layer=position_layer
    )
    trainer = BindingSFTTrainer(cfg, binding, samples=samples)
    trainer.model.train()
    return trainer


def interleaved_step_times(trainers: dict, steps: int, warmup: int) -> tuple[dict, dict]:
    """({name: seconds per step, the mean over `steps` after `warmup`}, {name: the last step's metrics}). The
    timed steps run once untimed first (their images are then cached), then step by step in turn across the
    trainers, so that a machine that slows down part-way slows every variant alike."""
    for trainer in trainers.values():
        for s in range(warmup + steps):
            trainer.step(s)
    seconds = dict.fromkeys(trainers, 0.0)
    metrics = {}
    for s in range(warmup, warmup + steps):
        for name, trainer in trainers.items():
            t0 = time.perf_counter()
            metrics[name] = trainer.step(s).metrics
            seconds[name] += time.perf_counter() - t0
    return {name: t / steps for name, t in seconds.items()}, metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, nargs="+", required=True, help="model folders, timed side by side")
    ap.add_argument(
        "--variants",
        type=int,
        nargs="+",
        choices=range(len(VARIANTS)),
        help="which of VARIANTS (0-based, in order; default all)",
    )
    ap.add_argument(
        "--data", type=Path, nargs="+", required=True, help="world grounding files (meta.objects)"
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument(
        "--position-layer", type=int, default=2, help="binding.position_layer of the last variant"
    )
    args = ap.parse_args()
    samples = [s for path in args.data for s in read_samples(path)]
    names = list(VARIANTS)
    chosen = [names[i] for i in args.variants] if args.variants else names
    result = {"machine": machine("transformers"), "batch": args.batch, "steps": args.steps, "models": {}}
    for model in args.model:
        counts = count_parameters(load_model(model, device="cpu", dtype="fp32"))  # a named error if no model
        result["models"][str(model)] = {"parameters": counts, "s_per_step": {}, "last_metrics": {}}
    trainers = {
        (str(model), name): variant_trainer(
            model, samples, args.out / "run" / str(i), VARIANTS[name], args.batch, args.position_layer
        )
        for i, (model, name) in enumerate((m, n) for n in chosen for m in args.model)
    }
    seconds, metrics = interleaved_step_times(trainers, args.steps, args.warmup)
    for (model, name), t in seconds.items():
        result["models"][model]["s_per_step"][name] = t
        result["models"][model]["last_metrics"][name] = metrics[(model, name)]
        print(f"{model}, {name}: {t:.3f} s a step")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "binding_step.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
