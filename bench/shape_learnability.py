"""Is shape slow to learn because of the tower? The 5m tower and a small CNN side by side, on one label.

Each model learns one attribute of the classification scene's one big object (its shape: 5 classes; or
its colour: 5 classes) from fresh base-class scenes (or, `--targets digit`, the value of one big digit,
drawn as the world draws digits: 10 classes), 32 a step, AdamW with a 25-step warm-up. The tower
reads the object through the mean of its merged tokens (as stage 1's pooled head does) into a linear
head; the CNN (four 3x3/5x5 stride-2 convolutions with batch norm, global max pool, linear) sees the
image zero-padded to 224 x 224. Accuracy is measured on each step's batch before the step updates the
weights, so every number is on images the model has not trained on.

    python bench/shape_learnability.py --out runs/shape_learnability --steps 150 --flat
    python bench/shape_learnability.py --out runs/shape_learnability_600 --steps 600 --targets shape --flat
    python bench/shape_learnability.py --out runs/mimetic --steps 150 --models tower_mimetic --targets shape --flat
    python bench/shape_learnability.py --out runs/maxpool --steps 150 --models tower_max --targets shape --flat
    python bench/shape_learnability.py --out runs/window56 --steps 150 --models tower --targets shape --window 56 --flat
    python bench/shape_learnability.py --out runs/patch7 --steps 75 --models tower --targets shape --patch 7 --flat
    python bench/shape_learnability.py --out runs/shape_fills --steps 100 --models tower --targets shape
    python bench/shape_learnability.py --out runs/digit_learnability --steps 300 --targets digit
    python bench/shape_learnability.py --out runs/digit_fills --steps 300 --models tower --targets digit --digit-fills

--patch 7 rebuilds the tower with 7-px patches merged 4 x 4 (`with_patch`: still one token per 28-px cell).
--flat draws the shapes in flat colour, as the world did when RESULTS.md section 9 was measured; without
it each shape has its fill pattern (the world's default since section 10).

--models: tower (the tiny Qwen2.5-VL tower as `write_tiny` initialises it, object tokens averaged),
tower_max (the same, their maximum per feature, as the CNN pools), tower_mimetic (averaged, with mimetic
attention initialisation: `mimetic_init`), cnn.

Writes OUT/MODEL-TARGET.json (accuracy of each 25-step window) and prints one line per run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

from visual_rft.models.loading import load_model, load_processor
from visual_rft.models.tiny import write_tiny
from visual_rft.recipes.vision_tower import pooled, tower_tokens
from visual_rft.world import CLASSIFICATION_BASE, COLOURS, WorldConfig
from visual_rft.world.dense import SHAPE_CLASSES, cell_targets
from visual_rft.world.tasks import classification_scene

TARGETS = {
    "shape": lambda o: SHAPE_CLASSES.index(o.shape),
    "colour": lambda o: list(COLOURS).index(o.colour),
    "digit": lambda o: o.digit,
}
CLASSES = {"shape": 5, "colour": 5, "digit": 10}
WINDOW = 25


def draw(step: int, batch: int, fills: bool = True, digits: bool = False, digit_fills: bool = False) -> list:
    """One step's scenes, a function of the step: every run sees the same images (`fills`: each shape in
    its fill pattern, the world's default; False: flat colour, the world of RESULTS.md section 9; `digits`:
    one big digit a scene, "digit 0" to "digit 9", instead of a base class; `digit_fills`: each digit in its
    value's fill pattern, `WorldConfig.digit_fills`)."""
    rng = np.random.Generator(np.random.PCG64([0, 1, step]))
    pool = [f"digit {d}" for d in range(10)] if digits else CLASSIFICATION_BASE
    labels = [pool[rng.integers(len(pool))] for _ in range(batch)]
    cfg = WorldConfig(fills=fills, digit_fills=digit_fills)
    return [classification_scene(rng, cfg, label) for label in labels]  # [(image, scene)]


