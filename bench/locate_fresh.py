"""Does the locate stage lack scenes or steps? Its default draws 1,500 steps of 16 from 2,000 one-object and 1,000
`name` scenes, so each is seen 8 times, and on `name` a checkpoint answers its training scenes twice as well as
held-out ones (RESULTS.md section 15). This runs the same stage (the recipe's own `sft_stage`, binding loss
included) on fresh scenes of the same kinds in the same proportions, `--passes` times each, from a finished
run's stage-1 model; `bench/grounding_hits.py` then scores the checkpoints against the default's.

    python bench/locate_fresh.py --run runs/long --out runs/fresh --passes 1 locate.run.steps=1500

Overrides are `vrft world pretrain`'s (`locate.*`, `binding.*`, `locate_kinds`); `--run` must hold a finished
stage 1 (`RUN/vision/model`). Scenes come from world seed `--seed` (not 0, whose scenes the default trains on,
nor 23, the held-out one).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from visual_rft.config import load_config
from visual_rft.data.jsonl import read_samples
from visual_rft.recipes.pretrain import PretrainConfig, sft_stage
from visual_rft.world import build


def fresh_samples(out: Path, kinds: list[str], total: int, seed: int, weights: dict[str, int]) -> list:
    """`total` fresh grounding samples of `kinds`, each kind's share in proportion to `weights` (its count in
    the default's locate set), interleaved as the trainer shuffles anyway."""
    share = sum(weights[k] for k in kinds)
    samples = []
    for kind in kinds:
        n = round(total * weights[kind] / share)
        samples += read_samples(
            build("grounding", out, n, seed=seed, categories=[kind], name=f"fresh_{kind}")
        )
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--run", type=Path, required=True, help="a pretrain run folder with a finished stage 1"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--passes", type=int, default=1, help="times each fresh scene is seen")
    parser.add_argument("--seed", type=int, default=7, help="the fresh scenes' world seed")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.seed in (0, 23):
        parser.error("--seed 0 is the default's training world and 23 the held-out one")
    cfg = load_config(PretrainConfig, overrides=args.overrides)
    vision = args.run / "vision" / "model"
    if not (vision / "config.json").exists():
        parser.error(f"{vision}: no stage-1 model (run `vrft world pretrain` first)")
    unknown = set(cfg.locate_kinds) - {"single", "name", "extreme"}
    if unknown:
        parser.error(f"locate_kinds: {sorted(unknown)} are not grounding kinds this script draws")
    steps, batch = cfg.locate.run.steps, cfg.locate.sft.batch_size
    total = steps * batch // args.passes
    weights = {"single": 2000, "name": 1000, "extreme": 1000}  # the default world's locate files
    samples = fresh_samples(args.out / "world", cfg.locate_kinds, total, args.seed, weights)
    print(
        f"{len(samples)} fresh scenes ({cfg.locate_kinds}), {steps} steps of {batch}: {args.passes} pass(es)"
    )
    model = sft_stage(cfg.locate, vision, args.out / "locate", cfg, samples, cfg.binding)
    print(f"locate model: {model}")


if __name__ == "__main__":
    main()
