"""Can the language model learn whether the asked category is in the image once its heads look for it there?

Plain SFT on the yes / no questions of `bench/presence_probe.py --questions` stays at chance (RESULTS.md section
32): the heads that pick a named object were taught to at a box's digits (the binding loss), and nothing
teaches them to at the position that decides "yes" or "no". This trains the same questions with the binding
loss (`recipes/binding.py`) held there: at the position that predicts the answer's first token, of the held
heads' attention on objects, the share on the asked category's instances (any of them) should be all of it.
An absent category has nothing to look at: its questions train on the NLL alone. A detection question's boxes
are held as the recipe holds them (each digit's object). Then `vrft eval` on the held-out questions.

    python bench/presence_binding.py --model runs/more_bn6/locate2/checkpoint-2000/model \\
        --train runs/presence/train.jsonl --test runs/presence/test.jsonl --out runs/presence_bind
    python bench/presence_binding.py --model runs/more_bn6/locate2/checkpoint-2000/model \\
        --train runs/presence/det_train.jsonl --test runs/presence/det_test.jsonl --out runs/presence_det
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from visual_rft.config import EvalOptions, ModelConfig, OptimConfig, RunConfig, SFTConfig, SFTTrainConfig
from visual_rft.data.jsonl import read_samples
from visual_rft.data.types import Sample
from visual_rft.eval.runner import evaluate_models
from visual_rft.models.forward import Rollout
from visual_rft.recipes.base_model import THINK
from visual_rft.recipes.binding import (
    HELD_EAGER,
    BindingConfig,
    BindingSFTTrainer,
    selectivity_loss,
    selectivity_metrics,
)


def answer_start(text: str, tokenizer) -> int:
    """The index, among `text`'s tokens (as the SFT trainer tokenizes an answer), of the answer body's first token."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    body = text.index("<answer>") + len("<answer>")
    return next(t for t, (start, _) in enumerate(offsets) if start >= body)


class PresenceBindingTrainer(BindingSFTTrainer):
    """The binding loss at the position that decides a presence answer, on the present questions only, beside
    the recipe's at the digits of the boxes an answer writes (a detection answer's; a yes / no has none)."""

    def binding_loss(self, rollout: Rollout, samples: list[Sample], texts: list[str]) -> torch.Tensor | None:
        parts = [super().binding_loss(rollout, samples, texts), self.presence_loss(rollout, samples, texts)]
        parts = [p for p in parts if p is not None]
        return sum(parts) if parts else None

    def presence_loss(self, rollout: Rollout, samples: list[Sample], texts: list[str]) -> torch.Tensor | None:
        """The binding loss at the position that predicts the answer's first token, a mean over the micro-batch's
        samples (a present category among other objects; None: none, or the binding loss off: plain SFT)."""
        if self.recorder is None:
            return None
        L, device = rollout.prompt_ids.shape[1], rollout.prompt_ids.device
        losses, sels, chances = [], [], []
        for r, (sample, text) in enumerate(zip(samples, texts)):
            instances = sample.meta.get("instances", [])
            if not instances:
                continue
            image, owners, _ = self.cells(rollout, r, sample)
            owners = np.where(np.isin(owners, instances), instances[0], owners)  # [N] one owner: the category
            query = torch.tensor([L + answer_start(text, self.processor.tokenizer) - 1], device=device)  # [1]
            a = self.recorder.rows(r, self.binding.heads, query, image)  # [l, h, 1, N]
            asked = torch.tensor([instances[0]], device=device)  # [1]
            loss, sel, chance = selectivity_loss(a, torch.from_numpy(owners).to(device), asked)
            if float(chance) > 0:
                losses.append(self.binding.weight * loss)
                sels.append(float(sel))
                chances.append(float(chance))
        self._metrics.update(selectivity_metrics("presence", len(samples), selectivity=sels, chance=chances))
        return torch.stack(losses).mean() * len(losses) / len(samples) if losses else None


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
        "--aggregation", default="sequence", help="sft.aggregation: sequence (each answer alike) or token"
    )
    ap.add_argument("--max-new-tokens", type=int, default=160, help="the evaluation's answer length")
    args = ap.parse_args()
    cfg = SFTTrainConfig(
        model=ModelConfig(
            path=str(args.model), freeze_vision=True, cache_images=True, attn_implementation=HELD_EAGER
        ),
        optim=OptimConfig(lr=args.lr, warmup_steps=30, schedule="cosine"),
        sft=SFTConfig(batch_size=16, think=THINK, aggregation=args.aggregation),
        run=RunConfig(
            output_dir=str(args.out), steps=args.steps, save_every=500, tensorboard=False, progress=False
        ),
    )
    PresenceBindingTrainer(cfg, BindingConfig(weight=args.weight), read_samples(args.train)).fit()
    model = args.out / f"checkpoint-{args.steps}" / "model"
    options = EvalOptions(batch_size=16, max_new_tokens=args.max_new_tokens, progress=False)
    metrics = evaluate_models({"presence": model}, args.test, args.out / "eval", options)
    print(json.dumps(metrics, default=str)[:2000])


if __name__ == "__main__":
    main()
