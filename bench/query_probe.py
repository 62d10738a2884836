"""Does the position that writes a box's first digit know what the question asks? A linear probe per layer.

A grounding box is picked at the answer's first digit (RESULTS.md section 22): the heads there must find the
asked object from the question alone. They can only if the residual stream at that position (the one that
predicts the first digit) holds what the question names. For held-out `name` queries (world seed --seed, the
reference answer teacher-forced with the think text the model was trained to write), a logistic-regression
probe per decoder layer's input reads from that position the asked object's colour and shape (queries about
a shape: "the red square") or its digit ("the digit 3"); the same probes on the image tokens (each cell's
owner object, `world.dense.box_owners`) say whether the keys carry those attributes. Probes are fitted on the
first 70% of the queries (their images) and scored on the rest; `majority` is the most frequent label's share
of the scored rows.

    python bench/query_probe.py --models runs/l3k_p8_big/base --out runs/qprobe --n 800
    python bench/query_probe.py --models runs/think2k/base --out runs/qprobe --n 800 --think '{problem}'
    python bench/query_probe.py --models runs/dfill_s1/base --out runs/qprobe_dfill --n 800 --digit-fills
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from visual_rft.data.jsonl import read_samples
from visual_rft.models.loading import coord_convention, load_model, load_processor, model_family
from visual_rft.recipes.base_model import THINK
from visual_rft.world import WorldConfig, build

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ scripts, run as scripts or loaded
from attention_probe import asked_object  # noqa: E402
from lm_position_probe import residuals  # noqa: E402

CELLS_PER_QUERY = 8
"""Image tokens on objects kept per query for the key-side probes (the first ones, in raster order)."""


def rows_of(model_dir: Path, data: Path, think: str) -> tuple[list[dict], list[dict]]:
    """(per query: `x` [layers + 1, H] the residual stream entering each decoder layer (and the last output) at
    the position that predicts the box's first digit, the asked object's `colour`, `shape` and `digit`; per
    image cell on an object (`CELLS_PER_QUERY` of them), the same for its owner), over the queries of `data`."""
    model = load_model(model_dir, device="cpu", dtype="fp32")
    processor = load_processor(model_dir)
    convention = coord_convention(model_family(model.config))
    queries, cells = [], []
    for i, sample in enumerate(read_samples(data)):
        r = residuals(model, processor, sample, convention, think)
        objects = sample.meta["objects"]
        queries.append({"x": r["answer"], "query": i, **attributes(objects[asked_object(sample)])})
        for n in np.flatnonzero(r["owner"] >= 0)[:CELLS_PER_QUERY]:
            cells.append({"x": r["image"][:, n], "query": i, **attributes(objects[r["owner"][n]])})
    return queries, cells


def attributes(obj: dict) -> dict:
    """An object's colour, its shape ('digit' for a digit) and its digit ('-' for a shape)."""
    digit = obj.get("kind") == "digit"
    return {
        "colour": obj["colour"],
        "shape": "digit" if digit else obj["shape"],
        "digit": str(obj["digit"]) if digit else "-",
    }


def probe(rows: list[dict], layer: int, label: str, n_train_queries: int) -> dict:
    """Held-out accuracy of a logistic-regression probe of `label` from layer `layer`'s residuals, fitted on the
    rows of the first `n_train_queries` queries; the scored rows' majority share; their number."""
    x = np.stack([r["x"][layer] for r in rows])  # [n, H]
    y = np.array([r[label] for r in rows])  # [n]
    train = np.array([r["query"] < n_train_queries for r in rows])  # [n]
    if train.all() or not train.any() or len(set(y[train])) < 2:
        return {"acc": float("nan"), "majority": float("nan"), "n": int((~train).sum())}
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    fit = LogisticRegression(max_iter=3000).fit(x[train], y[train])
    held = y[~train]
    majority = max(float(np.mean(held == v)) for v in set(held))
    return {
        "acc": round(float(fit.score(x[~train], held)), 3),
        "majority": round(majority, 3),
        "n": len(held),
    }


def probe_model(model_dir: Path, data: Path, think: str) -> dict:
    """Per layer input: the query-side probes (colour and shape of shape queries, digit of digit queries) and
    the key-side ones (colour and shape of the image cells' owners, the digit of digits')."""
    queries, cells = rows_of(model_dir, data, think)
    n_train = int(0.7 * len(queries))
    shapes = [q for q in queries if q["shape"] != "digit"]
    digits = [q for q in queries if q["shape"] == "digit"]
    layers = queries[0]["x"].shape[0]
    return {
        f"layer {i}": {
            "first digit: asked colour": probe(shapes, i, "colour", n_train),
            "first digit: asked shape": probe(shapes, i, "shape", n_train),
            "first digit: asked digit": probe(digits, i, "digit", n_train),
            "image cells: colour": probe(cells, i, "colour", n_train),
            "image cells: shape": probe(cells, i, "shape", n_train),
            "image cells: digit": probe([c for c in cells if c["shape"] == "digit"], i, "digit", n_train),
        }
        for i in range(layers)
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", type=Path, required=True, help="model folders")
    ap.add_argument(
        "--out", type=Path, required=True, help="folder for the held-out queries and query_probe.json"
    )
    ap.add_argument("--seed", type=int, default=29, help="world seed of the held-out `name` queries")
    ap.add_argument("--n", type=int, default=800, help="queries")
    ap.add_argument(
        "--think", default=THINK, help="the think text the models were trained to write (sft.think)"
    )
    ap.add_argument(
        "--digit-fills", action="store_true", help="digits in their value's pattern (WorldConfig)"
    )
    args = ap.parse_args()
    world = WorldConfig(digit_fills=args.digit_fills)
    data = build(
        "grounding",
        args.out / "held_out",
        args.n,
        seed=args.seed,
        categories=["name"],
        name="name",
        cfg=world,
    )
    result = {}
    for m in args.models:
        result[str(m)] = layers = probe_model(m, data, args.think)
        for layer, probes in layers.items():
            print(
                m,
                layer,
                "; ".join(f"{k} {v['acc']} ({v['majority']})" for k, v in probes.items()),
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "query_probe.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