class TowerReader(nn.Module):
    """The tiny Qwen2.5-VL's vision tower (merger included), its object tokens averaged, a linear head."""

    def __init__(
        self, folder: Path, classes: int, mimetic: bool = False, pool: str = "mean", window: int = 0
    ):
        super().__init__()
        self.pool = pool
        self.model, self.processor = load_model(folder, device="cpu"), load_processor(folder)
        self.tower = self.model.model.visual
        if window:  # the windowed blocks' attention window in pixels (the tiny model's: 112)
            self.tower.window_size = window
        if mimetic:
            mimetic_init(self.tower)
        self.head = nn.Linear(self.model.config.text_config.hidden_size, classes)

    def parameters_to_train(self):
        return [*self.tower.parameters(), *self.head.parameters()]

    def forward(self, scenes) -> torch.Tensor:
        tokens = tower_tokens(self.model, self.processor, [image for image, _ in scenes])  # [n, H]
        obj = torch.from_numpy(np.concatenate([main_object(scene, i) for i, (_, scene) in enumerate(scenes)]))
        if self.pool == "max":  # each image's largest value of each feature over its main object's tokens
            own = obj[:, None] == torch.arange(len(scenes))[None]  # [n, B]
            feats = torch.where(own[:, :, None], tokens[:, None], -torch.inf).amax(0)  # [B, H]
        else:
            feats, _ = pooled(tokens, obj, len(scenes))  # [B, H] the mean (one main object per scene)
        return self.head(feats)  # [B, classes]


def main_object(scene, index: int) -> np.ndarray:
    """[cells] `index` (the scene's place in the batch) on the main object's cells, -1 elsewhere."""
    return np.where(cell_targets(scene).flat()["obj"] == 0, index, -1)


@torch.no_grad()
def mimetic_init(tower, qk=(0.7, 0.7), vo=(0.4, 0.4)) -> None:
    """Mimetic initialisation (Trockman and Kolter, ICML 2023): each head's W_q^T W_k ~ a Z + b I (a token
    attends to tokens like itself, so with RoPE to its neighbours first) and the heads' W_v^T W_o together
    ~ a Z - b I; Z ~ N(0, 1/d). The attention layers then start out like convolutions, not uniform means."""
    for block in tower.blocks:
        attn = block.attn
        d, heads = attn.proj.weight.shape[0], attn.num_heads
        k = d // heads
        w = attn.qkv.weight  # [3d, d]: q, k, v rows
        for h in range(heads):
            u, s, vt = torch.linalg.svd(qk[0] * torch.randn(d, d) / d**0.5 + qk[1] * torch.eye(d))
            w[h * k : (h + 1) * k] = (u[:, :k] * s[:k].sqrt()).T  # W_qh [k, d]
            w[d + h * k : d + (h + 1) * k] = (vt[:k].T * s[:k].sqrt()).T  # W_kh [k, d]
        u, s, vt = torch.linalg.svd(vo[0] * torch.randn(d, d) / d**0.5 - vo[1] * torch.eye(d))
        w[2 * d :] = (u * s.sqrt()).T  # W_v [d, d]: head h takes singular directions h*k..(h+1)*k
        attn.proj.weight.copy_(vt.T * s.sqrt())  # W_o [d, d], so that W_v^T W_o^T = U S V^T
        attn.qkv.bias.zero_()
        attn.proj.bias.zero_()


