"""Can the language model learn whether the asked category is in the image once its heads look for it there?

Plain SFT on the yes / no questions of `bench/presence_probe.py --questions` stays at chance (RESULTS.md section
32): the heads that pick a named object were taught to at a box's digits (the binding loss), and nothing
teaches them to at the position that decides "yes" or "no". This trains the same questions with the binding
loss held there (`recipes/binding.py`, `BindingConfig.presence_weight`): at the position that predicts the
answer's first token, of the held heads' attention on objects, the share on the asked category's instances (any
of them) should be all of it. An absent category has nothing to look at: its questions train on the NLL alone.
A detection question's boxes are held as the recipe holds them (each digit's object). Then `vrft eval` on the
held-out questions.

    python bench/presence_binding.py --model runs/more_bn6/locate2/checkpoint-2000/model \\
        --train runs/presence/train.jsonl --test runs/presence/test.jsonl --out runs/presence_bind
    python bench/presence_binding.py --model runs/more_bn6/locate2/checkpoint-2000/model \\
        --train runs/presence/det_train.jsonl --test runs/presence/det_test.jsonl --out runs/presence_det

`--continue-weight` holds the heads at each box's close too, on the asked instances the answer has not written yet
(`BindingConfig.continue_weight`; RESULTS.md section 45), and `--pick-weight` at each box's first digit, where the
box's instance is picked (`BindingConfig.pick_weight`; section 46). `--detection-think` names each box's place
in the think first, "Let me look at the image: top left, bottom right." (`sft.detection_think`; section 47): the
binding loss holds the k-th place's words on the k-th box's instance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from visual_rft.config import EvalOptions, ModelConfig, OptimConfig, RunConfig, SFTConfig, SFTTrainConfig
from visual_rft.data.jsonl import read_samples
from visual_rft.eval.runner import evaluate_models
from visual_rft.models.attention import HELD_EAGER
from visual_rft.recipes.base_model import THINK
from visual_rft.recipes.binding import BindingConfig, BindingSFTTrainer


def presence_binding(weight: float, continue_weight: float = 0.0, pick_weight: float = 0.0) -> BindingConfig:
    """The binding loss at the boxes' digits and at the answer's first token (`presence_weight`), each at
    `weight` (0: plain SFT), at each box's close on the instances left (`continue_weight`), and at each box's
    first digit on that box's instance (`pick_weight`)."""
    return BindingConfig(
        weight=weight, presence_weight=weight, continue_weight=continue_weight, pick_weight=pick_weight
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="the model folder to start from")
    ap.add_argument("--train", type=Path, required=True, help="presence questions to train on")
    ap.add_argument("--test", type=Path, required=True, help="held-out presence questions")
    ap.add_argument("--out", type=Path, required=True, help="run folder (the evaluation in eval/)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--weight", type=float, default=1.0, help="the binding loss's weight (0: plain SFT)")
    ap.add_argument(
        "--continue-weight",
        type=float,
        default=0.0,
        help="the same loss at each box's close, on the asked instances not written yet (0: off)",
    )
    ap.add_argument(
        "--pick-weight",
        type=float,
        default=0.0,
        help="the same loss at each box's first digit alone, on that box's instance (0: off)",
    )
    ap.add_argument(
        "--detection-think",
        default="",
        help="sft.detection_think: the detection answers' think, {region} their boxes' places ('': the default's)",
    )
    ap.add_argument(
        "--aggregation", default="sequence", help="sft.aggregation: sequence (each answer alike) or token"
    )
    ap.add_argument("--max-new-tokens", type=int, default=160, help="the evaluation's answer length")
    args = ap.parse_args()
    cfg = SFTTrainConfig(
        model=ModelConfig(
            path=str(args.model), freeze_vision=True, cache_images=True, attn_implementation=HELD_EAGER
        ),
        optim=OptimConfig(lr=args.lr, warmup_steps=30, schedule="cosine"),
        sft=SFTConfig(
            batch_size=16, think=THINK, detection_think=args.detection_think, aggregation=args.aggregation
        ),
        run=RunConfig(
            output_dir=str(args.out), steps=args.steps, save_every=500, tensorboard=False, progress=False
        ),
    )
    BindingSFTTrainer(
        cfg, presence_binding(args.weight, args.continue_weight, args.pick_weight), read_samples(args.train)
    ).fit()
    model = args.out / f"checkpoint-{args.steps}" / "model"
    options = EvalOptions(batch_size=16, max_new_tokens=args.max_new_tokens, progress=False)
    metrics = evaluate_models({"presence": model}, args.test, args.out / "eval", options)
    print(json.dumps(metrics, default=str)[:2000])


if __name__ == "__main__":
    main()
