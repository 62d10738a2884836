"""How fast does a tiny Qwen-VL learn to see? A probe of the base model's limits, from random weights.

Trains a fresh 5m model by SFT on one base task of the world (--task grounding: "the red triangle", "the
leftmost digit"; --task classification: the 51 base classes) for --steps steps, then evaluates greedy
answers on held-out queries (gIoU and acc@0.5, or accuracy). Variants:

- --rope-theta / --mrope: the language model's multimodal RoPE. The tiny models are built with theta 10 and
  sections [2, 7, 7] (`visual_rft.models.tiny.ROPE_THETA`): both spatial sections turn 0.1-0.75 rad per
  position. With Qwen's theta 1e4 and [4, 6, 6] (its 16/24/24 split, scaled: `--rope-theta 10000 --mrope
  4,6,6`, the tiny models' default until RESULTS.md section 11), the width section gets <= 0.003 rad per
  position, so attention can hardly tell image columns apart.
- --hint: the answer's box is written in the question ('It is at 143 66 167 101.'): can the language
  model copy coordinates from text into its answer? If not, reading them from the image is not the problem.
- --freeze-vision: the tower and merger frozen (as in stage 2 of `vrft world pretrain`); the LM trains.
- --gradient: a world whose background carries its own pixel coordinates (red channel + (x - 112) / 4,
  blue + (y - 112) / 4), so every patch embedding sees where it is: the easiest possible position cue.
- --vision-from MODEL: the fresh model's vision tower and merger are copied from MODEL (e.g. the shipped
  base, whose tower reads colour, shade and shape), so a RoPE variant of the language model can be trained
  on a tower that sees; with --freeze-vision only the new language model learns.
- --oracle-cells: an oracle, not a model: each merged image token gets its own cell added (a one-hot
  column and a one-hot row, 5 each, in the first 32 channels), as a perfect position-aware tower would
  give; can the language model then read where an object is? (Patches the vision tower's forward in-process.)
- --one-object: grounding scenes of a single shape, asked by name ("Find the purple circle"; the world's
  "single" kind): nothing to tell apart, only where it is to read.
- --eval-every N: checkpoints every N steps, each evaluated (a learning curve in probe.json's "curve").

    python bench/localisation_probe.py --name v0 --steps 300
    python bench/localisation_probe.py --name v1 --steps 300 --rope-theta 10000 --mrope 4,6,6
    python bench/localisation_probe.py --name g0 --steps 300 --gradient
    python bench/localisation_probe.py --name fg --steps 300 --gradient --freeze-vision
    python bench/localisation_probe.py --name fh --steps 300 --hint --freeze-vision
    python bench/localisation_probe.py --name c0 --steps 200 --task classification
    python bench/localisation_probe.py --name c1 --steps 200 --task classification --lr 3e-3
    python bench/localisation_probe.py --name c2 --steps 200 --task classification --family qwen2_vl
    python bench/localisation_probe.py --name one_t10 --out runs/lp_long --steps 1500 --eval-every 750 \
        --freeze-vision --vision-from MODEL --one-object

Results (CPU, 1 thread each, two at a time) are in RESULTS.md's notes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

import visual_rft.world as world
from visual_rft.config import EvalOptions, ModelConfig, OptimConfig, RunConfig, SFTConfig, SFTTrainConfig
from visual_rft.data.jsonl import read_samples
from visual_rft.eval.runner import evaluate_models
from visual_rft.models.tiny import build_tiny
from visual_rft.recipes.base_model import THINK
from visual_rft.sft.trainer import SFTTrainer
from visual_rft.world import scene, tasks


def gradient_draw(draw):
    """`world.draw` with the background tinted by absolute pixel position (objects keep their colour)."""

    def draw_with_gradient(scene):
        im = np.asarray(draw(scene)).astype(np.int16)  # [H, W, 3]
        h, w = scene.height, scene.width
        background = np.all(im == np.array(scene.background)[None, None], axis=-1)  # [H, W]
        gx = np.broadcast_to((np.arange(w)[None, :] - 112) // 4, (h, w))  # [H, W]
        gy = np.broadcast_to((np.arange(h)[:, None] - 112) // 4, (h, w))  # [H, W]
        im[..., 0] = np.where(background, im[..., 0] + gx, im[..., 0])
        im[..., 2] = np.where(background, im[..., 2] + gy, im[..., 2])
        return Image.fromarray(np.clip(im, 0, 255).astype(np.uint8), "RGB")

    return draw_with_gradient


TASKS = {"grounding": "grd_base", "classification": "cls_base"}


def with_hint(row: dict) -> dict:
    """The grounding question with its answer's box appended in words ('It is at x1 y1 x2 y2.')."""
    return {**row, "problem": f"{row['problem']} It is at {' '.join(map(str, row['target']['box']))}."}


