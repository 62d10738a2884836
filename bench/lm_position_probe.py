"""Where does the language model lose the asked object's position? Linear probes of its residual stream.

RoPE makes attention depend on relative positions and a value carries none, so for an answer to write the
box of the object a question names, some layer must first write each image token's absolute position (or
its object's box) into that token's residual stream, from which the heads that pick the object (the binding
loss's held layers) can copy it. This probes, after every layer of the language model (0: the merger's
tokens as they enter it), on held-out grounding queries fed with their reference answer:

- `cell`: each image token's own column and row, ridge regression, mean error in cells;
- `object box`: for image tokens on an object, that object's box (x1, y1, x2, y2 in the model's pixels),
  mean edge error in px;
- `answer box`: at the position that predicts the answer box's first digit, the asked object's box,
  mean edge error in px (what the answer can still read there);
- for scale, the error of the training mean (a constant guess) for each.

Ridge probes are fitted on the first two thirds of the queries and tested on the rest (split by query).

    python bench/lm_position_probe.py --models runs/long/locate/checkpoint-3000/model --out runs/lmpos
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import Ridge

from visual_rft.data.jsonl import read_samples
from visual_rft.data.types import Sample
from visual_rft.models.loading import coord_convention, load_model, load_processor, model_family
from visual_rft.recipes.base_model import THINK
from visual_rft.world import build
from visual_rft.world.dense import box_owners, cell_grid, owner_boxes

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ scripts, run as scripts or loaded
from attention_probe import teacher_forced  # noqa: E402


@torch.no_grad()
def residuals(model, processor, sample: Sample, convention: str, think: str = THINK) -> dict[str, np.ndarray]:
    """One query's residual streams (its reference answer written with `think`): `image` [layers+1, n, H],
    `answer` [layers+1, H] at the position that predicts the first box digit, `cell` [n, 2] (column, row),
    `owner` [n] the index in `meta.objects` of each cell's object (-1: background), `owner_box` [n, 4] (nan off
    objects) and `box` [4] the asked object's box, in the processor's pixels."""
    inputs, frame = teacher_forced(model, processor, sample, convention, think)
    ids = inputs["input_ids"][0]  # [S]
    hidden = torch.stack(model(**inputs, output_hidden_states=True).hidden_states)[:, 0]  # [layers+1, S, H]
    image = (ids == model.config.image_token_id).nonzero().squeeze(1)  # [n]
    tokens = processor.tokenizer.convert_ids_to_tokens(ids.tolist())
    start = int((ids == processor.tokenizer.convert_tokens_to_ids("<answer>")).nonzero()[-1])
    first_digit = next(p for p in range(start + 1, len(tokens)) if tokens[p].isdigit())
    _, h, w = inputs["image_grid_thw"][0].tolist()
    rows, cols = h // processor.image_processor.merge_size, w // processor.image_processor.merge_size
    scale = frame.resized[0] / frame.size[0] if frame.resized else 1.0
    boxes = np.array([o["box"] for o in sample.meta["objects"]], dtype=float) * scale  # [k, 4]
    owners = box_owners([o["box"] for o in sample.meta["objects"]], rows, cols, scale)  # [n]
    return {
        "image": hidden[:, image].float().numpy(),
        "answer": hidden[:, first_digit - 1].float().numpy(),
        "cell": cell_grid(rows, cols).astype(float),
        "owner": owners,
        "owner_box": owner_boxes(boxes, owners).astype(float),
        "box": np.array(sample.target.box.xyxy, dtype=float) * scale,
    }


def ridge_error(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> tuple[float, float]:
    """(mean absolute error of a ridge probe, of the training mean) on the rows not in `train`."""
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    z = (x - mu) / sd  # [N, H]
    guess = Ridge(alpha=10.0).fit(z[train], y[train]).predict(z[~train])
    return float(np.abs(guess - y[~train]).mean()), float(np.abs(y[train].mean(0) - y[~train]).mean())


def probe(model_dir: Path, samples: list[Sample]) -> dict[str, list]:
    """Per layer: [probe error, constant's error] of the cell (cells), object box and answer box (px)."""
    model = load_model(model_dir, device="cpu", dtype="fp32")
    processor = load_processor(model_dir)
    convention = coord_convention(model_family(model.config))
    parts = [residuals(model, processor, s, convention) for s in samples]
    split = len(parts) * 2 // 3
    image = np.concatenate([p["image"] for p in parts], 1)  # [layers+1, N, H]
    query = np.concatenate([np.full(p["image"].shape[1], i) for i, p in enumerate(parts)])  # [N]
    cell = np.concatenate([p["cell"] for p in parts])  # [N, 2]
    owner_box = np.concatenate([p["owner_box"] for p in parts])  # [N, 4]
    on = ~np.isnan(owner_box[:, 0])  # [N]
    answer = np.stack([p["answer"] for p in parts], 1)  # [layers+1, Q, H]
    box = np.stack([p["box"] for p in parts])  # [Q, 4]
    out: dict[str, list] = {"cell (cells)": [], "object box (px)": [], "answer box (px)": []}
    for layer in range(image.shape[0]):
        out["cell (cells)"].append(ridge_error(image[layer], cell, query < split))
        out["object box (px)"].append(ridge_error(image[layer][on], owner_box[on], query[on] < split))
        out["answer box (px)"].append(ridge_error(answer[layer], box, np.arange(len(box)) < split))
    return {k: [[round(a, 2), round(b, 2)] for a, b in v] for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", type=Path, required=True, help="model folders")
    ap.add_argument("--out", type=Path, required=True, help="folder for the held-out sets and probe.json")
    ap.add_argument("--kinds", nargs="+", default=["single", "name"], help="grounding kinds")
    ap.add_argument("--seed", type=int, default=23, help="world seed of the held-out queries")
    ap.add_argument("--n", type=int, default=300, help="queries per kind")
    args = ap.parse_args()
    result = {}
    for kind in args.kinds:
        path = build("grounding", args.out / "held_out", args.n, seed=args.seed, categories=[kind], name=kind)
        samples = read_samples(path)[: args.n]
        for m in args.models:
            result[f"{m} {kind}"] = errors = probe(m, samples)
            print(f"{kind} {m}", flush=True)
            for name, per_layer in errors.items():
                print(
                    f"  {name:16s} "
                    + "  ".join(f"L{i} {a:.2f} ({b:.2f})" for i, (a, b) in enumerate(per_layer))
                )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
