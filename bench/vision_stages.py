"""Does a pre-trained vision tower help the language model see? Stage 2 (SFT with the tower frozen) on the
world's base classification, from a given tower or a random one, then shape / colour / shade accuracy.

    python bench/vision_stages.py --out runs/stages/random                      # control: random tower
    python bench/vision_stages.py --tower runs/pretrain/vision/model --out runs/stages/stage1
    python bench/vision_stages.py --tower runs/vprobe/pent/vision/model --out runs/stages/pent --shapes pentagon,hexagon

Both runs use the same tiny 5m model folder layout, the same data (2,000 base-class images, a held-out test
set drawn with another seed), the same SFT settings; only the tower differs. Writes OUT/result.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from world_shapes import add_shapes_option, apply_shapes_option  # noqa: E402

from visual_rft.config import (  # noqa: E402
    EvalOptions,
    ModelConfig,
    OptimConfig,
    RunConfig,
    SFTConfig,
    SFTTrainConfig,
)
from visual_rft.data.answer import class_answer, normalize_class  # noqa: E402
from visual_rft.data.jsonl import read_samples  # noqa: E402
from visual_rft.eval.completions import read_completions  # noqa: E402
from visual_rft.eval.runner import evaluate_models  # noqa: E402
from visual_rft.models.tiny import write_tiny  # noqa: E402
from visual_rft.recipes.base_model import THINK  # noqa: E402
from visual_rft.sft.trainer import SFTTrainer  # noqa: E402
from visual_rft.world import CLASSIFICATION_BASE, build  # noqa: E402


def word_accuracy(completions: Path) -> dict:
    """Exact accuracy and, word by word from the end, shape / colour / shade accuracy of class answers."""
    records = [r for r in read_completions(completions) if r.asked]
    out = {"n": len(records), "exact": 0.0, "shape": 0.0, "colour": 0.0, "shade": 0.0}
    for r in records:
        truth = normalize_class(r.sample.target.label).split()
        guess = (class_answer(r.completion) or "").split()
        shade = truth[0] if len(truth) == 3 else "mid"
        said = guess[0] if len(guess) == 3 else "mid"
        out["exact"] += guess == truth
        out["shape"] += bool(guess) and guess[-1] == truth[-1]
        out["colour"] += len(guess) >= 2 and guess[-2] == truth[-2]
        out["shade"] += said == shade
    return {k: (v / len(records) if k != "n" else v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tower", type=Path, help="a model folder whose tower to use (default: random)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=100)
    add_shapes_option(parser)
    args = parser.parse_args()
    shapes = apply_shapes_option(args)

    world = args.out / "world"
    train = build("classification", world, args.n_train, seed=0, categories=CLASSIFICATION_BASE, name="train")
    test = build("classification", world, args.n_test, seed=7, categories=CLASSIFICATION_BASE, name="test")
    start = args.tower or write_tiny(args.out / "init", "qwen2_5_vl", "5m", seed=0)
    cfg = SFTTrainConfig(
        model=ModelConfig(path=str(start), freeze_vision=True),
        optim=OptimConfig(lr=args.lr, warmup_steps=20, schedule="cosine"),
        sft=SFTConfig(batch_size=16, think=THINK),
        run=RunConfig(output_dir=str(args.out / "sft"), steps=args.steps, save_every=0, tensorboard=False),
    )
    t0 = time.perf_counter()
    SFTTrainer(cfg, samples=read_samples(train)).fit()
    train_s = time.perf_counter() - t0
    model = args.out / "sft" / f"checkpoint-{args.steps}" / "model"
    options = EvalOptions(batch_size=16, max_new_tokens=40, progress=False)
    evaluate_models({"model": model}, test, args.out / "eval", options)
    result = {
        "tower": str(args.tower or "random"),
        "shapes": shapes,
        "steps": args.steps,
        "train_s": round(train_s),
        **word_accuracy(args.out / "eval" / "model" / "completions.jsonl"),
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