def build_world(
    out: Path,
    task: str,
    n_train: int,
    n_test: int,
    gradient: bool,
    hint: bool = False,
    one_object: bool = False,
) -> Path:
    """The base task's training and test files (the same streams as `build_suite`'s)."""
    if gradient:  # every module that calls draw() gets the gradient version
        scene.draw = tasks.draw = gradient_draw(scene.draw)
    names = world.GROUNDING_BASE_KINDS if task == "grounding" else world.CLASSIFICATION_BASE
    if one_object:
        names = ("single",)
    prefix = TASKS[task]
    for name, n in ((f"{prefix}_train", n_train), (f"{prefix}_test", n_test)):
        path = world.build(task, out, n, seed=0, categories=names, name=name)
        if hint:
            rows = [with_hint(json.loads(line)) for line in path.read_text().splitlines()]
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", type=Path, default=Path("runs/localisation_probe"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--task", choices=sorted(TASKS), default="grounding")
    ap.add_argument("--family", choices=["qwen2_5_vl", "qwen2_vl"], default="qwen2_5_vl")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--rope-theta", type=float, default=0.0, help="0: the tiny model's default (10)")
    ap.add_argument("--mrope", default="", help="e.g. 4,6,6 (empty: the default 2,7,7)")
    ap.add_argument("--gradient", action="store_true")
    ap.add_argument("--hint", action="store_true", help="grounding: the box is in the question, as text")
    ap.add_argument("--freeze-vision", action="store_true", help="train the LM only (tower, merger frozen)")
    ap.add_argument("--init", default="", help="start from this model folder (e.g. a stage-1 tower)")
    ap.add_argument("--vision-from", default="", help="copy the vision tower and merger from this model")
    ap.add_argument("--oracle-cells", action="store_true", help="add each image token's cell (oracle)")
    ap.add_argument("--one-object", action="store_true", help="grounding: one shape a scene, asked by name")
    ap.add_argument("--eval-every", type=int, default=0, help="evaluate a checkpoint every N steps")
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=100)
    args = ap.parse_args()

    out = args.out / args.name
    if args.oracle_cells:
        add_cell_oracle()
    world = build_world(
        out / "world", args.task, args.n_train, args.n_test, args.gradient, args.hint, args.one_object
    )
    prefix = TASKS[args.task]
    if args.init and (args.rope_theta or args.mrope or args.vision_from):
        raise SystemExit("--init takes the model as it is: drop --rope-theta / --mrope / --vision-from")
    init = Path(args.init) if args.init else out / "init"
    if not args.init:
        model, processor = build_tiny(args.family, "5m", seed=0)
        text = model.config.text_config
        rope = dict(text.rope_parameters)
        if args.rope_theta:
            rope["rope_theta"] = args.rope_theta
        if args.mrope:
            rope["mrope_section"] = [int(x) for x in args.mrope.split(",")]
        text.rope_parameters = rope
        torch.manual_seed(0)
        model = type(model)(model.config)  # re-initialised with the changed RoPE
        if args.vision_from:
            copy_vision(model, args.vision_from)
        model.save_pretrained(init)
        processor.save_pretrained(init)

    sft = SFTTrainConfig(
        model=ModelConfig(path=str(init), freeze_vision=args.freeze_vision),
        optim=OptimConfig(lr=args.lr, warmup_steps=30, schedule="cosine"),
        sft=SFTConfig(batch_size=16, think=THINK),
        run=RunConfig(
            output_dir=f"{out}/sft",
            steps=args.steps,
            save_every=args.eval_every or args.steps,
            keep_last=0,
            tensorboard=False,
            progress=False,
        ),
    )
    t0 = time.perf_counter()
    SFTTrainer(sft, samples=read_samples(world / f"{prefix}_train.jsonl")).fit()
    train_s = time.perf_counter() - t0
    options = EvalOptions(batch_size=16, max_new_tokens=64, limit=args.n_test, progress=False)
    every = args.eval_every or args.steps
    curve = {}
    for step in range(every, args.steps + 1, every):
        trained = {f"{args.name}@{step}": out / "sft" / f"checkpoint-{step}" / "model"}
        scores = evaluate_models(trained, world / f"{prefix}_test.jsonl", out / "eval" / str(step), options)
        curve[step] = {k: v for k, v in scores[f"{args.name}@{step}"].items() if not isinstance(v, dict)}
    losses = [json.loads(line)["loss"] for line in (out / "sft" / "metrics.jsonl").read_text().splitlines()]
    row = {
        "name": args.name,
        "init": args.init,
        "rope_theta": args.rope_theta,
        "mrope": args.mrope,
        "task": args.task,
        "family": args.family,
        "lr": args.lr,
        "gradient": args.gradient,
        "freeze_vision": args.freeze_vision,
        "hint": args.hint,
        "vision_from": args.vision_from,
        "oracle_cells": args.oracle_cells,
        "one_object": args.one_object,
        "steps": args.steps,
        "train_s": round(train_s, 1),
        "last50_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
        **curve[args.steps],
        "curve": curve,
    }
    (out / "probe.json").write_text(json.dumps(row, indent=1) + "\n")
    print(json.dumps(row))


def add_cell_oracle(scale: float = 5.0, grid: int = 16) -> None:
    """Every Qwen2.5-VL tower of this process adds its merged tokens' cells: one-hot column in channels
    0-15, one-hot row in 16-31 (times `scale`), raster order, image after image."""
    tower = Qwen2_5_VisionTransformerPretrainedModel
    forward = tower.forward

    def forward_with_cells(self, hidden_states, grid_thw, **kwargs):
        out = forward(self, hidden_states, grid_thw, **kwargs)
        codes = []
        for t, h, w in grid_thw.tolist():
            rows, cols = h // 2, w // 2  # merged cells (2x2 patches each)
            code = torch.zeros(t, rows, cols, out.pooler_output.shape[-1])  # [t, rows, cols, H]
            code[:, :, :, :grid] = scale * torch.eye(grid)[:cols][None, None, :, :]  # column one-hot
            code[:, :, :, grid : 2 * grid] = scale * torch.eye(grid)[:rows][None, :, None, :]  # row one-hot
            codes.append(code.reshape(-1, code.shape[-1]))  # [t * rows * cols, H]
        out.pooler_output = out.pooler_output + torch.cat(codes).to(out.pooler_output)  # [n_tokens, H]
        return out

    tower.forward = forward_with_cells


def copy_vision(model, source: str) -> None:
    """Overwrite `model`'s vision tower and merger with those of the model folder `source` (same sizes)."""
    trained = type(model).from_pretrained(source, use_kernels=False)
    model.model.visual.load_state_dict(trained.model.visual.state_dict())


if __name__ == "__main__":
    main()