class SmallCNN(nn.Module):
    """A small convolutional network: the inductive bias a ViT lacks, at a similar cost per image."""

    def __init__(self, classes: int):
        super().__init__()
        layers, channels = [], [3, 32, 64, 64, 64]
        for i, (a, b) in enumerate(zip(channels, channels[1:])):
            k = 5 if i == 0 else 3
            layers += [nn.Conv2d(a, b, k, 2, k // 2), nn.BatchNorm2d(b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(64, classes))

    def parameters_to_train(self):
        return list(self.parameters())

    def forward(self, scenes) -> torch.Tensor:
        side = WorldConfig().image_size[1]
        x = torch.zeros(len(scenes), 3, side, side)  # [B, 3, 224, 224]
        for i, (image, _) in enumerate(scenes):
            a = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)  # [3, h, w]
            x[i, :, : a.shape[1], : a.shape[2]] = a - 0.5
        return self.net(x)  # [B, classes]


def with_patch(folder: Path, patch: int) -> Path:
    """The tiny model in `folder` rebuilt (random, seed 0) with `patch`-px patches merged 28 // patch a side,
    so the language model still gets one token per 28-px cell (7: 16 patches a token instead of 4)."""
    config = AutoConfig.from_pretrained(folder)
    config.vision_config.patch_size, config.vision_config.spatial_merge_size = patch, 28 // patch
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(folder)
    processor = json.loads((folder / "processor_config.json").read_text())
    processor["image_processor"].update(patch_size=patch, merge_size=28 // patch)
    (folder / "processor_config.json").write_text(json.dumps(processor, indent=1))
    return folder


def run(
    kind: str,
    target: str,
    steps: int,
    lr: float,
    batch: int,
    out: Path,
    window: int = 0,
    fills: bool = True,
    patch: int = 14,
    digit_fills: bool = False,
) -> dict:
    torch.manual_seed(0)
    if kind.startswith("tower"):
        folder = write_tiny(out / "init", "qwen2_5_vl", "5m", seed=0)
        folder = with_patch(folder, patch) if patch != 14 else folder
        pool = "max" if kind == "tower_max" else "mean"
        model = TowerReader(
            folder, CLASSES[target], mimetic=kind == "tower_mimetic", pool=pool, window=window
        )
    else:
        model = SmallCNN(CLASSES[target])
    params = model.parameters_to_train()
    optimizer = torch.optim.AdamW(params, lr=lr)
    warm = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / WINDOW))
    correct, windows, t0 = [], [], time.perf_counter()
    for step in range(steps):
        scenes = draw(step, batch, fills, digits=target == "digit", digit_fills=digit_fills)
        y = torch.tensor([TARGETS[target](scene.objects[0]) for _, scene in scenes])  # [B]
        logits = model(scenes)  # [B, classes]
        loss = F.cross_entropy(logits, y)
        correct.append(float((logits.argmax(-1) == y).float().mean()))  # before this step's update
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        warm.step()
        if (step + 1) % WINDOW == 0:
            windows.append(round(100 * float(np.mean(correct[-WINDOW:])), 1))
    result = {
        "model": kind,
        "target": target,
        "steps": steps,
        "lr": lr,
        "batch": batch,
        "window": window,
        "fills": fills,
        "patch": patch,
        "digit_fills": digit_fills,
        "seconds": round(time.perf_counter() - t0),
        "accuracy_per_25_steps": windows,
    }
    (out / f"{kind}-{target}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/shape_learnability"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--models", default="tower,cnn")
    ap.add_argument("--targets", default="shape,colour")
    ap.add_argument("--tower-lr", type=float, default=3e-4)
    ap.add_argument("--cnn-lr", type=float, default=1e-3)
    ap.add_argument("--window", type=int, default=0, help="the tower's attention window in px (0: 112)")
    ap.add_argument("--flat", action="store_true", help="shapes in flat colour (no fill patterns)")
    ap.add_argument("--patch", type=int, default=14, choices=(7, 14), help="the tower's patch size in px")
    ap.add_argument("--digit-fills", action="store_true", help="digits in their value's fill pattern")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for kind in args.models.split(","):
        for target in args.targets.split(","):
            lr = args.cnn_lr if kind == "cnn" else args.tower_lr
            result = run(
                kind,
                target,
                args.steps,
                lr,
                args.batch,
                args.out,
                args.window,
                not args.flat,
                args.patch,
                args.digit_fills,
            )
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
