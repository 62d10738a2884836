"""Does a token of the vision tower know where in the image it is? A linear probe of its own cell.

For each model folder: the merged tokens of 120 base detection scenes (a stream of their own), a
logistic-regression probe of each token's column and row (0-7) trained on two thirds of the images and
tested on the rest. RoPE gives the tower's and the language model's attention relative positions only, and
a value vector carries no position at all, so unless the tower writes position into its tokens, no answer
can say where an object is.

    python bench/position_probe.py runs/pretrain/init visual_rft/assets/base-5m runs/pretrain/vision/model
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from visual_rft.models.loading import load_model, load_processor
from visual_rft.recipes.vision_tower import tower_tokens
from visual_rft.world import DETECTION_BASE, WorldConfig
from visual_rft.world.dense import CELL, cell_targets
from visual_rft.world.tasks import detection_scene


@torch.no_grad()
def token_cells(path: str, n_images: int, seed: int):
    """([N, H] tokens, [N] column, [N] row, [N] on an object, [N] image index) of `n_images` scenes."""
    model, processor = load_model(path, device="cpu"), load_processor(path)
    rows = []
    for i in range(n_images):
        rng = np.random.Generator(np.random.PCG64([seed, 9, i]))
        image, scene = detection_scene(rng, WorldConfig(), DETECTION_BASE)
        tokens = tower_tokens(model, processor, [image]).float().numpy()  # [n, H]
        row, col = np.mgrid[0 : scene.height // CELL, 0 : scene.width // CELL]  # [r, c]
        on = cell_targets(scene).flat()["obj"] >= 0  # [n]
        rows.append((tokens, col.reshape(-1), row.reshape(-1), on, np.full(len(on), i)))
    return [np.concatenate(parts) for parts in zip(*rows)]


def probe_position(path: str, n_images: int = 120, seed: int = 5) -> dict:
    """Held-out accuracy and mean cell error of the column and row probes, on every token and on object tokens."""
    x, col, row, on, image = token_cells(path, n_images, seed)
    train = image < n_images * 2 // 3  # split by image: no image in both halves
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    out = {"model": path}
    for name, y in (("col", col), ("row", row)):
        guess = LogisticRegression(max_iter=1000).fit(x[train], y[train]).predict(x[~train])
        right = guess == y[~train]
        out[name] = {
            "acc": round(float(right.mean()), 3),
            "acc_on_objects": round(float(right[on[~train]].mean()), 3),
            "mean_error_cells": round(float(np.abs(guess - y[~train]).mean()), 2),
            "chance": round(float(np.bincount(y[~train]).max() / (~train).sum()), 3),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="model folders")
    ap.add_argument("--images", type=int, default=120)
    args = ap.parse_args()
    for path in args.models:
        print(json.dumps(probe_position(path, args.images)), flush=True)


if __name__ == "__main__":
    main()
