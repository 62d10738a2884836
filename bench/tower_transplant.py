"""A trained vision tower under a fresh language model of another shape: the 5m model's tower (and merger)
copied from a model folder into a tiny Qwen2.5-VL whose text side has other heads or layers, written as an
ordinary model folder, e.g. a `vrft world pretrain` run's init/ (a run whose init/ exists starts from it).

    python bench/tower_transplant.py --tower runs/dfill_s1/vision/model --out runs/h12/init --heads 12

The language model is randomly initialised (seed 0), as stage 1 leaves it in the 5m model; the tokenizer
and image processor are the factory's. Twelve heads of 16 in the 5m's width keep its weight count (RESULTS.md
section 25 asks whether the colour head and the digits' pick compete for the first layer's six heads).
Prints the parameter counts of both models.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from visual_rft.models.loading import load_model
from visual_rft.models.tiny import SIZES, build_tiny, count_parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tower", type=Path, required=True, help="a 5m model folder whose tower is copied")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--heads", type=int, default=SIZES["5m"].heads, help="text attention heads a layer")
    parser.add_argument("--layers", type=int, default=SIZES["5m"].layers, help="text decoder layers")
    args = parser.parse_args()
    counts = transplant(args.tower, args.out, args.heads, args.layers)
    print(f"tower of {args.tower}: {counts['tower']}")
    print(f"{args.out} ({args.heads} heads, {args.layers} layers): {counts['out']}")


def transplant(tower: Path, out: Path, heads: int, layers: int) -> dict[str, dict[str, int]]:
    """Write the model folder `out` and return the parameter counts of both models."""
    if (out / "config.json").exists():
        raise SystemExit(f"{out} already holds a model; remove it or choose another --out")
    source = load_model(tower, device="cpu", dtype="fp32")  # a named error if it is not a model folder
    model, processor = build_tiny("qwen2_5_vl", replace(SIZES["5m"], heads=heads, layers=layers), seed=0)
    model.model.visual.load_state_dict(source.model.visual.state_dict())  # strict: the same tower's shape
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return {"tower": count_parameters(source), "out": count_parameters(model)}


if __name__ == "__main__":
    main()
