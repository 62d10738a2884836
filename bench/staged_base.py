"""The staged base end to end: `run_pretrain` (vision -> align -> joint), then the base on held-out base tasks.

    python bench/staged_base.py --out runs/staged                       # the default recipe
    python bench/staged_base.py --out runs/staged vision.steps=750

Overrides are PretrainConfig key=value (e.g. joint.run.steps=600); --dtype is the evaluation's (auto: bf16
on a GPU). The held-out sets are drawn from a world
of another seed (--test-seed, default 1) than the pre-training data (seed 0): classification on the 51
base classes, detection on the base categories, grounding on the base kinds, --n-test queries each.
Prints the metrics and writes OUT/result.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from world_shapes import add_shapes_option, apply_shapes_option  # noqa: E402

from visual_rft.config import EvalOptions, load_config  # noqa: E402
from visual_rft.eval.runner import evaluate_models  # noqa: E402
from visual_rft.recipes.pretrain import PretrainConfig, run_pretrain  # noqa: E402
from visual_rft.world import CLASSIFICATION_BASE, DETECTION_BASE, GROUNDING_BASE_KINDS, build  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    add_shapes_option(parser)
    parser.add_argument("--test-seed", type=int, default=1)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--dtype", default="auto", help="the evaluation's model dtype (EvalOptions.dtype)")
    parser.add_argument("overrides", nargs="*", help="PretrainConfig key=value")
    args = parser.parse_args()
    shapes = apply_shapes_option(args)
    cfg = load_config(PretrainConfig, None, [f"out_dir={args.out}", *args.overrides])
    t0 = time.perf_counter()
    base = run_pretrain(replace(cfg, progress=False))
    train_s = time.perf_counter() - t0
    held_out = args.out / "held_out"
    tests = {
        "classification": CLASSIFICATION_BASE,
        "detection": DETECTION_BASE,
        "grounding": GROUNDING_BASE_KINDS,
    }
    options = EvalOptions(batch_size=16, max_new_tokens=160, progress=False, dtype=args.dtype)
    metrics = {}
    for task, names in tests.items():
        data = build(
            task,
            held_out,
            args.n_test,
            seed=args.test_seed,
            categories=names,
            name=f"{task}_test",
            cfg=cfg.vision.world,  # drawn as the base's pre-training scenes were
        )
        metrics[task] = evaluate_models({"base": base}, data, args.out / "eval" / task, options)["base"]
    keys = {"classification": ["accuracy"], "detection": ["mAP", "AP50"], "grounding": ["giou", "acc@0.5"]}
    result = {
        "shapes": shapes,
        "overrides": args.overrides,
        "pretrain_s": round(train_s),
        **{f"{t}.{k}": metrics[t][k] for t, ks in keys.items() for k in ks},
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
