"""A trained vision tower under a fresh language model of another shape: the 5m model's tower (and merger)
copied from a model folder into a tiny Qwen2.5-VL whose text side has other heads, layers or width, written as
an ordinary model folder, e.g. a `vrft world pretrain` run's init/ (a run whose init/ exists starts from it).

    python bench/tower_transplant.py --tower runs/dfill_s1/vision/model --out runs/h12/init --heads 12
    python bench/tower_transplant.py --tower runs/dfill_s1/vision/model --out runs/w384/init --hidden 384 --heads 12

The language model is randomly initialised (seed 0), as stage 1 leaves it in the 5m model; the tokenizer
and image processor are the factory's. Twelve heads of 16 in the 5m's width keep its weight count (RESULTS.md
section 25 asks whether the colour head and the digits' pick compete for the first layer's six heads).
A wider language model (`--hidden`) needs the merger's last linear map to write its width: that map is the
trained one followed by a fixed isometry (seeded orthonormal columns), so the image tokens are the trained
ones, norms and angles kept, in a 192-dim subspace of the wider stream. Prints the parameter counts of both models.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from visual_rft.models.loading import load_model
from visual_rft.models.tiny import SIZES, build_tiny, count_parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tower", type=Path, required=True, help="a 5m model folder whose tower is copied")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--heads", type=int, default=SIZES["5m"].heads, help="text attention heads a layer")
    parser.add_argument("--layers", type=int, default=SIZES["5m"].layers, help="text decoder layers")
    parser.add_argument("--hidden", type=int, default=SIZES["5m"].hidden, help="text hidden size (>= 192)")
    args = parser.parse_args()
    counts = transplant(args.tower, args.out, args.heads, args.layers, args.hidden)
    print(f"tower of {args.tower}: {counts['tower']}")
    print(f"{args.out} ({args.heads} heads, {args.layers} layers, width {args.hidden}): {counts['out']}")


def transplant(
    tower: Path, out: Path, heads: int, layers: int, hidden: int = SIZES["5m"].hidden
) -> dict[str, dict[str, int]]:
    """Write the model folder `out` and return the parameter counts of both models."""
    if (out / "config.json").exists():
        raise SystemExit(f"{out} already holds a model; remove it or choose another --out")
    source = load_model(tower, device="cpu", dtype="fp32")  # a named error if it is not a model folder
    width = source.config.vision_config.out_hidden_size
    if hidden < width:
        raise SystemExit(f"--hidden {hidden} is narrower than the tower's merger output ({width})")
    size = replace(SIZES["5m"], heads=heads, layers=layers, hidden=hidden)
    model, processor = build_tiny("qwen2_5_vl", size, seed=0)
    weights = source.model.visual.state_dict()
    weights["merger.mlp.2.weight"], weights["merger.mlp.2.bias"] = widen(
        weights["merger.mlp.2.weight"], weights["merger.mlp.2.bias"], hidden
    )
    model.model.visual.load_state_dict(weights)  # strict: the same tower's shape
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return {"tower": count_parameters(source), "out": count_parameters(model)}


def widen(weight: torch.Tensor, bias: torch.Tensor, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear map x -> Q (W x + b) with Q (hidden, out) of orthonormal columns (seeded; Q = I when hidden
    is out): the same outputs, lengths and angles kept, written in a wider space."""
    out = weight.shape[0]  # weight: (out, in), bias: (out,)
    if hidden == out:
        return weight, bias
    gaussian = torch.randn(hidden, out, generator=torch.Generator().manual_seed(0))  # (hidden, out)
    q, _ = torch.linalg.qr(gaussian)  # (hidden, out), q.T @ q = I
    return q @ weight, q @ bias  # (hidden, in), (hidden,)


if __name__ == "__main__":
    main()
